//! `pvetoken render`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken render`.
#[derive(Debug, Args)]
pub struct RenderArgs {}

/// Runs `pvetoken render`.
pub fn run(_args: RenderArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("render")
}
