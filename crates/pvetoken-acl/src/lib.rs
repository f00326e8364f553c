//! Proxmox VE identifiers, privilege catalogs, user.cfg/token.cfg parsing and writing, and the permission evaluator (pure: no I/O).
