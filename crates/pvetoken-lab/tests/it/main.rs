//! Integration tests, one module per area.
mod access;
mod agent;
mod declared;
mod guests;
mod lab_control;
mod releases;
mod seed;
mod semaphore;
mod semaphore_contract;
mod semaphore_prologue;
mod semaphore_templates;
mod support;
mod transport;
mod vectors;
