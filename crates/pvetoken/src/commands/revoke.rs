//! `pvetoken revoke`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {}

/// Runs `pvetoken revoke`.
pub fn run(_args: RevokeArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("revoke")
}
