//! `pvetoken create`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken create`.
#[derive(Debug, Args)]
pub struct CreateArgs {}

/// Runs `pvetoken create`.
pub fn run(_args: CreateArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("create")
}
