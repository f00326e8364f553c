//! The Semaphore simulator against Semaphore's published contract and a third-party client: schemathesis with
//! Semaphore's own `api-docs.yml` (2.16.14 excerpt, `tests/semaphore/`) and the PyPI `ansible-semaphore-client`.
//!
//! The tools come from `scripts/install-test-deps.sh` (found through `scripts/test-env.sh`). A missing tool fails
//! the test with the fix, unless `PVETOKEN_SKIP_THIRD_PARTY=1`. `PVETOKEN_SCHEMATHESIS_REPORT=FILE` keeps schemathesis'
//! summary (the figures for the notes).

use std::path::PathBuf;
use std::process::Command;

use pvetoken_lab::semaphore::{SemaphoreScenario, SemaphoreSim};

use crate::semaphore::serve;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's `bin/NAME`, or `None` (after checking the skip switch) with a failing message.
fn tool(name: &str) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(venv) = std::env::var_os("PVETOKEN_TEST_VENV") {
        candidates.push(PathBuf::from(venv).join("bin").join(name));
    }
    candidates.push(repo_root().join(".venv-tests/bin").join(name));
    if let Some(found) = candidates.into_iter().find(|path| path.is_file()) {
        return Some(found);
    }
    if std::env::var("PVETOKEN_SKIP_THIRD_PARTY").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "{name} is not installed: run scripts/install-test-deps.sh then `. scripts/test-env.sh` (or set \
         PVETOKEN_SKIP_THIRD_PARTY=1 to skip third-party proofs)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_violation_in_the_simulator() {
    let Some(schemathesis) = tool("schemathesis") else { return };
    // Seeded rows, so that list answers hold an inventory, a repository and a template whose shape is checked too.
    let scenario = crate::semaphore_templates::seeded_scenario("privatebox", Some("Empty"));
    let sim = SemaphoreSim::open(None, &scenario, "admin-pw".to_owned()).expect("open");
    let served = serve(sim).await;
    let token = served.sim.create_api_token("admin").expect("token");
    let script = repo_root().join("tests/semaphore/run-schemathesis.sh");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .arg(&served.url)
            .env("SEMAPHORE_API_TOKEN", token)
            .env("PATH", prepend_path(&schemathesis))
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis reported failures:\n{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "schemathesis ran no test:\n{stdout}");
    if let Some(path) = std::env::var_os("PVETOKEN_SCHEMATHESIS_REPORT") {
        std::fs::write(path, stdout.as_bytes()).expect("write the schemathesis summary");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ansible_semaphore_client_logs_in_and_manages_environments() {
    let Some(python) = tool("python") else { return };
    let sim = SemaphoreSim::open(None, &SemaphoreScenario::default(), "pa\"ss\\word".to_owned()).expect("open");
    let served = serve(sim).await;
    let script = repo_root().join("tests/semaphore/asc_probe.py");
    let url = served.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(&url)
            .arg("admin")
            .env("SEMAPHORE_PASSWORD", "pa\"ss\\word")
            .output()
            .expect("run the probe")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ansible-semaphore-client probe failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all steps passed"), "{stdout}");
    drop(served);
}

fn prepend_path(tool: &std::path::Path) -> std::ffi::OsString {
    let dir = tool.parent().map(PathBuf::from).unwrap_or_default();
    let mut paths = vec![dir];
    if let Some(current) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&current));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
