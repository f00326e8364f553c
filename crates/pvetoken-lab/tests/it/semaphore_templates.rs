//! Templates in the Semaphore simulator, as Semaphore answers them (api/projects/templates.go, db/Template.go,
//! api/projects/environment.go): create/list/read/update/delete, Semaphore's validation messages, the foreign keys
//! of the SQL back-ends, the project roles, and an environment that a template uses cannot be deleted.

use pvetoken_lab::semaphore::{
    ProjectRole, ScenarioInventory, ScenarioRepository, ScenarioTemplate, SemaphoreScenario, SemaphoreSim,
};
use serde_json::{Value, json};

use crate::semaphore::{Served, serve};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A simulator with one inventory and one repository in project 1; returns them with their ids.
async fn served_with_resources() -> (Served, i64, i64) {
    let sim = SemaphoreSim::open(None, &SemaphoreScenario::default(), "admin-pw".to_owned()).expect("open sim");
    let inventory = sim.add_inventory(1, "localhost");
    let repository = sim.add_repository(1, "privatebox", "https://github.com/Cyber-Pixie/privatebox.git");
    (serve(sim).await, inventory, repository)
}

/// A bearer token of `user` (created directly in the simulator).
fn token(served: &Served, user: &str) -> String {
    served.sim.create_api_token(user).expect("user exists")
}

