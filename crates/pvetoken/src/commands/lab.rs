//! `pvetoken lab`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken lab`.
#[derive(Debug, Args)]
pub struct LabArgs {}

/// Runs `pvetoken lab`.
pub fn run(_args: LabArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("lab")
}
