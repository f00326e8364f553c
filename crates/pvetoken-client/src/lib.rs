//! HTTPS clients for Proxmox VE and Semaphore: auth, TLS pinning, safe retries.
