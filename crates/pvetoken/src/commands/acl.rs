//! `pvetoken acl`: offline permission evaluation from a user.cfg (`pvetoken acl --help`).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use pvetoken_acl::{AclPath, Catalog, Engine, Evaluator, ParsedCfg, Privilege, PveVersion, Subject, UserCfg};

use crate::exit::{CliError, Exit};
use crate::printer::Printer;

/// Arguments of `pvetoken acl`.
#[derive(Debug, Args)]
pub struct AclArgs {
    #[command(subcommand)]
    command: AclCommand,
}

#[derive(Debug, Subcommand)]
enum AclCommand {
    /// Effective privileges, exactly as GET /access/permissions?path=PATH would report them for the subject.
    Eval(EvalArgs),
    /// Why a subject has or lacks one privilege on a path: the ACL entries on the user and the token side.
    Explain(ExplainArgs),
    /// Print the canonical rewrite Proxmox would write for a user.cfg, and the warnings it would log.
    Normalize(NormalizeArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// The user.cfg to read (a copy of /etc/pve/user.cfg).
    #[arg(long, value_name = "FILE")]
    user_cfg: PathBuf,
    /// PVE release whose privileges and rules apply: 7, 8, 9 or major.minor such as 8.4 or 9.2 [default: newest, 9.2].
    #[arg(long, value_name = "VERSION")]
    pve_version: Option<String>,
}

#[derive(Debug, Args)]
struct EvalArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// User (`user@realm`) or API token (`user@realm!name`) to evaluate.
    #[arg(long, value_name = "ID", required_unless_present = "batch", conflicts_with = "batch")]
    subject: Option<String>,
    /// ACL path such as /vms/100; without it, the whole-tree map of GET /access/permissions.
    #[arg(long, value_name = "PATH", conflicts_with = "batch")]
    path: Option<String>,
    /// JSON lines `{"subject": ..., "path": ...}` from FILE (or `-` for stdin); one JSON line out per query.
    #[arg(long, value_name = "FILE|-")]
    batch: Option<String>,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// User (`user@realm`) or API token (`user@realm!name`).
    #[arg(long, value_name = "ID")]
    subject: String,
    /// ACL path such as /vms/100.
    #[arg(long, value_name = "PATH")]
    path: String,
    /// Privilege such as VM.Audit.
    #[arg(long = "priv", value_name = "PRIV")]
    privilege: String,
}

#[derive(Debug, Args)]
struct NormalizeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs `pvetoken acl`.
pub fn run(args: AclArgs, printer: &Printer) -> anyhow::Result<Exit> {
    match args.command {
        AclCommand::Eval(args) => eval(args, printer),
        AclCommand::Explain(args) => explain(args, printer),
        AclCommand::Normalize(args) => normalize(args, printer),
    }
}

/// The resolved inputs shared by the subcommands.
struct Loaded {
    catalog: Catalog,
    text: String,
}

fn load(config: &ConfigArgs) -> anyhow::Result<Loaded> {
    let version = match &config.pve_version {
        None => PveVersion::NEWEST,
        Some(v) => v.parse::<PveVersion>().map_err(|e| {
            CliError::usage(e.to_string()).with_hint(
                "pass a known release such as 8.4, 9.1 or 9.2 (the default is 9.2); docs/releases.md lists them",
            )
        })?,
    };
    let text = read_file(&config.user_cfg)?;
    Ok(Loaded { catalog: Catalog::for_version(version), text })
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    let bytes = pvetoken_lifecycle::token_store::read_limited(path, pvetoken_lifecycle::token_store::USER_CFG_MAX)
        .map_err(|e| {
            CliError::usage(format!("cannot read user.cfg {}: {e}", path.display()))
                .with_hint("copy /etc/pve/user.cfg from a PVE node and pass its path with --user-cfg")
        })?;
    // Proxmox treats the file as bytes; invalid UTF-8 only occurs in free-text fields, replaced here.
    Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn parse_subject(text: &str) -> Result<Subject, CliError> {
    text.parse::<Subject>().map_err(|e| {
        CliError::usage(e.to_string()).with_hint("a subject is a user id `user@realm` or a token id `user@realm!name`")
    })
}

fn check_path(text: &str) -> Result<(), CliError> {
    if is_normalized_path(text) {
        return Ok(());
    }
    AclPath::normalize(text).map(|_| ()).ok_or_else(|| {
        CliError::usage(format!("invalid ACL path '{text}'"))
            .with_hint("an ACL path looks like /, /vms/100, /storage/local or /pool/dev (letters, digits, . - _ and /)")
    })
}

/// True for a path `AclPath::normalize` accepts unchanged (the common case in batches): checked without a copy.
fn is_normalized_path(text: &str) -> bool {
    text == "/"
        || (text.starts_with('/')
            && !text.ends_with('/')
            && !text.contains("//")
            && text.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'/')))
}

