//! `pvetoken rotate`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {}

/// Runs `pvetoken rotate`.
pub fn run(_args: RotateArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("rotate")
}
