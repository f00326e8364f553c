//! `pvetoken acl`.

use clap::Args;

use crate::exit::Exit;
use crate::printer::Printer;

/// Arguments of `pvetoken acl`.
#[derive(Debug, Args)]
pub struct AclArgs {}

/// Runs `pvetoken acl`.
pub fn run(_args: AclArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    super::not_yet("acl")
}
