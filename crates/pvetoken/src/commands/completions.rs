//! `pvetoken completions SHELL` and `pvetoken man --out-dir DIR`: shell completions and man pages generated from
//! the clap definitions (clap_complete, clap_mangen), so they never drift from `--help`. The Debian package ships
//! both; users without it run these.

use std::path::PathBuf;

use clap::{Args, CommandFactory, ValueEnum};

use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: `bash`, `zsh`, `fish`, `elvish` or `powershell`.
    #[arg(value_enum)]
    shell: Shell,
}

/// Shells clap_complete writes for.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// Arguments of `pvetoken man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `pvetoken.1` and one `pvetoken-COMMAND.1` per subcommand here.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

/// Prints the completion script for a shell on stdout.
pub fn run_completions(args: &CompletionsArgs, _printer: &Printer) -> anyhow::Result<Exit> {
    let mut command = crate::cli::Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
        Shell::Elvish => clap_complete::Shell::Elvish,
        Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "pvetoken", &mut script);
    // A closed stdout (`| head`) ends the output quietly.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
    Ok(Exit::Success)
}

/// Writes the man pages.
pub fn run_man(args: &ManArgs, printer: &Printer) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|error| CliError::usage(format!("cannot create {}: {error}", args.out_dir.display())))?;
    let command = crate::cli::Cli::command();
    clap_mangen::generate_to(command, &args.out_dir)
        .map_err(|error| CliError::usage(format!("cannot write man pages to {}: {error}", args.out_dir.display())))?;
    let mut pages: Vec<String> = std::fs::read_dir(&args.out_dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".1"))
        .collect();
    pages.sort();
    if printer.is_json() {
        printer.json(&serde_json::json!({ "out_dir": args.out_dir, "pages": pages }))?;
    } else {
        printer.data(&format!("wrote {} man pages to {}", pages.len(), args.out_dir.display()))?;
    }
    Ok(Exit::Success)
}
