//! `pvetoken deliver`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken deliver`.
#[derive(Debug, Args)]
pub struct DeliverArgs {}

/// Runs `pvetoken deliver`.
pub fn run(_args: DeliverArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("deliver")
}
