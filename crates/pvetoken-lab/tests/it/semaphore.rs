//! The Semaphore simulator answers as Semaphore 2.16 does: login and tokens, roles, environments with secrets that
//! are encrypted at rest and never returned.

use std::os::unix::fs::PermissionsExt;

use pvetoken_lab::semaphore::{Fault, ProjectRole, SemaphoreScenario, SemaphoreSim};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A member of each project role, and whether the role may change the project's resources.
pub const ROLES: [(&str, ProjectRole, bool); 4] = [
    ("guest", ProjectRole::Guest, false),
    ("runner", ProjectRole::TaskRunner, false),
    ("manager", ProjectRole::Manager, true),
    ("owner", ProjectRole::Owner, true),
];

/// A simulator served over plain HTTP on 127.0.0.1:0, stopped on drop.
pub struct Served {
    pub sim: SemaphoreSim,
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn serve(sim: SemaphoreSim) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = sim.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Served { sim, url, _stop: stop }
}

pub async fn serve_default() -> Served {
    let sim = SemaphoreSim::open(None, &SemaphoreScenario::default(), "admin-pw".to_owned()).expect("open sim");
    serve(sim).await
}

fn client() -> reqwest::Client {
    // Built together with the rest of the workspace, reqwest carries rustls without a default crypto provider
    // (feature unification with pvetoken-client), so install ours before building a client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `POST /api/project/1/environment` with an API token.
async fn post_environment(url: &str, token: &str, body: &Value) -> reqwest::Response {
    let request = client().post(format!("{url}/api/project/1/environment")).bearer_auth(token).json(body);
    request.send().await.expect("send the environment")
}

/// Logs in and returns the `Cookie` header value.
async fn login(url: &str, user: &str, password: &str) -> String {
    let response = client()
        .post(format!("{url}/api/auth/login"))
        .json(&json!({ "auth": user, "password": password }))
        .send()
        .await
        .expect("login request");
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "login as {user}");
    let set_cookie = response.headers()["set-cookie"].to_str().expect("ascii cookie").to_owned();
    set_cookie.split(';').next().expect("cookie pair").to_owned()
}

async fn admin_token(url: &str) -> String {
    let cookie = login(url, "admin", "admin-pw").await;
    let response =
        client().post(format!("{url}/api/user/tokens")).header("cookie", cookie).send().await.expect("create token");
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("token json");
    body["id"].as_str().expect("token id").to_owned()
}

/// `GET url` with the session cookie; the answer's JSON.
async fn get_json(url: String, cookie: &str) -> Value {
    let response = client().get(&url).header("cookie", cookie).send().await.expect("send");
    response.json().await.unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"))
}

fn environment_body(name: &str, secret: &str) -> Value {
    json!({
        "name": name, "project_id": 1, "json": "{}", "env": "{}", "password": null,
        "secrets": [
            { "name": "PROXMOX_TOKEN_SECRET", "secret": secret, "type": "env", "operation": "create" },
            { "name": "PROXMOX_NODE", "secret": "pve", "type": "env", "operation": "create" },
        ],
    })
}

#[tokio::test]
async fn login_sets_the_semaphore_cookie_and_the_cookie_authenticates() {
    let served = serve_default().await;
    let cookie = login(&served.url, "ADMIN", "admin-pw").await;
    assert!(cookie.starts_with("semaphore="), "{cookie}");
    let user: Value = get_json(format!("{}/api/user", served.url), &cookie).await;
    assert_eq!(user["username"], "admin");
    assert_eq!(user["admin"], true);
}

