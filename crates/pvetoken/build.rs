//! Records the git commit the binary is built from (`PVETOKEN_GIT_COMMIT`, empty outside a git checkout), for
//! `pvetoken --version`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .is_some_and(|output| !output.stdout.is_empty());
    let commit = if dirty && !commit.is_empty() { format!("{commit}-modified") } else { commit };
    println!("cargo:rustc-env=PVETOKEN_GIT_COMMIT={commit}");
    for path in ["../../.git/HEAD", "../../.git/index", "../../.git/refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
