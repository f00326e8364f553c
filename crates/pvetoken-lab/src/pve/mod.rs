//! The PVE simulator's API, one module per part of PVE's API tree: `access` (`/access`), `cluster`, `pools`,
//! `storage` and `nodes` (with `nodes::qemu`, `nodes::agent`, `nodes::tasks`). The route table that maps paths to
//! these handlers is `crate::server`'s.

pub(crate) mod access;
pub(crate) mod cluster;
pub(crate) mod nodes;
pub(crate) mod pools;
pub(crate) mod storage;

/// The ACL path of a VM, `/vms/{vmid}`: where every handler checks VM privileges.
pub(crate) fn vm_path(vmid: u64) -> String {
    format!("/vms/{vmid}")
}
