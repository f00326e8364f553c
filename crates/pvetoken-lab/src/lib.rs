//! Proxmox VE and Semaphore API simulators built on pvetoken-acl.
