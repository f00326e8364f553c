//! Transport as PVE: envelope, content type, reason phrase, 501, percent-decoding, body limit, authentication.

use pvetoken_lab::LabConfig;

use crate::support::{Api, Auth, start, status_line};

#[tokio::test]
async fn answers_use_the_data_envelope_and_pves_exact_content_type() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let a = root.api("GET", "/version", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "application/json;charset=UTF-8");
    assert_eq!(a.body["data"]["release"], "9.2");
    assert_eq!(a.body["data"]["version"], "9.2.0");
    assert!(a.raw.starts_with("{\"data\":"), "{}", a.raw);
}

#[tokio::test]
async fn errors_put_the_first_line_of_the_message_in_the_reason_phrase() {
    let lab = start(LabConfig::default()).await;
    let line = status_line(&lab, "GET /api2/json/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(line, "HTTP/1.1 401 No ticket");
    let bad = "GET /api2/json/version HTTP/1.1\r\nHost: x\r\nAuthorization: PVEAPIToken=a@pve!t=nope\r\nConnection: close\r\n\r\n";
    assert_eq!(status_line(&lab, bad).await, "HTTP/1.1 401 authentication failure");
    let ticket = "GET /api2/json/version HTTP/1.1\r\nHost: x\r\nCookie: PVEAuthCookie=PVE:root@pam:00000000::x\r\nConnection: close\r\n\r\n";
    assert_eq!(status_line(&lab, ticket).await, "HTTP/1.1 401 permission denied - invalid PVE ticket");
}

#[tokio::test]
async fn unknown_paths_are_501_method_not_implemented_after_authentication() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let a = root.api("GET", "/no/such/thing", &[]).await;
    assert_eq!(a.status, 501);
    assert_eq!(a.body["message"], "Method 'GET /api2/json/no/such/thing' not implemented\n");
    let anonymous = Api::new(&lab, Auth::None).api("GET", "/no/such/thing", &[]).await;
    assert_eq!(anonymous.status, 401, "PVE authenticates before it looks the handler up");
}

#[tokio::test]
async fn path_segments_are_percent_decoded_and_raw_at_and_bang_work_too() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    root.ok("POST", "/access/users", &[("userid", "ci@pve")]).await;
    let raw = root.call("POST", "/api2/json/access/users/ci@pve/token/raw", &[]).await;
    assert_eq!(raw.status, 200, "{raw:?}");
    let encoded = root.call("GET", "/api2/json/access/users/ci%40pve/token/raw", &[]).await;
    assert_eq!(encoded.status, 200, "{encoded:?}");
    assert_eq!(encoded.body["data"]["privsep"], 1);
}

#[tokio::test]
async fn parameter_errors_are_400_with_per_parameter_errors() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let a = root.api("POST", "/access/users", &[("userid", "no-realm")]).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.reason, "Parameter verification failed.");
    assert_eq!(a.body["message"], "Parameter verification failed.\n");
    assert!(a.body["errors"]["userid"].as_str().is_some_and(|e| e.contains("does not look like a valid user name")));
}

#[tokio::test]
async fn json_bodies_are_accepted_like_form_bodies() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let mut headers = root.auth_headers("POST");
    headers.push(("content-type".into(), "application/json".into()));
    let body = br#"{"userid":"json@pve","enable":true,"comment":"from json"}"#.to_vec();
    let a = root.http.send("POST", "/api2/json/access/users", &headers, body).await.expect("send");
    assert_eq!(a.status, 200, "{a:?}");
    let user = root.ok("GET", "/access/users/json@pve", &[]).await;
    assert_eq!(user["comment"], "from json");
    assert_eq!(user["enable"], 1);
}

#[tokio::test]
async fn ticket_writes_need_the_csrf_token_but_token_writes_do_not() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let Auth::Ticket { ticket, .. } = root.auth.clone() else { panic!("ticket auth") };
    let no_csrf = Api::new(&lab, Auth::Ticket { ticket: ticket.clone(), csrf: "00000000:bad".into() });
    let a = no_csrf.api("POST", "/access/users", &[("userid", "x@pve")]).await;
    assert_eq!(a.status, 401);
    // GET needs no CSRF; the ticket also works in the Authorization header.
    let header = Api::new(&lab, Auth::Header(format!("PVEAuthCookie={ticket}")));
    assert_eq!(header.api("GET", "/version", &[]).await.status, 200);
    let created = root.ok("POST", "/access/users/root@pam/token/ci", &[("privsep", "0")]).await;
    let secret = created["value"].as_str().expect("secret");
    let token = Api::token(&lab, "root@pam!ci", secret);
    assert_eq!(token.api("POST", "/access/users", &[("userid", "y@pve")]).await.status, 200);
}

