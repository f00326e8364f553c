//! Proxmox VE and Semaphore API simulators built on pvetoken-acl.

pub mod semaphore;
