//! `pvetoken lint`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken lint`.
#[derive(Debug, Args)]
pub struct LintArgs {}

/// Runs `pvetoken lint`.
pub fn run(_args: LintArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("lint")
}
