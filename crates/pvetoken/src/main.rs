//! The `pvetoken` command line: parse, run, map the outcome to one exit code.

use std::process::ExitCode;

use clap::Parser;

mod audit;
mod cli;
mod commands;
mod connection;
mod deliver;
mod doctor;
mod env_vars;
mod exit;
mod printer;
mod profiles;
mod release;
mod sinks;
mod token_store;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
            let code = if error.use_stderr() { exit::Exit::Usage } else { exit::Exit::Success };
            let _ = error.print();
            return code.into();
        }
    };
    let printer = printer::Printer::from_args(&cli.global);
    let outcome = commands::run(cli.command, &printer);
    exit::finish(outcome, &printer).into()
}
