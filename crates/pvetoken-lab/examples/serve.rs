//! Minimal stand-alone lab server for benchmarks: `serve READY_FILE STATE_DIR` (the real CLI is
//! `pvetoken lab serve`). Writes the ready JSON (0600) and runs until killed.
#![allow(clippy::print_stderr, reason = "example binary")]

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let ready_file = args.next().ok_or("usage: serve READY_FILE STATE_DIR")?;
    let state_dir = args.next().ok_or("usage: serve READY_FILE STATE_DIR")?;
    let lab = pvetoken_lab::start(pvetoken_lab::LabConfig {
        state_dir: Some(state_dir.into()),
        ..pvetoken_lab::LabConfig::default()
    })
    .await?;
    eprintln!("SIMULATOR: pvetoken lab on {}", lab.ready().pve_url);
    let tmp = format!("{ready_file}.tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(&serde_json::to_vec(lab.ready())?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &ready_file)?;
    tokio::signal::ctrl_c().await?;
    lab.shutdown().await;
    Ok(())
}
