//! Real consumers accept what `pvetoken render` writes, against a running lab: proxmoxer reads the
//! `ansible-vars` values, `ansible-playbook` (community.proxmox) runs with nothing but the `ansible-env` output in
//! its environment, curl and npm `proxmox-api` authenticate with `header`, `bash` sources `env`; the bpg, Telmate
//! and Packer outputs build exactly the header their sources build, and the lab accepts it.
//! Tools come from `scripts/install-test-deps.sh`; a missing tool fails the test unless PVETOKEN_SKIP_THIRD_PARTY=1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pvetoken_api::{ExposeSecret, Secret};
use pvetoken_render::TokenFile;
use serde_json::Value;

use crate::support::{Api, LabProcess, client_command, clients_dir, create_token, run_bounded, tool};

const LIMIT: Duration = Duration::from_secs(180);
const OWNER: &str = "automation@pve";

/// A lab with `automation@pve` (Administrator on `/`), a privilege-sharing token of it, and the token file
/// pvetoken would have written for it (CA file of the lab, mode 0600).
struct Setup {
    lab: LabProcess,
    token_file: PathBuf,
    full_id: String,
    secret: Secret,
}

fn setup() -> Setup {
    let lab = LabProcess::start(&["--pve-version", "9.1"]);
    let root = lab.root_api();
    root.post("/access/users", &[("userid", OWNER)]).expect("create the automation user");
    root.put("/access/acl", &[("path", "/"), ("roles", "Administrator"), ("users", OWNER)]).expect("grant");
    let (full_id, secret) = create_token(&root, OWNER, "render", false);
    let mut token = TokenFile::new(
        &lab.ready.pve_url,
        &lab.ready.node,
        full_id.parse().expect("the lab returns a valid id"),
        Secret::from(secret.expose_secret().to_owned()),
    )
    .expect("the lab URL is https://HOST:PORT");
    token.ca_file = Some(lab.ready.ca_file.clone());
    let token_file = lab.dir().join("token.env");
    write_private(&token_file, token.render());
    Setup { lab, token_file, full_id, secret }
}

use super::support::write_private;

/// `pvetoken render --format FORMAT --token-file T --out LAB/FORMAT.out`.
fn render(setup: &Setup, format: &str) -> PathBuf {
    let out = setup.lab.dir().join(format!("{format}.out"));
    let output = Command::new(env!("CARGO_BIN_EXE_pvetoken"))
        .args(["render", "--format", format, "--token-file"])
        .arg(&setup.token_file)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run pvetoken render");
    assert!(output.status.success(), "render {format}: {}", String::from_utf8_lossy(&output.stderr));
    out
}

/// The variables a shell file sets (`set -a; . FILE`), in an otherwise empty environment.
fn sourced(path: &Path) -> BTreeMap<String, String> {
    let output = Command::new("bash")
        .args(["-c", "set -a; . \"$1\"; set +a; env -0", "_"])
        .arg(path)
        .env_clear()
        .output()
        .expect("bash");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .split('\0')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| !["PWD", "SHLVL", "_", "OLDPWD"].contains(key))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// Reads `/version` and the caller's permissions on `/` with `authorization` as the header.
fn lab_accepts(setup: &Setup, authorization: &str) -> Value {
    let api = Api::with_authorization(&setup.lab.ready, authorization);
    api.get("/access/permissions", &[("path", "/")]).unwrap_or_else(|e| panic!("the lab refused the header: {e:?}"))
}

#[test]
fn proxmoxer_authenticates_with_the_ansible_vars_values() {
    let Some(python) = tool("python") else { return };
    let setup = setup();
    let vars = render(&setup, "ansible-vars");
    let script = r#"
import json, sys, yaml
from proxmoxer import ProxmoxAPI
class Loader(yaml.SafeLoader):
    pass
Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
v = yaml.load(open(sys.argv[1]), Loader=Loader)
px = ProxmoxAPI(v["api_host"], port=v["api_port"], user=v["api_user"], token_name=v["api_token_id"],
                token_value=v["api_token_secret"], verify_ssl=v.get("ca_path", v["validate_certs"]))
print(json.dumps({"version": px.version.get(), "perms": px.access.permissions.get(path="/")}))
"#;
    let output = run_bounded(client_command(&python, &setup.lab).arg("-c").arg(script).arg(&vars), LIMIT);
    assert!(output.status.success(), "proxmoxer failed:\n{}", output.both());
    let report: Value = serde_json::from_str(output.stdout.trim()).expect("one JSON line");
    assert_eq!(report["version"]["release"], "9.1", "{report}");
    assert_eq!(report["perms"]["/"]["Sys.Audit"], 1, "Administrator through the token: {report}");
    assert!(!output.both().contains(setup.secret.expose_secret()));
}

