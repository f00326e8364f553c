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

/// Brings a remembered Semaphore sink up to date with a (rotated) token. Called by `pvetoken rotate`.
///
/// The token is passed as the token file's path so this function reads it through the token store.
pub fn refresh_semaphore_sink(
    _sink: &crate::sinks::SemaphoreSink,
    _token_file: &std::path::Path,
    _printer: &Printer,
) -> anyhow::Result<()> {
    Err(crate::exit::CliError::remote("updating Semaphore sinks is not built yet").into())
}
