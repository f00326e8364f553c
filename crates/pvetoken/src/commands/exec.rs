//! `pvetoken exec --profile P -- COMMAND`: a short-lived token for one job. The token is created for the job
//! (privilege-separated, its PVE expiry = now + TTL so it dies even if nothing cleans up), granted the profile's
//! ACLs, verified, and handed to COMMAND in its environment only (never a file, never argv, never printed). When
//! COMMAND ends, the token (and with it its ACL entries) is deleted and pvetoken exits with COMMAND's status.
//! `pvetoken gc` deletes ephemeral tokens that outlived their job. With `--minter` the job's token is minted by a
//! minter (`create --minter`, [`pvetoken_lifecycle::minter`]): not privilege-separated, no ACL written.
//!
//! Signals: SIGTERM and SIGHUP are forwarded to COMMAND; SIGINT too when stdin is not a terminal (on a terminal,
//! Ctrl-C already reaches COMMAND, which shares pvetoken's process group).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use clap::Args;
use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::pve::{AclChange, NewToken, PveClient};
use pvetoken_render::{Format, TokenFile};

use pvetoken_lifecycle::clock::now;
use pvetoken_lifecycle::minter;
use pvetoken_lifecycle::target::target_url;
use pvetoken_lifecycle::token::{TokenRef, validate_user};

use crate::args::NarrowingArgs;
use crate::connection::{ConnectionArgs, Target, TargetFallback};
use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::env_vars::{self, ScrubCredentials};
use pvetoken_lifecycle::profiles::{self, PveVersion, Resolved};