fn eval(args: EvalArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let loaded = load(&args.config)?;
    if let Some(batch) = &args.batch {
        return eval_batch(&loaded, batch, printer);
    }
    let (cfg, _warnings) = UserCfg::parse(&loaded.text, &loaded.catalog);
    let evaluator = Evaluator::new(&cfg, &loaded.catalog);
    let subject = parse_subject(args.subject.as_deref().unwrap_or_default())?;
    let map: std::collections::BTreeMap<String, pvetoken_acl::Permissions> = match &args.path {
        Some(path) => {
            check_path(path)?;
            // Proxmox evaluates the path as given and reports it under that key.
            [(path.clone(), evaluator.permissions_raw(&subject, path))].into_iter().collect()
        }
        None => evaluator.permission_map(&subject),
    };
    if printer.is_json() {
        printer.json(&map)?;
        return Ok(Exit::Success);
    }
    let mut out = String::new();
    for (path, perms) in &map {
        out.push_str(path);
        out.push_str(if perms.is_empty() { ": (nothing)\n" } else { ":\n" });
        for (privilege, propagate) in perms.iter() {
            out.push_str(&format!("  {privilege}\t{}\n", u8::from(propagate)));
        }
    }
    if map.is_empty() {
        out.push_str(&format!("{subject} has no privileges on any path\n"));
    }
    printer.data(&out)?;
    Ok(Exit::Success)
}

/// One batch query; the strings borrow from the input line unless they contain JSON escapes.
#[derive(serde::Deserialize)]
struct Query<'a> {
    #[serde(borrow)]
    subject: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    path: std::borrow::Cow<'a, str>,
}

#[derive(serde::Serialize)]
struct Answer<'a> {
    subject: &'a str,
    path: &'a str,
    privs: pvetoken_acl::Permissions,
}

/// `--batch`: a file is read whole and the engine compiled only for the subjects it asks about (with their owners
/// and groups); stdin is answered line by line as it arrives (a caller may wait for each answer), with the engine
/// compiled for everyone.
fn eval_batch(loaded: &Loaded, source: &str, printer: &Printer) -> anyhow::Result<Exit> {
    let (parsed, _warnings) = ParsedCfg::parse(&loaded.text, &loaded.catalog);
    let mut answers = Answers::new(printer);
    if source == "-" {
        let engine = parsed.engine(&loaded.catalog);
        let mut reader = std::io::stdin().lock();
        let mut line = String::new();
        for number in 1.. {
            line.clear();
            if reader.read_line(&mut line).with_context(|| format!("reading batch line {number}"))? == 0 {
                break;
            }
            answers.answer(&engine, number, &line)?;
        }
    } else {
        let text = std::fs::read_to_string(source).map_err(|e| {
            CliError::usage(format!("cannot read batch file {source}: {e}"))
                .with_hint("pass a file of JSON lines {\"subject\": ..., \"path\": ...}, or - for stdin")
        })?;
        // Subjects of the lines that parse; a bad line is reported in its turn below, after the answers before it.
        let subjects: Vec<std::borrow::Cow<'_, str>> =
            text.lines().filter_map(|line| serde_json::from_str::<Query<'_>>(line).ok()).map(|q| q.subject).collect();
        let engine = parsed.engine_for(&loaded.catalog, subjects.iter().map(AsRef::as_ref));
        for (index, line) in text.split_inclusive('\n').enumerate() {
            answers.answer(&engine, index + 1, line)?;
        }
    }
    answers.finish()?;
    Ok(Exit::Success)
}

/// The answers of a batch, handed to the printer in chunks of about 64 KiB: output stays in order and streams
/// without a write per line.
struct Answers<'p> {
    printer: &'p Printer,
    out: Vec<u8>,
}

impl<'p> Answers<'p> {
    fn new(printer: &'p Printer) -> Answers<'p> {
        Answers { printer, out: Vec::with_capacity(1 << 17) }
    }

    /// Answers one input line (blank lines are skipped).
    fn answer(&mut self, engine: &Engine, number: usize, line: &str) -> anyhow::Result<()> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let query: Query<'_> = serde_json::from_str(line).map_err(|e| {
            CliError::usage(format!("batch line {number}: not a JSON object {{\"subject\": ..., \"path\": ...}}: {e}"))
        })?;
        let subject =
            parse_subject(&query.subject).map_err(|e| CliError::usage(format!("batch line {number}: {e}")))?;
        check_path(&query.path).map_err(|e| CliError::usage(format!("batch line {number}: {e}")))?;
        let answer =
            Answer { subject: &query.subject, path: &query.path, privs: engine.permissions_raw(&subject, &query.path) };
        serde_json::to_writer(&mut self.out, &answer)?;
        self.out.push(b'\n');
        if self.out.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.printer.data(&String::from_utf8_lossy(&self.out))?;
        self.out.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        if self.out.is_empty() { Ok(()) } else { self.flush() }
    }
}

fn explain(args: ExplainArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let loaded = load(&args.config)?;
    let subject = parse_subject(&args.subject)?;
    check_path(&args.path)?;
    let privilege = args.privilege.parse::<Privilege>().map_err(|e| {
        CliError::usage(e.to_string()).with_hint("privileges look like VM.Audit, Datastore.AllocateSpace, Sys.Modify")
    })?;
    let (cfg, _warnings) = UserCfg::parse(&loaded.text, &loaded.catalog);
    let evaluator = Evaluator::new(&cfg, &loaded.catalog);
    let explanation = evaluator.explain(&subject, &args.path, privilege);
    if printer.is_json() {
        printer.json(&explanation)?;
    } else {
        printer.data(&pvetoken_acl::explain::render_text(&explanation))?;
    }
    Ok(Exit::Success)
}

fn normalize(args: NormalizeArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let loaded = load(&args.config)?;
    let (cfg, warnings) = UserCfg::parse(&loaded.text, &loaded.catalog);
    let rewrite = cfg.write();
    if printer.is_json() {
        printer.json(&serde_json::json!({ "rewrite": rewrite, "warnings": warnings }))?;
    } else {
        for warning in &warnings {
            printer.warn(&warning.to_string());
        }
        printer.data(&rewrite)?;
    }
    Ok(Exit::Success)
}
