//! The lifecycle used as a library, with no CLI around it: against the built-in lab (8.4, which cannot regenerate,
//! and 9.2, which can), converge a packer token, plan (nothing to change), drift a role by hand (the plan names
//! the privilege), converge again (repaired), rotate with no sinks: the token file holds a secret that works and
//! the old secret is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt as _;

use pvetoken_api::Secret;
use pvetoken_client::endpoint::Endpoint;
use pvetoken_client::pve::PveClient;
use pvetoken_client::{ClientError, TlsSettings};
use pvetoken_lifecycle::engine::{Lifecycle, Settings};
use pvetoken_lifecycle::plan::{Desired, Step};
use pvetoken_lifecycle::profiles::{self, Narrowing};
use pvetoken_lifecycle::rotate::{NoSinks, Rotation};
use pvetoken_lifecycle::target::Target;
use pvetoken_lifecycle::token::TokenRef;
use pvetoken_lifecycle::token_store::{self, PreparedTokenFile};
use pvetoken_lifecycle::{Silent, verify};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn life_of_a_token(version: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lab = pvetoken_lab::start(pvetoken_lab::LabConfig {
        pve_version: version.parse().unwrap(),
        state_dir: Some(dir.path().join("lab")),
        ..pvetoken_lab::LabConfig::default()
    })
    .await
    .unwrap();
    let ready = lab.ready().clone();
    let tls = TlsSettings { ca_file: Some(ready.ca_file.clone()), ..TlsSettings::default() };
    let endpoint = Endpoint::parse_pve(&ready.pve_url).unwrap();
    let target = Target::Remote { endpoint: endpoint.clone(), tls };
    let http = pvetoken_lifecycle::target::http_client(&target, TIMEOUT).unwrap();
    let password = Secret::from(ready.root_password.clone());
    let admin = PveClient::login(http.clone().unwrap(), endpoint.clone(), "root@pam", &password).await.unwrap();

    let profile = profiles::load("packer").unwrap();
    let settings = Settings {
        profile: "packer".into(),
        narrowing: Narrowing::default(),
        role: None,
        privsep: true,
        rotate_if_exists: false,
        expire: 0,
    };
    let token_file = dir.path().join("packer.env");
    let wanted = TokenRef::parse("automation@pve!packer").unwrap();
    let converge = async |expected: &str| {
        let mut run = Lifecycle::new(&settings, &target, &admin, http.clone(), &token_file, &Silent, TIMEOUT);
        let converged = run.converge_file(&profile, wanted.clone()).await.unwrap();
        assert_eq!(converged.outcome, expected, "{version}: {converged:?}");
        assert!(converged.missing.is_empty(), "{version}: {:?}", converged.missing);
    };
    converge("created").await;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    converge("unchanged").await;

    let desired = Desired {
        declared: wanted.full(),
        token: Desired::current_token(&wanted, &token_file),
        profile: profile.clone(),
        settings: settings.clone(),
        token_file: token_file.clone(),
        rotate_within: None,
        minter: false,
    };
    let now = pvetoken_lifecycle::clock::now();
    let plan = pvetoken_lifecycle::plan::plan(&admin, &target, std::slice::from_ref(&desired), now).await.unwrap();
    assert_eq!(plan.changes(), 0, "{version}: {plan:?}");

    // Drift by hand: a privilege the profile never asked for.
    let role: serde_json::Value = admin.get("/access/roles/Token-packer", &Vec::new()).await.unwrap();
    let mut privileges: Vec<String> = role.as_object().unwrap().keys().cloned().collect();
    privileges.push("Sys.Modify".into());
    admin.set_role("Token-packer", &privileges).await.unwrap();
    let plan = pvetoken_lifecycle::plan::plan(&admin, &target, std::slice::from_ref(&desired), now).await.unwrap();
    let steps: Vec<&Step> = plan.tokens[0].changes.iter().map(|c| &c.step).collect();
    assert!(
        matches!(steps.as_slice(), [Step::SetRole { removed, added, .. }] if removed == &["Sys.Modify"] && added.is_empty()),
        "{version}: {steps:?}"
    );
    converge("updated").await;
    let plan = pvetoken_lifecycle::plan::plan(&admin, &target, std::slice::from_ref(&desired), now).await.unwrap();
    assert_eq!(plan.changes(), 0, "{version}: repaired: {plan:?}");

    let before = token_store::read(&token_file).unwrap();
    let rotated = Rotation::new(&admin, http.clone(), &target, TIMEOUT, &Silent)
        .rotate(&token_file, &before, PreparedTokenFile::prepare(&token_file).unwrap(), &NoSinks)
        .await
        .unwrap();
    let expected_id = if version == "8.4" { "automation@pve!packer-r1" } else { "automation@pve!packer" };
    assert_eq!(rotated.new_id, expected_id, "{version}");
    let after = token_store::read(&token_file).unwrap();
    assert_eq!(after.token_id.as_str(), expected_id);
    let mut as_token = verify::AsToken::new(http.clone(), &target, TIMEOUT);
    let works = as_token.permissions(&admin, after.token_id.as_str(), &after.secret).await;
    assert!(works.is_ok(), "{version}: the new secret works: {works:?}");
    let old = as_token.permissions(&admin, before.token_id.as_str(), &before.secret).await;
    assert!(matches!(old, Err(ClientError::AuthFailed { .. })), "{version}: the old secret is refused: {old:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lives_through_the_library_alone_on_8_4_and_9_2() {
    life_of_a_token("8.4").await;
    life_of_a_token("9.2").await;
}
