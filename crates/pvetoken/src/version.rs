//! What `pvetoken --version` and `pvetoken version` say: the version, the git commit, and what the binary knows
//! (the PVE releases of `pvetoken_acl::release::RELEASES`, the Semaphore API it speaks).

use std::sync::LazyLock;

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (`-modified` with local changes); `None` outside a checkout.
pub fn commit() -> Option<&'static str> {
    Some(env!("PVETOKEN_GIT_COMMIT")).filter(|c| !c.is_empty())
}

/// The Semaphore API pvetoken speaks: registration works on every Semaphore since 2.10.13 (environment secrets);
/// the simulator answers as 2.16 (its `api-docs.yml` 2.16.14).
pub const SEMAPHORE: &str = "2.10.13 and later (simulator: 2.16)";

/// The long `--version` text.
pub fn long() -> &'static str {
    static LONG: LazyLock<String> = LazyLock::new(|| {
        let releases = pvetoken_acl::release::RELEASES;
        let newest = pvetoken_acl::release::newest();
        format!(
            "{VERSION} (git {})\nPVE releases: {} (newest {}: pve-manager {}, libpve-access-control {})\n\
             Semaphore: {SEMAPHORE}",
            commit().unwrap_or("unknown"),
            releases.iter().map(|r| r.version.to_string()).collect::<Vec<_>>().join(", "),
            newest.version,
            newest.manager,
            newest.access_control
        )
    });
    &LONG
}

/// The same as JSON.
pub fn json() -> serde_json::Value {
    let releases: Vec<serde_json::Value> = pvetoken_acl::release::RELEASES
        .iter()
        .map(|r| {
            serde_json::json!({
                "release": r.version.to_string(),
                "pve_manager": r.manager,
                "date": r.date,
                "libpve_access_control": r.access_control.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "version": VERSION,
        "git_commit": commit(),
        "pve_releases": releases,
        "semaphore": SEMAPHORE,
    })
}
