//! `pvetoken lint [PATH...]`: credential mistakes in infrastructure files, reported like a compiler.
//!
//! Directories are walked (skipping `.git`, `target`, `node_modules`, `.terraform` and virtualenvs) for the file
//! types the rules know; files named explicitly are always read. Rules: `pvetoken_render::lint`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use pvetoken_render::lint::{self, DirectoryContext, Finding, LintOptions, PveMajor, Severity};
use serde::Serialize;

use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Directories never walked into.
const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules", ".terraform", ".venv", "venv", ".direnv"];

/// Arguments of `pvetoken lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files or directories to scan (default: the current directory).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The PVE major version roles are checked against (9: no VM.Monitor; 8: no VM.GuestAgent.*).
    #[arg(long, value_name = "8|9", default_value = "9", value_parser = ["8", "9"])]
    pve_version: String,
    /// Lowest severity that makes the exit code 1 (findings below it are still shown).
    #[arg(long, value_enum, default_value = "warning")]
    fail_on: FailOn,
}

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailOn {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Serialize)]
struct FileFinding<'a> {
    path: String,
    #[serde(flatten)]
    finding: &'a Finding,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    findings: Vec<FileFinding<'a>>,
    files_scanned: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
    unreadable: Vec<String>,
}

/// Runs `pvetoken lint`.
pub fn run(args: LintArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let options = LintOptions { pve: if args.pve_version == "8" { PveMajor::V8 } else { PveMajor::V9 } };
    let roots = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };

    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for root in &roots {
        match std::fs::symlink_metadata(root) {
            Ok(meta) if meta.is_dir() => walk(root, &mut files, &mut unreadable),
            Ok(_) => files.push(root.clone()),
            Err(error) => unreadable.push(format!("{}: {error}", root.display())),
        }
    }

    // Read everything first, then learn directory facts, then run the rules.
    let mut texts: Vec<(PathBuf, String)> = Vec::new();
    for path in files {
        match pvetoken_lifecycle::token_store::read_limited(&path, pvetoken_lifecycle::token_store::LINT_FILE_MAX) {
            Ok(bytes) => texts.push((path, String::from_utf8_lossy(&bytes).into_owned())),
            Err(error) => unreadable.push(format!("{}: {error}", path.display())),
        }
    }
    let mut contexts: BTreeMap<PathBuf, DirectoryContext> = BTreeMap::new();
    for (path, text) in &texts {
        let scanned = lint::scan_for_context(&file_name(path), text);
        contexts.entry(parent(path)).or_default().learn(&scanned);
    }
    let empty = DirectoryContext::default();
    let mut all: Vec<(String, Finding)> = Vec::new();
    for (path, text) in &texts {
        let context = contexts.get(&parent(path)).unwrap_or(&empty);
        for finding in lint::lint_text(&file_name(path), text, context, &options) {
            all.push((display(path), finding));
        }
    }

    let count = |severity: Severity| all.iter().filter(|(_, f)| f.severity == severity).count();
    let threshold = match args.fail_on {
        FailOn::Info => Severity::Info,
        FailOn::Warning => Severity::Warning,
        FailOn::Error => Severity::Error,
    };
    let failing = all.iter().any(|(_, f)| f.severity >= threshold);

    if printer.is_json() {
        let report = Report {
            findings: all.iter().map(|(path, finding)| FileFinding { path: path.clone(), finding }).collect(),
            files_scanned: texts.len(),
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            infos: count(Severity::Info),
            unreadable: unreadable.clone(),
        };
        printer.json(&report)?;
    } else {
        let mut text = String::new();
        for (path, f) in &all {
            text.push_str(&format!(
                "{path}:{}:{}: {}: {}: {}\n    fix: {}\n",
                f.line,
                f.column,
                f.rule,
                f.severity.as_str(),
                f.message,
                f.fix
            ));
        }
        if !text.is_empty() {
            printer.data(&text)?;
        }
        let summary = format!(
            "{} file(s) scanned: {} error(s), {} warning(s), {} info",
            texts.len(),
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Info)
        );
        if all.is_empty() { printer.success(&summary) } else { printer.info(&summary) }
    }

    if !unreadable.is_empty() {
        return Err(CliError::usage(format!("cannot read {}", unreadable.join("; ")))
            .with_hint("check the path and its permissions")
            .into());
    }
    Ok(if failing { Exit::CheckFailed } else { Exit::Success })
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, unreadable: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            unreadable.push(format!("{}: {error}", dir.display()));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) && !name.starts_with(".venv") {
                walk(&path, files, unreadable);
            }
        } else if kind.is_file() && lint::classify(&name).is_some() {
            files.push(path);
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn display(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}
