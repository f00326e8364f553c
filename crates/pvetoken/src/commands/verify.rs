//! `pvetoken verify`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Runs `pvetoken verify`.
pub fn run(_args: VerifyArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("verify")
}