/// Arguments of `pvetoken exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Consumer profile whose ACLs the job's token gets (built-in name or a profile TOML file).
    #[arg(long, value_name = "NAME|FILE")]
    profile: String,
    /// The user that owns the job's token (created without a password if missing; needs the profile's rights).
    #[arg(long, value_name = "USER@REALM", default_value = "automation@pve", conflicts_with = "minter")]
    user: String,
    /// Mint with a minter's token (the admin token file, from `pvetoken create --minter`): the job's token belongs
    /// to the minter, is not privilege-separated and holds exactly the minter's rights; no role, user or ACL is
    /// changed (the minter could not). A profile the minter does not hold fails before COMMAND runs.
    #[arg(long)]
    minter: bool,
    /// Lifetime of the token: PVE deletes nothing, but refuses it after this (1m .. 31d).
    #[arg(long, value_name = "SPAN", default_value = "30m", value_parser = parse_ttl)]
    ttl: i64,
    /// The variables COMMAND gets: env, packer, terraform-bpg, terraform-telmate or ansible-env (default: the
    /// profile's consumer: packer → packer, terraform → terraform-bpg, ansible → ansible-env, else env).
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Leave the token until its expiry instead of deleting it when COMMAND ends (debugging; warned).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    narrowing: NarrowingArgs,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Arguments of `pvetoken gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// The users whose ephemeral tokens are checked (repeatable).
    #[arg(long, value_name = "USER@REALM", default_value = "automation@pve")]
    user: Vec<String>,
    #[command(flatten)]
    connection: ConnectionArgs,
}

fn parse_ttl(text: &str) -> Result<i64, String> {
    let seconds = pvetoken_lifecycle::clock::parse_span(text)?;
    if !(60..=31 * 86_400).contains(&seconds) {
        return Err(format!("'{text}': a job token lives between 1m and 31d"));
    }
    Ok(seconds)
}

/// The default variables for a profile's consumer.
fn default_format(profile: &str) -> Format {
    match profile {
        "packer" => Format::Packer,
        "terraform" => Format::TerraformBpg,
        "terraform-telmate" => Format::TerraformTelmate,
        "ansible" => Format::AnsibleEnv,
        _ => Format::Env,
    }
}

/// Where COMMAND's program is, as a shell would find it; `None` = 127.
fn find_program(program: &OsString) -> Option<PathBuf> {
    let path = PathBuf::from(program);
    if path.components().count() > 1 {
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .and_then(|dirs| std::env::split_paths(&dirs).map(|dir| dir.join(&path)).find(|candidate| candidate.is_file()))
}

fn random_suffix() -> Result<String, CliError> {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes))
        .map_err(|error| CliError::usage(format!("cannot read /dev/urandom: {error}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `pvetoken exec`.
pub fn run(args: ExecArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let profile = profiles::load(&args.profile).map_err(CliError::from)?;
    validate_user(&args.user)?;
    let format = handover_format(&args, &profile)?;
    let Some(program) = find_program(&args.command[0]) else {
        // As a shell: 127, and no token was made for a job that cannot run.
        return Err(CliError {
            exit: Exit::Child(127),
            message: format!("{}: command not found; no token was created", args.command[0].to_string_lossy()),
            hint: None,
        }
        .into());
    };
    let target = args.connection.resolve_target(&TargetFallback::from_default_token_file(), printer)?;
    let admin = args.connection.resolve_admin()?;
    let owner = if args.minter { minter_user(&args, &admin)? } else { args.user.clone() };
    let timeout = args.connection.timeout();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let http = crate::connection::http_client(&target, timeout)?;
        let client = crate::connection::connect_admin(&target, http.as_ref(), &admin, timeout).await?;
        let remote = |error: &pvetoken_client::ClientError| crate::connection::remote_error(error, &target);
        let version = client.version().await.map_err(|e| remote(&e))?;
        let pve = version
            .major_minor()
            .map(|(major, minor)| PveVersion { major, minor })
            .ok_or_else(|| CliError::remote(format!("cannot read the PVE version from `{}`", version.version)))?;
        let resolved = profile.resolve(pve, &args.narrowing.narrowing(), None);
        if args.minter {
            minter_holds(&client, &target, &owner, &resolved, printer).await?;
        }
        let name = format!("{}-x{}", profile.name, random_suffix()?);
        let token = TokenRef { user: owner, name };
        let expire = now() + args.ttl;
        if !args.minter {
            // Role, user: as `create` leaves them (an existing user is never changed). A minter changes nothing.
            role_and_user(&client, &target, &resolved, &token.user).await?;
        }
        let comment = minter::ephemeral_comment(&minter::hostname(), std::process::id(), expire);
        let new = NewToken { privsep: !args.minter, expire, comment: Some(comment) };
        let created = client.create_token(&token.user, &token.name, &new).await.map_err(|e| remote(&e))?;
        let secret: Secret = created.value;
        printer.verbose(&format!("created {} (expires in {} s)", token.full(), args.ttl));
        // From here on the token exists: every way out deletes it (unless --keep).
        let outcome =
            job(&args, &client, http.as_ref(), &target, &token, &secret, &resolved, format, &program, expire, printer)
                .await;
        if args.keep {
            printer.warn(&format!("--keep: {} stays until it expires ({expire})", token.full()));
        } else if let Err(error) = client.delete_token(&token.user, &token.name).await {
            printer.warn(&format!(
                "could not delete {}: {error}; it expires by itself at {expire} (pvetoken gc removes it)",
                token.full()
            ));
        } else {
            printer.verbose(&format!("deleted {} and its ACL entries", token.full()));
        }
        outcome
    })
}

/// `--format`, or the profile's default: one that hands the token over in environment variables (refused before
/// any token exists otherwise).
fn handover_format(args: &ExecArgs, profile: &profiles::Profile) -> Result<Format, CliError> {
    let format = match &args.format {
        Some(name) => name.parse::<Format>().map_err(|error| CliError::usage(error.to_string()))?,
        None => default_format(&profile.name),
    };
    if matches!(
        format,
        Format::Env | Format::Packer | Format::TerraformBpg | Format::TerraformTelmate | Format::AnsibleEnv
    ) {
        return Ok(format);
    }
    Err(CliError::usage(format!("--format {format} writes a file; exec hands over environment variables"))
        .with_hint("use env, packer, terraform-bpg, terraform-telmate or ansible-env"))
}

/// `--minter`: the user of the minter's token file, which the job token belongs to. Refused when there is no
/// token file, or when `--ttl` would outlive the minter's own token.
fn minter_user(args: &ExecArgs, admin: &crate::connection::AdminAuth) -> Result<String, CliError> {
    let crate::connection::AdminAuth::TokenFile(path) = admin else {
        return Err(CliError::usage("--minter acts with the minter's token file, and none was given").with_hint(
            format!(
                "{}=/etc/pvetoken/minter.env pvetoken exec --minter ... (the file `pvetoken create --minter \
                 --profiles P --token-file /etc/pvetoken/minter.env` wrote)",
                env_vars::PVETOKEN_ADMIN_TOKEN_FILE
            ),
        ));
    };
    let minter = pvetoken_lifecycle::token_store::read(path)?;
    // A job token must not outlive the credential that made it.
    let ends = now() + args.ttl;
    if minter.expire != 0 && u64::try_from(ends).is_ok_and(|ends| ends > minter.expire) {
        return Err(CliError::usage(format!(
            "--ttl {} s would outlive the minter's own token, which expires at {} (epoch seconds); no token was \
             created",
            args.ttl, minter.expire
        ))
        .with_hint("a shorter --ttl, or renew the minter first (pvetoken rotate --token-file FILE)"));
    }
    Ok(minter.token_id.user_str().to_owned())
}

/// The job's token holds the minter user's rights, which include the minter token's own: a profile the minter
/// token does not hold is refused here, before a token exists.
async fn minter_holds(
    client: &PveClient,
    target: &Target,
    owner: &str,
    resolved: &Resolved,
    printer: &Printer,
) -> Result<(), CliError> {
    let held = client.own_permissions(None).await.map_err(|e| crate::connection::remote_error(&e, target))?;
    let missing = pvetoken_lifecycle::verify::compare(&held, resolved);
    if missing.is_empty() {
        return Ok(());
    }
    printer.missing(&missing);
    Err(CliError::check_failed(format!(
        "the minter {owner} does not hold {} privilege(s) of profile {}; no token was created and COMMAND was not \
         run",
        missing.len(),
        resolved.profile
    ))
    .with_hint(format!(
        "set the minter up with that profile (pvetoken create --minter --profiles {},...) or use another minter",
        resolved.profile
    )))
}

/// The profile's role with exactly its privileges, and the user (created when missing, never changed).
async fn role_and_user(client: &PveClient, target: &Target, resolved: &Resolved, user: &str) -> Result<(), CliError> {
    let remote = |error: &pvetoken_client::ClientError| crate::connection::remote_error(error, target);
    let wanted = resolved.role_privileges();
    match client.role(&resolved.role).await.map_err(|e| remote(&e))? {
        None => client.create_role(&resolved.role, &wanted).await.map_err(|e| remote(&e))?,
        Some(mut current) => {
            current.sort();
            if current != wanted {
                client.set_role(&resolved.role, &wanted).await.map_err(|e| remote(&e))?;
            }
        }
    }
    match client.create_user(user, Some("API automation user created by pvetoken")).await {
        Ok(()) => Ok(()),
        Err(error) if error.is_already_exists() => Ok(()),
        Err(error) => Err(remote(&error)),
    }
}

/// Grants, verifies and runs COMMAND with the token; returns COMMAND's status.
#[expect(clippy::too_many_arguments, reason = "one job's settings, passed once")]
async fn job(
    args: &ExecArgs,
    client: &PveClient,
    http: Option<&reqwest::Client>,
    target: &Target,
    token: &TokenRef,
    secret: &Secret,
    resolved: &Resolved,
    format: Format,
    program: &std::path::Path,
    expire: i64,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let remote = |error: &pvetoken_client::ClientError| crate::connection::remote_error(error, target);
    // A minter's token is not privilege-separated: it holds the minter's rights, and no ACL is written.
    for path in resolved.paths.iter().filter(|_| !args.minter) {
        let change = AclChange::role(&path.path, &resolved.role, path.propagate).user(&token.user).token(token.full());
        client.change_acl(&change).await.map_err(|e| remote(&e))?;
    }
    // A minter's job token is not privilege-separated: it holds the minter user's rights, checked before it was
    // created. A privilege-separated one holds what its ACLs give it: checked now, before COMMAND runs.
    if !args.minter {
        let map = if client.is_local() {
            client.permissions_of(&token.full(), None).await
        } else {
            pvetoken_lifecycle::target::token_client(http, target, &token.full(), secret, args.connection.timeout())
                .own_permissions(None)
                .await
        }
        .map_err(|error| pvetoken_lifecycle::target::token_refused(&error, target))?;
        let missing = pvetoken_lifecycle::verify::compare(&map, resolved);
        if !missing.is_empty() {
            printer.missing(&missing);
            return Err(CliError::check_failed(format!(
                "the job's token lacks {} privilege(s) of profile {}; COMMAND was not run",
                missing.len(),
                resolved.profile
            ))
            .into());
        }
    }
    let node = match args.narrowing.node.first() {
        Some(node) => node.clone(),
        None => client
            .nodes()
            .await
            .map_err(|e| remote(&e))?
            .into_iter()
            .find(|n| n.status.as_deref() != Some("offline"))
            .map(|n| n.node)
            .unwrap_or_default(),
    };
    let id: pvetoken_acl::TokenId =
        token.full().parse().map_err(|_| CliError::remote(format!("invalid token id {}", token.full())))?;
    let mut file = TokenFile::new(&target_url(target), &node, id, Secret::from(secret.expose_secret().to_owned()))
        .map_err(|error| CliError::usage(format!("cannot describe the server: {error}")))?;
    if let Target::Remote { tls, .. } = target {
        file.fingerprint = tls.fingerprint.map(|fingerprint| fingerprint.to_string());
        file.ca_file = tls.ca_file.as_ref().and_then(|path| std::fs::canonicalize(path).ok());
        file.tls_insecure = tls.insecure;
    }
    file.expire = u64::try_from(expire).unwrap_or(0);
    let variables = format
        .variables(&file)
        .ok_or_else(|| {
            CliError::usage(format!("--format {format} writes a file; exec hands over environment variables"))
                .with_hint("use env, packer, terraform-bpg, terraform-telmate or ansible-env")
        })?
        .map_err(|error| CliError::usage(format!("cannot render {format}: {error}")))?;
    let names: Vec<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
    printer.info(&format!(
        "{} (profile {}, expires in {} min) in the environment of {}: {}",
        token.full(),
        resolved.profile,
        args.ttl / 60,
        args.command[0].to_string_lossy(),
        names.join(" ")
    ));
    let mut command = tokio::process::Command::new(program);
    command.args(&args.command[1..]);
    command.env_clear_credentials();
    for (name, value) in &variables {
        command.env(name, value);
    }
    command.env_remove(env_vars::PVETOKEN_ADMIN_TOKEN_FILE);
    let mut child =
        command.spawn().map_err(|error| CliError::usage(format!("cannot run {}: {error}", program.display())))?;
    let status = wait_forwarding(&mut child).await?;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    };
    Ok(Exit::Child(code))
}

/// Waits for the child, forwarding SIGTERM and SIGHUP (and SIGINT when stdin is not a terminal) to it.
async fn wait_forwarding(child: &mut tokio::process::Child) -> anyhow::Result<std::process::ExitStatus> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let forward_int = !std::io::stdin().is_terminal();
    let pid = child.id().and_then(|pid| i32::try_from(pid).ok()).and_then(rustix::process::Pid::from_raw);
    let send = |sig: rustix::process::Signal| {
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, sig);
        }
    };
    loop {
        tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = term.recv() => send(rustix::process::Signal::TERM),
            _ = hup.recv() => send(rustix::process::Signal::HUP),
            _ = int.recv() => if forward_int { send(rustix::process::Signal::INT) },
        }
    }
}

/// Runs `pvetoken gc`: deletes ephemeral tokens that are expired, or whose job (this host, a process that is
/// gone) ended without deleting them.
pub fn run_gc(args: GcArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let target = args.connection.resolve_target(&TargetFallback::from_default_token_file(), printer)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let deleted = runtime.block_on(async {
        let session = args.connection.admin_session(target).await?;
        let (client, remote) = (&session.client, |error: &pvetoken_client::ClientError| session.remote(error));
        let mut deleted = Vec::new();
        for user in &args.user {
            for info in client.tokens(user).await.map_err(|e| remote(&e))? {
                let Some(name) = info.tokenid.clone() else { continue };
                let kind = minter::Ephemeral::here(info.comment.as_deref(), info.expire, now());
                if kind.is_stale() {
                    client.delete_token(user, &name).await.map_err(|e| remote(&e))?;
                    printer.info(&format!("deleted {user}!{name} ({})", kind.reason()));
                    deleted.push(format!("{user}!{name}"));
                }
            }
        }
        Ok::<_, anyhow::Error>(deleted)
    })?;
    if printer.is_json() {
        printer.json(&serde_json::json!({ "deleted": deleted }))?;
    } else if deleted.is_empty() {
        printer.data("no ephemeral token to delete")?;
    } else {
        printer.data(&format!("deleted {} ephemeral token(s)", deleted.len()))?;
    }
    Ok(Exit::Success)
}