#[tokio::test]
async fn tickets_look_like_pves_and_a_ticket_renews_itself() {
    let lab = start(LabConfig::default()).await;
    let anon = Api::new(&lab, Auth::None);
    let pw = lab.ready().root_password.clone();
    let a = anon.api("POST", "/access/ticket", &[("username", "root"), ("realm", "pam"), ("password", &pw)]).await;
    assert_eq!(a.status, 200);
    let ticket = a.body["data"]["ticket"].as_str().expect("ticket").to_owned();
    let parts: Vec<&str> = ticket.splitn(5, ':').collect();
    assert_eq!(&parts[..3], ["PVE", "root@pam", parts[2]]);
    assert!(parts[2].len() == 8 && parts[2].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    assert!(ticket.contains("::"));
    let renewed = anon.api("POST", "/access/ticket", &[("username", "root@pam"), ("password", &ticket)]).await;
    assert_eq!(renewed.status, 200);
    let wrong = anon.api("POST", "/access/ticket", &[("username", "root@pam"), ("password", "wrong-password")]).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["message"], "authentication failure\n");
}

#[tokio::test]
async fn tokens_cannot_log_in_or_change_passwords() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let created = root.ok("POST", "/access/users/root@pam/token/full", &[("privsep", "0")]).await;
    let token = Api::token(&lab, "root@pam!full", created["value"].as_str().expect("secret"));
    let a = token.api("PUT", "/access/password", &[("userid", "root@pam"), ("password", "whatever12")]).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.body["message"],
        "Permission check failed (URI '/access/password' not available with API token, need proper ticket.\n)\n"
    );
}

#[tokio::test]
async fn token_secrets_are_lowercase_uuids_split_at_the_last_equals_sign() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let created = root.ok("POST", "/access/users/root@pam/token/ci", &[]).await;
    let secret = created["value"].as_str().expect("secret");
    assert_eq!(secret.len(), 36);
    assert!(secret.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)), "{secret}");
    assert_eq!(created["info"], serde_json::json!({"privsep": 1}));
    let upper = Api::token(&lab, "root@pam!ci", &secret.to_uppercase());
    assert_eq!(upper.api("GET", "/version", &[]).await.status, 401);
    let colon = Api::new(&lab, Auth::Header(format!("PVEAPIToken=root@pam!ci:{secret}")));
    assert_eq!(colon.api("GET", "/version", &[]).await.status, 401);
}

#[tokio::test]
async fn an_oversized_body_is_refused_without_hanging() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let big = "x".repeat(300_000);
    let a = root.api("POST", "/access/users", &[("userid", "big@pve"), ("comment", &big)]).await;
    assert_eq!(a.status, 501, "pve-http-server's answer to a post over $limit_max_post");
    assert!(a.raw.contains("for data too large"), "{a:?}");
    // 64 KiB is the limit: just over it is refused, just under it goes through to the API's own checks.
    let over = "x".repeat(64 * 1024);
    let a = root.api("POST", "/access/users", &[("userid", "big@pve"), ("comment", &over)]).await;
    assert_eq!(a.status, 501);
    let under = "x".repeat(60 * 1024);
    let a = root.api("POST", "/access/users", &[("userid", "big@pve"), ("comment", &under)]).await;
    assert_ne!(a.status, 501, "{a:?}");
}

#[tokio::test]
async fn lab_control_changes_state_with_a_ticket_only_with_its_csrf_token() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    let Auth::Ticket { ticket, .. } = root.auth.clone() else { panic!("ticket login") };
    let cookie = vec![("cookie".to_owned(), format!("PVEAuthCookie={ticket}"))];
    let a = root.http.send("POST", "/_lab/reset", &cookie, Vec::new()).await.expect("send");
    assert_eq!(a.status, 401, "a ticket cookie without CSRFPreventionToken cannot reset the lab: {a:?}");
    assert_eq!(root.call("GET", "/_lab/requests", &[]).await.status, 200, "reading needs no CSRF token");
    assert_eq!(root.call("POST", "/_lab/reset", &[]).await.status, 200, "with the CSRF token it works");
}

#[tokio::test]
async fn the_auth_failure_delay_slows_down_only_failures() {
    let lab =
        start(LabConfig { auth_failure_delay: std::time::Duration::from_millis(300), ..LabConfig::default() }).await;
    let anon = Api::new(&lab, Auth::Header("PVEAPIToken=a@pve!t=nope".into()));
    let started = std::time::Instant::now();
    assert_eq!(anon.api("GET", "/version", &[]).await.status, 401);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

/// pveproxy forwards a call for another node to that node by name; a name it cannot resolve fails there, for every
/// call under `/nodes/{node}`, before the handler looks at its parameters.
#[tokio::test]
async fn a_node_the_cluster_does_not_have_is_a_failed_host_lookup_on_every_node_path() {
    let lab = start(LabConfig::default()).await;
    let root = Api::root(&lab).await;
    for (method, path) in [
        ("GET", "/nodes/elsewhere"),
        ("GET", "/nodes/elsewhere/status"),
        ("GET", "/nodes/elsewhere/qemu"),
        ("GET", "/nodes/elsewhere/qemu/9000/config"),
        ("POST", "/nodes/elsewhere/qemu/not-a-vmid/clone"),
    ] {
        let a = root.api(method, path, &[]).await;
        assert_eq!(a.status, 500, "{method} {path}: {}", a.raw);
        let message = a.body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("hostname lookup 'elsewhere' failed"), "{method} {path}: {message}");
    }
    assert_eq!(root.api("GET", "/nodes/pve/status", &[]).await.status, 200, "the lab's own node answers");
}
