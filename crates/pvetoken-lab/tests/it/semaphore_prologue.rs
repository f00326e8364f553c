//! What every `/api/project/{project_id}/...` route of the Semaphore simulator does before its handler, in
//! Semaphore's middleware order: authenticate (bare 401), parse the project id (400 `Invalid project ID`), then
//! membership (404) and, for anything but GET and HEAD, the route's permission (403); a resource id that is not a
//! number is a bare 400.

use pvetoken_lab::semaphore::ProjectRole;
use serde_json::{Value, json};

use crate::semaphore::{Served, serve_default};

/// Sends `method path` with a Bearer token (when given) and an empty JSON object as body for writes.
async fn call(served: &Served, token: Option<&str>, method: reqwest::Method, path: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = reqwest::Client::new().request(method.clone(), format!("{}{path}", served.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if method != reqwest::Method::GET {
        request = request.json(&json!({}));
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn token_of(served: &Served, username: &str, membership: Option<(i64, ProjectRole)>) -> String {
    served.sim.add_user(username, "pw", membership);
    served.sim.create_api_token(username).expect("token")
}

const PROJECT_ROUTES: [(&str, &str); 8] = [
    ("GET", "/api/project/{p}"),
    ("GET", "/api/project/{p}/role"),
    ("GET", "/api/project/{p}/users"),
    ("GET", "/api/project/{p}/environment"),
    ("GET", "/api/project/{p}/environment/{i}"),
    ("GET", "/api/project/{p}/inventory"),
    ("GET", "/api/project/{p}/repositories"),
    ("DELETE", "/api/project/{p}/templates/{i}"),
];

fn route(template: &str, project: &str, item: &str) -> String {
    template.replace("{p}", project).replace("{i}", item)
}

#[tokio::test]
async fn every_project_route_authenticates_then_parses_the_project_id_then_checks_membership() {
    let served = serve_default().await;
    let admin = served.sim.create_api_token("admin").expect("admin token");
    let stranger = token_of(&served, "stranger", None);
    for (method, template) in PROJECT_ROUTES {
        let method: reqwest::Method = method.parse().expect("method");
        let path = route(template, "1", "999999");
        assert_eq!(call(&served, None, method.clone(), &path).await, (401, Value::Null), "{method} {path}");
        let bad_project = route(template, "one", "999999");
        assert_eq!(
            call(&served, Some(&admin), method.clone(), &bad_project).await,
            (400, json!({ "error": "Invalid project ID" })),
            "{method} {bad_project}"
        );
        assert_eq!(call(&served, Some(&stranger), method.clone(), &path).await, (404, Value::Null), "{method} {path}");
        assert_eq!(call(&served, Some(&admin), method.clone(), &route(template, "99", "1")).await.0, 404);
        if template.contains("{i}") {
            let bad_item = route(template, "1", "x");
            assert_eq!(call(&served, Some(&admin), method, &bad_item).await, (400, Value::Null), "{bad_item}");
        }
    }
}

#[tokio::test]
async fn writes_need_the_routes_permission_and_reads_any_membership() {
    let served = serve_default().await;
    let guest = token_of(&served, "guest", Some((1, ProjectRole::Guest)));
    let manager = token_of(&served, "manager", Some((1, ProjectRole::Manager)));
    let admin = served.sim.create_api_token("admin").expect("admin token");

    assert_eq!(call(&served, Some(&guest), reqwest::Method::GET, "/api/project/1/users").await.0, 200);
    // Resources need owner or manager; the project's users need owner.
    assert_eq!(call(&served, Some(&guest), reqwest::Method::DELETE, "/api/project/1/environment/1").await.0, 403);
    assert_eq!(call(&served, Some(&manager), reqwest::Method::DELETE, "/api/project/1/environment/999").await.0, 404);
    assert_eq!(call(&served, Some(&manager), reqwest::Method::DELETE, "/api/project/1/users/1").await.0, 403);
    assert_eq!(call(&served, Some(&admin), reqwest::Method::DELETE, "/api/project/1/users/999").await.0, 404);
    // The caller's role and its permission bits.
    assert_eq!(
        call(&served, Some(&manager), reqwest::Method::GET, "/api/project/1/role").await,
        (200, json!({ "role": "manager", "permissions": ProjectRole::Manager.permissions() }))
    );
}