#[test]
fn ansible_playbook_runs_user_info_and_kvm_with_only_the_ansible_env_output() {
    let Some(playbook) = tool("ansible-playbook") else { return };
    let setup = setup();
    let env_file = render(&setup, "ansible-env");
    let root = setup.lab.root_api();
    let node = setup.lab.ready.node.clone();
    let source = root.get(&format!("/nodes/{node}/qemu/9000/config"), &[]).expect("the scenario's template 9000");
    let source_name = source["name"].as_str().expect("template name").to_owned();
    let new_vmid = root.get("/cluster/nextid", &[]).expect("next id");
    let new_vmid =
        new_vmid.as_str().map(str::to_owned).or_else(|| new_vmid.as_u64().map(|n| n.to_string())).expect("number");
    let book = super::support::clients_dir().join("render-consumers.yml");

    let bash = tool("bash").expect("bash");
    let output = run_bounded(
        client_command(&bash, &setup.lab)
            .args(["-c", "set -a; . \"$1\"; set +a; shift; exec \"$@\"", "_"])
            .arg(&env_file)
            .arg(&playbook)
            .args(["-i", "localhost,"])
            .arg(&book)
            .args(["-e", &format!("node={node}"), "-e", &format!("source_name={source_name}")])
            .args(["-e", &format!("new_vmid={new_vmid}")])
            .env("ANSIBLE_HOME", setup.lab.dir().join("ansible"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCALHOST_WARNING", "0")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0"),
        LIMIT,
    );
    assert!(output.status.success(), "ansible-playbook failed:\n{}", output.both());
    let config = root.get(&format!("/nodes/{node}/qemu/{new_vmid}/config"), &[]).expect("the clone exists");
    assert_eq!(config["name"], "rendered-env-clone", "{config}");
}

#[test]
fn curl_authenticates_with_the_header_output() {
    let Some(curl) = tool("curl") else { return };
    let setup = setup();
    let header = render(&setup, "header");
    // The header goes through a 0600 file (`-H @FILE`), never through curl's argv.
    let header_file = setup.lab.dir().join("curl-headers");
    let value = std::fs::read_to_string(&header).expect("read");
    write_private(&header_file, format!("Authorization: {value}"));
    let output = run_bounded(
        client_command(&curl, &setup.lab)
            .args(["-fsS", "--cacert"])
            .arg(&setup.lab.ready.ca_file)
            .arg("-H")
            .arg(format!("@{}", header_file.display()))
            .arg(format!("{}/api2/json/access/permissions?path=/", setup.lab.ready.pve_url)),
        LIMIT,
    );
    assert!(output.status.success(), "curl failed:\n{}", output.both());
    let body: Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(body["data"]["/"]["Sys.Audit"], 1, "{body}");
}

#[test]
fn npm_proxmox_api_authenticates_with_the_parts_of_the_header_output() {
    let (Some(node), Some(_module)) = (tool("node"), tool("node-module:proxmox-api")) else { return };
    let setup = setup();
    let header = render(&setup, "header");
    let script = r#"
const fs = require('fs');
const m = require('proxmox-api');
const proxmoxApi = m.default || m.proxmoxApi;
const header = fs.readFileSync(process.env.HEADER_FILE, 'utf8').trim();
const rest = header.replace(/^PVEAPIToken=/, '');
const cut = rest.lastIndexOf('=');
const px = proxmoxApi({ host: process.env.PVE_HOST, port: Number(process.env.PVE_PORT),
                        tokenID: rest.slice(0, cut), tokenSecret: rest.slice(cut + 1) });
(async () => {
  const version = await px.version.$get();
  const perms = await px.access.permissions.$get({ path: '/' });
  console.log(JSON.stringify({ version, perms }));
})().catch((e) => { console.error(String(e && e.message)); process.exit(1); });
"#;
    let output = run_bounded(
        client_command(&node, &setup.lab)
            .current_dir(clients_dir())
            .env("NODE_PATH", clients_dir().join("node_modules"))
            .env("HEADER_FILE", &header)
            .env("PVE_HOST", setup.lab.ready.pve_host())
            .env("PVE_PORT", setup.lab.ready.pve_port().to_string())
            .args(["-e", script]),
        LIMIT,
    );
    assert!(output.status.success(), "proxmox-api failed:\n{}", output.both());
    let report: Value = serde_json::from_str(output.stdout.trim()).expect("JSON");
    assert_eq!(report["version"]["release"], "9.1", "{report}");
    assert_eq!(report["perms"]["/"]["Sys.Audit"], 1, "{report}");
}

#[test]
fn sourcing_the_env_output_gives_the_token_file_variables_and_they_authenticate() {
    let setup = setup();
    let vars = sourced(&render(&setup, "env"));
    assert_eq!(vars["PROXMOX_TOKEN_ID"], setup.full_id);
    assert_eq!(vars["PROXMOX_TOKEN_SECRET"], setup.secret.expose_secret());
    assert_eq!(vars["PROXMOX_URL"], setup.lab.ready.pve_url);
    assert_eq!(vars["PROXMOX_NODE"], setup.lab.ready.node);
    assert_eq!(vars["PROXMOX_CA_FILE"], setup.lab.ready.ca_file.to_string_lossy());
    let perms =
        lab_accepts(&setup, &format!("PVEAPIToken={}={}", vars["PROXMOX_TOKEN_ID"], vars["PROXMOX_TOKEN_SECRET"]));
    assert_eq!(perms["/"]["Sys.Audit"], 1, "{perms}");
}

#[test]
fn bpg_output_matches_its_token_pattern_and_the_header_bpg_builds_is_accepted() {
    let setup = setup();
    let vars = sourced(&render(&setup, "terraform-bpg"));
    let token = &vars["PROXMOX_VE_API_TOKEN"];
    // bpg/terraform-provider-proxmox, proxmox/api/credentials.go: ^\S+@\S+!\S+=([a-zA-Z0-9-]+)$
    let pattern = regex::Regex::new(r"^\S+@\S+!\S+=([a-zA-Z0-9-]+)$").expect("bpg's pattern");
    assert!(pattern.is_match(token), "bpg would refuse {token:?}");
    assert!(!token.starts_with("PVEAPIToken="), "bpg adds the prefix itself");
    // docs/index.md: the endpoint is https://host:port/ without /api2/json; bpg appends api2/json itself.
    let endpoint = &vars["PROXMOX_VE_ENDPOINT"];
    assert_eq!(endpoint, &format!("{}/", setup.lab.ready.pve_url));
    assert!(!endpoint.contains("api2"));
    assert_eq!(vars["PROXMOX_VE_INSECURE"], "false");
    // proxmox/api/token_auth.go: Authorization = "PVEAPIToken=" + token.
    assert_eq!(lab_accepts(&setup, &format!("PVEAPIToken={token}"))["/"]["Sys.Audit"], 1);
}

#[test]
fn telmate_and_packer_outputs_have_their_documented_shapes_and_the_sdk_header_is_accepted() {
    let setup = setup();
    for (format, url, id, secret) in [
        ("terraform-telmate", "PM_API_URL", "PM_API_TOKEN_ID", "PM_API_TOKEN_SECRET"),
        ("packer", "PROXMOX_URL", "PROXMOX_USERNAME", "PROXMOX_TOKEN"),
    ] {
        let vars = sourced(&render(&setup, format));
        // Telmate docs and proxmox-api-go: the URL ends in /api2/json, the id holds `!`, the secret is alone;
        // Packer's builder docs say the same for proxmox_url / username / token.
        assert_eq!(vars[url], format!("{}/api2/json", setup.lab.ready.pve_url), "{format}");
        let (user, name) = vars[id].split_once('!').unwrap_or_else(|| panic!("{format}: {id} without `!`"));
        assert_eq!((user, name), (OWNER, "render"), "{format}");
        assert_eq!(vars[secret], setup.secret.expose_secret(), "{format}");
        assert!(!vars.contains_key("PM_PASS") && !vars.contains_key("PROXMOX_PASSWORD"), "{format}");
        // proxmox-api-go session.go (also used by packer-plugin-proxmox): "PVEAPIToken=" + id + "=" + secret.
        let header = format!("PVEAPIToken={}={}", vars[id], vars[secret]);
        assert_eq!(lab_accepts(&setup, &header)["/"]["Sys.Audit"], 1, "{format}");
    }
}
