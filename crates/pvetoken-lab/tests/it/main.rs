//! Integration tests, one module per area.
mod semaphore;
mod semaphore_contract;
