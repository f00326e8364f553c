//! `pvetoken audit`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {}

/// Runs `pvetoken audit`.
pub fn run(_args: AuditArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("audit")
}
