//! `pvetoken list`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken list`.
#[derive(Debug, Args)]
pub struct ListArgs {}

/// Runs `pvetoken list`.
pub fn run(_args: ListArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("list")
}
