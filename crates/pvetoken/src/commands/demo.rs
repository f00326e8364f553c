//! `pvetoken demo`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {}

/// Runs `pvetoken demo`.
pub fn run(_args: DemoArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("demo")
}
