//! One module per command. Each takes its clap arguments, resolves them into settings, and runs.

use crate::cli::Command;
use crate::exit::Exit;
use crate::printer::Printer;

pub mod acl;
pub mod apply;
pub mod audit;
pub mod completions;
pub mod create;
pub mod deliver;
pub mod demo;
pub mod doctor;
pub mod exec;
pub mod lab;
pub mod learn;
pub mod lint;
pub mod list;
pub mod register;
pub mod register_openbao;
pub mod render;
pub mod revoke;
pub mod rotate;
pub mod verify;

/// Runs the chosen command.
pub fn run(command: Command, printer: &Printer) -> anyhow::Result<Exit> {
    match command {
        Command::Create(args) => create::run(args, printer),
        Command::Verify(args) => verify::run(args, printer),
        Command::List(args) => list::run(args, printer),
        Command::Revoke(args) => revoke::run(args, printer),
        Command::Rotate(args) => rotate::run(args, printer),
        Command::Render(args) => render::run(args, printer),
        Command::Lint(args) => lint::run(args, printer),
        Command::Register(args) => register::run(args, printer),
        Command::Deliver(args) => deliver::run(args, printer),
        Command::Audit(args) => audit::run(args, printer),
        Command::Doctor(args) => doctor::run(args, printer),
        Command::Demo(args) => demo::run(args, printer),
        Command::Acl(args) => acl::run(args, printer),
        Command::Lab(args) => lab::run(args, printer),
        Command::Plan(args) => apply::run_plan(args, printer),
        Command::Apply(args) => apply::run_apply(args, printer),
        Command::Learn(args) => learn::run(args, printer),
        Command::Exec(args) => exec::run(args, printer),
        Command::Gc(args) => exec::run_gc(args, printer),
        Command::Completions(args) => completions::run_completions(&args, printer),
        Command::Man(args) => completions::run_man(&args, printer),
        Command::Version => {
            if printer.is_json() {
                printer.json(&crate::version::json())?;
            } else {
                printer.data(&format!("pvetoken {}", crate::version::long()))?;
            }
            Ok(Exit::Success)
        }
    }
}
