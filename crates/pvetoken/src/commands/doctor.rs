//! `pvetoken doctor`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

/// Runs `pvetoken doctor`.
pub fn run(_args: DoctorArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("doctor")
}