#[tokio::test]
async fn wrong_password_and_bad_body_and_missing_auth_answer_like_semaphore() {
    let served = serve_default().await;
    let url = &served.url;
    let wrong =
        client().post(format!("{url}/api/auth/login")).json(&json!({"auth": "admin", "password": "nope"})).send();
    assert_eq!(wrong.await.expect("send").status(), StatusCode::UNAUTHORIZED);
    let garbage = client().post(format!("{url}/api/auth/login")).body("{not json").send();
    assert_eq!(garbage.await.expect("send").status(), StatusCode::BAD_REQUEST);
    let anonymous = client().get(format!("{url}/api/projects")).send();
    assert_eq!(anonymous.await.expect("send").status(), StatusCode::UNAUTHORIZED);
    let bad_token = client().get(format!("{url}/api/projects")).header("authorization", "Bearer nope").send();
    assert_eq!(bad_token.await.expect("send").status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn default_scenario_has_project_1_named_privatebox() {
    let served = serve_default().await;
    let token = admin_token(&served.url).await;
    let projects: Value = client()
        .get(format!("{}/api/projects", served.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("projects")
        .json()
        .await
        .expect("json");
    assert_eq!(projects[0]["id"], 1);
    assert_eq!(projects[0]["name"], "PrivateBox");
}

#[tokio::test]
async fn api_token_is_bearer_case_insensitively_and_expires() {
    let served = serve_default().await;
    let url = &served.url;
    let token = admin_token(url).await;
    let upper = client().get(format!("{url}/api/user")).header("authorization", format!("BEARER {token}")).send();
    assert_eq!(upper.await.expect("send").status(), StatusCode::OK);
    let expire = client().delete(format!("{url}/api/user/tokens/{token}")).bearer_auth(&token).send();
    assert_eq!(expire.await.expect("send").status(), StatusCode::NO_CONTENT);
    let after = client().get(format!("{url}/api/user")).bearer_auth(&token).send();
    assert_eq!(after.await.expect("send").status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn create_answers_201_with_empty_secrets_and_get_lists_names_without_values() {
    let served = serve_default().await;
    let url = &served.url;
    let token = admin_token(url).await;
    let created = post_environment(url, &token, &environment_body("ProxmoxAPI", "super-secret-value-1")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    assert_eq!(created["secrets"], json!([]));
    let id = created["id"].as_i64().expect("id");

    let one = client().get(format!("{url}/api/project/1/environment/{id}")).bearer_auth(&token).send();
    let one_text = one.await.expect("get").text().await.expect("text");
    let list = client().get(format!("{url}/api/project/1/environment?sort=name&order=asc")).bearer_auth(&token).send();
    let list_text = list.await.expect("list").text().await.expect("text");
    for text in [&one_text, &list_text] {
        assert!(!text.contains("super-secret-value-1"), "a GET returned the secret: {text}");
        assert!(!text.contains("\"secret\""), "a GET has a secret field: {text}");
    }
    let one: Value = serde_json::from_str(&one_text).expect("json");
    let names: Vec<&str> =
        one["secrets"].as_array().expect("secrets").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["PROXMOX_TOKEN_SECRET", "PROXMOX_NODE"]);
    assert_eq!(one["secrets"][0]["type"], "env");
    assert_eq!(served.sim.secret_value(id, "PROXMOX_TOKEN_SECRET").as_deref(), Some("super-secret-value-1"));
}

#[tokio::test]
async fn update_checks_ids_and_replaces_secrets_by_delete_and_create() {
    let served = serve_default().await;
    let url = &served.url;
    let token = admin_token(url).await;
    let created: Value = post_environment(url, &token, &environment_body("E", "old")).await.json().await.expect("json");
    let id = created["id"].as_i64().expect("id");
    let current: Value = client()
        .get(format!("{url}/api/project/1/environment/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let secret_id = current["secrets"][0]["id"].as_i64().expect("secret id");

    let mismatch = client()
        .put(format!("{url}/api/project/1/environment/{id}"))
        .bearer_auth(&token)
        .json(&json!({"id": id + 1000, "name": "E", "project_id": 1, "json": "{}"}))
        .send()
        .await
        .expect("put");
    assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
    let body: Value = mismatch.json().await.expect("error json");
    assert_eq!(body["error"], "Environment ID in body and URL must be the same");

    let replace = client()
        .put(format!("{url}/api/project/1/environment/{id}"))
        .bearer_auth(&token)
        .json(&json!({"id": id, "name": "E", "project_id": 1, "json": "{}", "env": "{}", "secrets": [
            {"id": secret_id, "name": "PROXMOX_TOKEN_SECRET", "type": "env", "operation": "delete"},
            {"name": "PROXMOX_TOKEN_SECRET", "secret": "new", "type": "env", "operation": "create"},
        ]}))
        .send()
        .await
        .expect("put");
    assert_eq!(replace.status(), StatusCode::NO_CONTENT);
    assert_eq!(served.sim.secret_value(id, "PROXMOX_TOKEN_SECRET").as_deref(), Some("new"));
}

#[tokio::test]
async fn guest_and_task_runner_read_but_cannot_change_environments_manager_can() {
    let served = serve_default().await;
    let url = &served.url;
    for (name, role, may_write) in ROLES {
        served.sim.add_user(name, "pw", Some((1, role)));
        let cookie = login(url, name, "pw").await;
        let read = client().get(format!("{url}/api/project/1/environment")).header("cookie", &cookie).send();
        assert_eq!(read.await.expect("send").status(), StatusCode::OK, "{name} reads");
        let write = client()
            .post(format!("{url}/api/project/1/environment"))
            .header("cookie", &cookie)
            .json(&environment_body(&format!("by-{name}"), "x"))
            .send();
        let expected = if may_write { StatusCode::CREATED } else { StatusCode::FORBIDDEN };
        assert_eq!(write.await.expect("send").status(), expected, "{name} writes");
    }
}

#[tokio::test]
async fn non_member_gets_404_for_the_project_and_its_environments() {
    let served = serve_default().await;
    served.sim.add_user("stranger", "pw", None);
    let cookie = login(&served.url, "stranger", "pw").await;
    for path in ["/api/project/1", "/api/project/1/environment"] {
        let response = client().get(format!("{}{path}", served.url)).header("cookie", &cookie).send();
        assert_eq!(response.await.expect("send").status(), StatusCode::NOT_FOUND, "{path}");
    }
    let projects: Value = get_json(format!("{}/api/projects", served.url), &cookie).await;
    assert_eq!(projects, json!([]));
}

#[tokio::test]
async fn validation_errors_use_semaphore_messages() {
    let served = serve_default().await;
    let url = &served.url;
    let token = admin_token(url).await;
    for (body, message) in [
        (json!({"name": "E", "project_id": 2, "json": "{}"}), "Project ID in body and URL must be the same"),
        (json!({"name": "", "project_id": 1, "json": "{}"}), "Environment name can not be empty"),
        (json!({"name": "E", "project_id": 1, "json": "{"}), "Extra variables must be valid JSON"),
        (json!({"name": "E", "project_id": 1}), "Extra variables must be valid JSON"),
    ] {
        let response = post_environment(url, &token, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"], message);
    }
}

#[tokio::test]
async fn an_injected_fault_after_create_leaves_the_row_as_semaphore_would() {
    let served = serve_default().await;
    let url = &served.url;
    let token = admin_token(url).await;
    served.sim.inject_fault(Fault::AfterEnvironmentCreated);
    let response = post_environment(url, &token, &environment_body("Half", "v")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let ids = served.sim.environment_ids(1, "Half");
    assert_eq!(ids.len(), 1);
    assert_eq!(served.sim.secret_value(ids[0], "PROXMOX_NODE"), None);
}

#[tokio::test]
async fn only_admin_creates_users_and_projects() {
    let served = serve_default().await;
    let url = &served.url;
    served.sim.add_user("plain", "pw", Some((1, ProjectRole::Owner)));
    let cookie = login(url, "plain", "pw").await;
    let user = json!({"name": "N", "username": "n", "email": "n@x", "password": "p"});
    let by_plain = client().post(format!("{url}/api/users")).header("cookie", &cookie).json(&user).send();
    assert_eq!(by_plain.await.expect("send").status(), StatusCode::UNAUTHORIZED);
    let token = admin_token(url).await;
    let by_admin = client().post(format!("{url}/api/users")).bearer_auth(&token).json(&user).send();
    assert_eq!(by_admin.await.expect("send").status(), StatusCode::CREATED);
    let again = client().post(format!("{url}/api/users")).bearer_auth(&token).json(&user).send();
    assert_eq!(again.await.expect("send").status(), StatusCode::BAD_REQUEST);
    let project = client().post(format!("{url}/api/projects")).header("cookie", &cookie).json(&json!({"name": "P"}));
    assert_eq!(project.send().await.expect("send").status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn state_persists_encrypted_in_0600_files_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = SemaphoreScenario::default();
    let env_id = {
        let sim = SemaphoreSim::open(Some(dir.path()), &scenario, "admin-pw".to_owned()).expect("open");
        let served = serve(sim).await;
        let token = admin_token(&served.url).await;
        let created: Value =
            post_environment(&served.url, &token, &environment_body("Persisted", "persisted-secret-42"))
                .await
                .json()
                .await
                .expect("json");
        created["id"].as_i64().expect("id")
    };
    let state_dir = dir.path().join("semaphore");
    for file in ["state.json", "access_key_encryption"] {
        let mode = std::fs::metadata(state_dir.join(file)).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let state = std::fs::read_to_string(state_dir.join("state.json")).expect("read state");
    assert!(!state.contains("persisted-secret-42"), "the secret is stored in clear");
    assert!(!state.contains("admin-pw"), "the admin password is stored in clear");

    let reopened = SemaphoreSim::open(Some(dir.path()), &scenario, "new-admin-pw".to_owned()).expect("reopen");
    assert_eq!(reopened.secret_value(env_id, "PROXMOX_TOKEN_SECRET").as_deref(), Some("persisted-secret-42"));
    assert_eq!(reopened.environment_ids(1, "Persisted"), [env_id]);
    let served = serve(reopened).await;
    login(&served.url, "admin", "new-admin-pw").await;
}

#[tokio::test]
async fn semaphore_2_10_mode_answers_create_with_204_and_no_body() {
    let scenario = SemaphoreScenario { create_answers_no_content: true, ..SemaphoreScenario::default() };
    let sim = SemaphoreSim::open(None, &scenario, "admin-pw".to_owned()).expect("open");
    let served = serve(sim).await;
    let token = admin_token(&served.url).await;
    let response = post_environment(&served.url, &token, &environment_body("Old", "v")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(served.sim.environment_ids(1, "Old").len(), 1);
}
