//! `--seed` (`LabConfig::seed`) makes a fresh lab reproducible on both sides: the Semaphore simulator draws its
//! session cookies, API tokens, salts, key and nonces from the lab's generator.

use pvetoken_lab::LabConfig;
use serde_json::json;

use crate::support::{semaphore_client, start};

/// What a client sees of a fresh lab's Semaphore side: the admin's session cookie and a new API token.
async fn semaphore_session_and_token(seed: Option<u64>) -> (String, String) {
    let lab = start(LabConfig { seed, ..LabConfig::default() }).await;
    let client = semaphore_client(&lab);
    let json_body = [("content-type".to_owned(), "application/json".to_owned())];
    let login = json!({ "auth": lab.ready().semaphore_user, "password": lab.ready().semaphore_password });
    let answer = client
        .send("POST", "/api/auth/login", &json_body, serde_json::to_vec(&login).expect("json"))
        .await
        .expect("login");
    assert_eq!(answer.status, 204, "{answer:?}");
    let cookie = answer.set_cookie.expect("session cookie");
    let answer = client
        .send("POST", "/api/user/tokens", &[("cookie".to_owned(), cookie.clone())], Vec::new())
        .await
        .expect("create token");
    assert_eq!(answer.status, 201, "{answer:?}");
    let token = answer.body["id"].as_str().expect("token id").to_owned();
    (cookie, token)
}

#[tokio::test]
async fn the_same_seed_gives_the_same_semaphore_cookies_and_api_tokens() {
    let first = semaphore_session_and_token(Some(2026)).await;
    let second = semaphore_session_and_token(Some(2026)).await;
    assert_eq!(first, second, "two fresh labs with one seed answered differently");
    let other_seed = semaphore_session_and_token(Some(2027)).await;
    assert_ne!(first.0, other_seed.0, "another seed gave the same cookie");
    assert_ne!(first.1, other_seed.1, "another seed gave the same API token");
}

#[tokio::test]
async fn without_a_seed_semaphore_tokens_differ_between_labs() {
    let first = semaphore_session_and_token(None).await;
    let second = semaphore_session_and_token(None).await;
    assert_ne!(first.1, second.1);
}
