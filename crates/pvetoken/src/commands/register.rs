//! `pvetoken register`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {}

/// Runs `pvetoken register`.
pub fn run(_args: RegisterArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("register")
}