async fn call(served: &Served, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client().request(method, format!("{}{path}", served.url)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let code = response.status().as_u16();
    let text = response.text().await.expect("body");
    (code, if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") })
}

async fn environment_id(served: &Served, token: &str, name: &str) -> i64 {
    let body = json!({ "name": name, "project_id": 1, "json": "{}", "env": "{}", "secrets": [] });
    let (code, created) = call(served, token, reqwest::Method::POST, "/api/project/1/environment", Some(body)).await;
    assert_eq!(code, 201, "{created}");
    created["id"].as_i64().expect("environment id")
}

fn template_body(name: &str, inventory: i64, repository: i64, environment: Option<i64>) -> Value {
    let mut body = json!({
        "project_id": 1, "name": name, "playbook": "ansible/playbooks/services/proxmox-discovery.yml",
        "inventory_id": inventory, "repository_id": repository, "app": "ansible", "arguments": "[]",
    });
    if let Some(environment) = environment {
        body["environment_id"] = json!(environment);
    }
    body
}

#[tokio::test]
async fn a_template_is_created_listed_read_updated_and_deleted() {
    let (served, inventory, repository) = served_with_resources().await;
    let admin = token(&served, "admin");
    let env = environment_id(&served, &admin, "ProxmoxAPI").await;
    let post = reqwest::Method::POST;
    let (code, created) = call(
        &served,
        &admin,
        post.clone(),
        "/api/project/1/templates",
        Some(template_body("Zeta", inventory, repository, Some(env))),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["environment_id"], env);
    assert_eq!(created["project_id"], 1);
    let body = template_body("Alpha", inventory, repository, None);
    let (code, alpha) = call(&served, &admin, post, "/api/project/1/templates", Some(body)).await;
    assert_eq!(code, 201);
    assert!(alpha.get("environment_id").is_none(), "an unset environment is left out, as 2.16 does: {alpha}");

    let (code, list) = call(&served, &admin, reqwest::Method::GET, "/api/project/1/templates", None).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list.as_array().expect("array").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["Alpha", "Zeta"], "sorted by name by default");
    let (_, desc) =
        call(&served, &admin, reqwest::Method::GET, "/api/project/1/templates?sort=name&order=desc", None).await;
    assert_eq!(desc[0]["name"], "Zeta");

    let path = format!("/api/project/1/templates/{id}");
    let (code, read) = call(&served, &admin, reqwest::Method::GET, &path, None).await;
    assert_eq!((code, read["name"].as_str()), (200, Some("Zeta")));

    let mut update = template_body("Zeta renamed", inventory, repository, None);
    update["id"] = json!(id);
    let (code, _) = call(&served, &admin, reqwest::Method::PUT, &path, Some(update)).await;
    assert_eq!(code, 204);
    let (_, read) = call(&served, &admin, reqwest::Method::GET, &path, None).await;
    assert_eq!(read["name"], "Zeta renamed");
    assert!(read.get("environment_id").is_none(), "PUT replaces the whole template: {read}");

    let (code, _) = call(&served, &admin, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(code, 204);
    let (code, body) = call(&served, &admin, reqwest::Method::GET, &path, None).await;
    assert_eq!((code, body), (404, Value::Null));
    let (code, _) = call(&served, &admin, reqwest::Method::GET, "/api/project/1/templates/x", None).await;
    assert_eq!(code, 400, "a template id that is not a number");
}

#[tokio::test]
async fn template_validation_answers_with_semaphores_messages() {
    let (served, inventory, repository) = served_with_resources().await;
    let admin = token(&served, "admin");
    let post = |body: Value| call(&served, &admin, reqwest::Method::POST, "/api/project/1/templates", Some(body));
    let mut no_inventory = template_body("T", inventory, repository, None);
    no_inventory.as_object_mut().expect("object").remove("inventory_id");
    assert_eq!(post(no_inventory).await, (400, json!({ "error": "template inventory can not be empty" })));
    assert_eq!(
        post(template_body("", inventory, repository, None)).await,
        (400, json!({ "error": "template name can not be empty" }))
    );
    let mut no_playbook = template_body("T", inventory, repository, None);
    no_playbook["playbook"] = json!("");
    assert_eq!(post(no_playbook).await, (400, json!({ "error": "template playbook can not be empty" })));
    let mut bad_arguments = template_body("T", inventory, repository, None);
    bad_arguments["arguments"] = json!("[not json");
    assert_eq!(post(bad_arguments).await, (400, json!({ "error": "template arguments must be valid JSON" })));
    // The SQL back-ends' foreign keys: a bare 400.
    assert_eq!(post(template_body("T", inventory, repository + 1000, None)).await, (400, Value::Null));
    assert_eq!(post(template_body("T", inventory + 1000, repository, None)).await, (400, Value::Null));
    assert_eq!(post(template_body("T", inventory, repository, Some(9999))).await, (400, Value::Null));
    let mut with_view = template_body("T", inventory, repository, None);
    with_view["view_id"] = json!(1);
    assert_eq!(post(with_view).await, (400, Value::Null), "the lab has no views");
    assert_eq!(post(json!({ "name": 5 })).await, (400, Value::Null), "a body that does not decode");
    assert!(served.sim.templates(1).is_empty(), "nothing was stored");
    // AddTemplate checks the app after storing the row: the 400 leaves the template behind.
    let mut bad_app = template_body("Odd app", inventory, repository, None);
    bad_app["app"] = json!("cobol");
    assert_eq!(post(bad_app).await, (400, json!({ "error": "Invalid app id: cobol" })));
    let stored = served.sim.templates(1);
    assert_eq!(stored.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Odd app"]);

    let (_, created) = post(template_body("Good", inventory, repository, None)).await;
    let id = created["id"].as_i64().expect("id");
    let path = format!("/api/project/1/templates/{id}");
    let put = |body: Value| call(&served, &admin, reqwest::Method::PUT, &path, Some(body));
    let mut other_id = template_body("Good", inventory, repository, None);
    other_id["id"] = json!(id + 1);
    assert_eq!(put(other_id).await, (400, json!({ "error": "template id in URL and in body must be the same" })));
    let mut moved = template_body("Good", inventory, repository, None);
    moved["id"] = json!(id);
    moved["project_id"] = json!(2);
    assert_eq!(put(moved).await, (400, json!({ "error": "You can not move template to other project" })));
    let mut no_app = template_body("Good", inventory, repository, None);
    no_app["id"] = json!(id);
    no_app.as_object_mut().expect("object").remove("app");
    assert_eq!(put(no_app).await, (400, json!({ "error": "Invalid app id: " })));
    let missing = call(&served, &admin, reqwest::Method::PUT, "/api/project/1/templates/9999", Some(json!({}))).await;
    assert_eq!(missing, (404, Value::Null));
}

#[tokio::test]
async fn a_terraform_template_without_inventory_gets_a_default_workspace() {
    let (served, inventory, repository) = served_with_resources().await;
    let admin = token(&served, "admin");
    let mut body = template_body("Infra", inventory, repository, None);
    body.as_object_mut().expect("object").remove("inventory_id");
    body["app"] = json!("tofu");
    body["playbook"] = json!("");
    let (code, created) = call(&served, &admin, reqwest::Method::POST, "/api/project/1/templates", Some(body)).await;
    assert_eq!(code, 201, "{created}");
    let workspace = created["inventory_id"].as_i64().expect("a workspace inventory");
    let (_, inventories) = call(&served, &admin, reqwest::Method::GET, "/api/project/1/inventory", None).await;
    let made = inventories.as_array().expect("array").iter().find(|inv| inv["id"] == workspace).expect("listed");
    assert_eq!((made["name"].as_str(), made["type"].as_str()), (Some("default"), Some("tofu-workspace")));
    assert_eq!(made["template_id"], created["id"]);
}

#[tokio::test]
async fn an_environment_used_by_a_template_cannot_be_deleted_until_detached() {
    let (served, inventory, repository) = served_with_resources().await;
    let admin = token(&served, "admin");
    let env = environment_id(&served, &admin, "ProxmoxAPI").await;
    let body = template_body("Proxmox Discovery", inventory, repository, Some(env));
    let (_, created) = call(&served, &admin, reqwest::Method::POST, "/api/project/1/templates", Some(body)).await;
    let id = created["id"].as_i64().expect("id");
    let env_path = format!("/api/project/1/environment/{env}");
    let refused = call(&served, &admin, reqwest::Method::DELETE, &env_path, None).await;
    assert_eq!(refused, (400, json!({ "error": "Environment is in use by one or more templates", "inUse": true })));
    let mut detached = template_body("Proxmox Discovery", inventory, repository, None);
    detached["id"] = json!(id);
    let path = format!("/api/project/1/templates/{id}");
    assert_eq!(call(&served, &admin, reqwest::Method::PUT, &path, Some(detached)).await.0, 204);
    assert_eq!(call(&served, &admin, reqwest::Method::DELETE, &env_path, None).await.0, 204);
}

#[tokio::test]
async fn members_read_templates_and_only_owners_and_managers_change_them() {
    let (served, inventory, repository) = served_with_resources().await;
    let admin = token(&served, "admin");
    let (_, created) = call(
        &served,
        &admin,
        reqwest::Method::POST,
        "/api/project/1/templates",
        Some(template_body("Shared", inventory, repository, None)),
    )
    .await;
    let path = format!("/api/project/1/templates/{}", created["id"]);
    for (name, role, writes) in crate::semaphore::ROLES {
        served.sim.add_user(name, "pw", Some((1, role)));
        let member = token(&served, name);
        assert_eq!(call(&served, &member, reqwest::Method::GET, "/api/project/1/templates", None).await.0, 200);
        assert_eq!(call(&served, &member, reqwest::Method::GET, &path, None).await.0, 200, "{name} reads");
        let body = template_body(&format!("By {name}"), inventory, repository, None);
        let (code, _) = call(&served, &member, reqwest::Method::POST, "/api/project/1/templates", Some(body)).await;
        assert_eq!(code, if writes { 201 } else { 403 }, "{name} creates");
        let (code, _) = call(&served, &member, reqwest::Method::DELETE, "/api/project/1/templates/9999", None).await;
        assert_eq!(code, if writes { 404 } else { 403 }, "{name} deletes (the role is checked first)");
    }
    served.sim.add_user("stranger", "pw", None);
    let stranger = token(&served, "stranger");
    assert_eq!(call(&served, &stranger, reqwest::Method::GET, "/api/project/1/templates", None).await.0, 404);
}

/// Project 1 with the inventory `localhost`, the repository `privatebox` and the template `Proxmox Discovery`
/// naming `repository` and `environment`.
pub(crate) fn seeded_scenario(repository: &str, environment: Option<&str>) -> SemaphoreScenario {
    SemaphoreScenario {
        inventories: vec![ScenarioInventory {
            project: 1,
            name: "localhost".to_owned(),
            inventory: "localhost ansible_connection=local".to_owned(),
            kind: "static".to_owned(),
        }],
        repositories: vec![ScenarioRepository {
            project: 1,
            name: "privatebox".to_owned(),
            git_url: "https://github.com/Cyber-Pixie/privatebox.git".to_owned(),
            git_branch: "main".to_owned(),
        }],
        templates: vec![ScenarioTemplate {
            project: 1,
            name: "Proxmox Discovery".to_owned(),
            playbook: "discovery.yml".to_owned(),
            app: "ansible".to_owned(),
            inventory: Some("localhost".to_owned()),
            repository: repository.to_owned(),
            environment: environment.map(str::to_owned),
        }],
        ..SemaphoreScenario::default()
    }
}

#[tokio::test]
async fn the_scenario_seeds_inventories_repositories_and_templates_and_reset_restores_them() {
    let scenario = seeded_scenario("privatebox", Some("Empty"));
    let sim = SemaphoreSim::open(None, &scenario, "admin-pw".to_owned()).expect("open");
    let served = serve(sim).await;
    let admin = token(&served, "admin");
    let (_, templates) = call(&served, &admin, reqwest::Method::GET, "/api/project/1/templates", None).await;
    let (_, repositories) = call(&served, &admin, reqwest::Method::GET, "/api/project/1/repositories", None).await;
    let (_, environments) =
        call(&served, &admin, reqwest::Method::GET, "/api/project/1/environment?sort=name&order=asc", None).await;
    let template = &templates[0];
    assert_eq!(template["name"], "Proxmox Discovery");
    assert_eq!(template["repository_id"], repositories[0]["id"]);
    let empty = environments.as_array().expect("array").iter().find(|env| env["name"] == "Empty").expect("Empty");
    assert_eq!(template["environment_id"], empty["id"]);
    let id = template["id"].as_i64().expect("id");
    call(&served, &admin, reqwest::Method::DELETE, &format!("/api/project/1/templates/{id}"), None).await;
    assert!(served.sim.templates(1).is_empty());
    served.sim.reset(&scenario).expect("reset");
    assert_eq!(served.sim.templates(1).len(), 1, "reset brings the seeded template back");
}

#[test]
fn templates_survive_a_restart_with_a_state_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = seeded_scenario("privatebox", None);
    let first = SemaphoreSim::open(Some(dir.path()), &scenario, "pw".to_owned()).expect("open");
    let stored = first.templates(1);
    drop(first);
    let reopened =
        SemaphoreSim::open(Some(dir.path()), &SemaphoreScenario::default(), "pw".to_owned()).expect("reopen");
    assert_eq!(reopened.templates(1), stored);
}

/// The project listings sort as Semaphore's `sort=`/`order=` say: inventories by name or type, repositories by name
/// or git URL, members by name, username, email or role (anything else: by name), descending with `order=desc`.
#[tokio::test]
async fn project_listings_sort_by_the_asked_field_and_order() {
    let sim = SemaphoreSim::open(None, &SemaphoreScenario::default(), "admin-pw".to_owned()).expect("open sim");
    sim.add_inventory(1, "b-hosts");
    sim.add_inventory(1, "a-hosts");
    sim.add_repository(1, "zeta", "https://example.org/a.git");
    sim.add_repository(1, "alpha", "https://example.org/b.git");
    sim.add_user("carol", "pw", Some((1, ProjectRole::Guest)));
    sim.add_user("bob", "pw", Some((1, ProjectRole::TaskRunner)));
    let served = serve(sim).await;
    let admin = token(&served, "admin");
    let names = |list: &Value, field: &str| -> Vec<String> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|item| item[field].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let get = |path: &'static str| {
        let (served, admin) = (&served, &admin);
        async move {
            let (code, list) = call(served, admin, reqwest::Method::GET, path, None).await;
            assert_eq!(code, 200, "{path}: {list}");
            list
        }
    };
    let inventories = get("/api/project/1/inventory").await;
    assert_eq!(names(&inventories, "name"), ["a-hosts", "b-hosts"]);
    let inventories = get("/api/project/1/inventory?sort=name&order=desc").await;
    assert_eq!(names(&inventories, "name"), ["b-hosts", "a-hosts"]);
    let repositories = get("/api/project/1/repositories").await;
    assert_eq!(names(&repositories, "name"), ["alpha", "zeta"]);
    let repositories = get("/api/project/1/repositories?sort=git_url").await;
    assert_eq!(names(&repositories, "name"), ["zeta", "alpha"], "a.git before b.git");
    let members = get("/api/project/1/users?sort=username&order=desc").await;
    let usernames = names(&members, "username");
    assert_eq!(&usernames[..2], ["carol", "bob"], "{members}");
    assert!(members.as_array().expect("list").iter().all(|m| m.get("email").is_none()), "no email shown: {members}");
    let by_nothing = get("/api/project/1/users?sort=password").await;
    assert_eq!(names(&by_nothing, "name"), names(&get("/api/project/1/users?sort=name").await, "name"));
}

/// A scenario template that names a repository, inventory or environment its project lacks is refused at open,
/// naming the template, the kind and the name.
#[test]
fn a_scenario_template_naming_a_missing_resource_is_refused_with_its_name() {
    let open = |scenario: &SemaphoreScenario| {
        SemaphoreSim::open(None, scenario, "admin-pw".to_owned()).err().map(|error| error.to_string())
    };
    assert_eq!(open(&seeded_scenario("privatebox", None)), None, "the seeded scenario opens");
    let repository = open(&seeded_scenario("elsewhere", None)).expect("an unknown repository is refused");
    assert!(repository.contains("`Proxmox Discovery` names the repository `elsewhere`"), "{repository}");
    let environment = open(&seeded_scenario("privatebox", Some("Nowhere"))).expect("an unknown environment");
    assert!(environment.contains("the environment `Nowhere`, which project 1 does not have"), "{environment}");
    let mut scenario = seeded_scenario("privatebox", None);
    scenario.templates[0].inventory = Some("no-hosts".to_owned());
    let inventory = open(&scenario).expect("an unknown inventory is refused");
    assert!(inventory.contains("the inventory `no-hosts`"), "{inventory}");
}
