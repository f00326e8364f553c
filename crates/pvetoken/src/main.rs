//! The `pvetoken` command line: parse, run, map the outcome to one exit code.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod audit;
mod cli;
mod commands;
mod connection;
mod deliver;
mod doctor;
mod evidence;
mod exit;
mod printer;
mod sinks;
mod version;

fn main() -> ExitCode {
    // `--version --output json`: clap answers --version before it reads other flags, so machines ask here.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wants_version = args.iter().any(|a| a == "--version" || a == "-V");
    let wants_json =
        args.windows(2).any(|w| w[0] == "--output" && w[1] == "json") || args.iter().any(|a| a == "--output=json");
    if wants_version && wants_json {
        let text = format!("{}\n", version::json());
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
        return ExitCode::SUCCESS;
    }
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
