//! Shared helpers: start a lab in-process and talk to it over real HTTPS, trusting only the lab's CA.
#![allow(dead_code, reason = "each test area uses a different subset")]

use std::sync::Arc;

use pvetoken_lab::{LabConfig, RunningLab};
use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;

/// An HTTPS client that trusts exactly the lab's CA file (plain rustls/webpki verification).
pub fn client(lab: &RunningLab) -> reqwest::Client {
    let pem = std::fs::read(&lab.ready().ca_file).expect("read the lab CA file");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("PEM certificate")).expect("add the lab CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("HTTPS client")
}

pub async fn start(config: LabConfig) -> RunningLab {
    pvetoken_lab::start(config).await.expect("start the lab")
}

/// How a request authenticates.
#[derive(Clone)]
pub enum Auth {
    None,
    Ticket { ticket: String, csrf: String },
    Header(String),
}

/// A response as it came.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub content_type: String,
    pub body: Value,
    pub raw: String,
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub auth: Auth,
}

impl Api {
    pub fn new(lab: &RunningLab, auth: Auth) -> Api {
        Api { http: client(lab), base: lab.ready().pve_url.clone(), auth }
    }

    pub async fn login(lab: &RunningLab, user: &str, password: &str) -> Api {
        let api = Api::new(lab, Auth::None);
        let answer = api.call("POST", "/api2/json/access/ticket", &[("username", user), ("password", password)]).await;
        assert_eq!(answer.status, 200, "login of {user}: {answer:?}");
        let ticket = answer.body["data"]["ticket"].as_str().expect("ticket").to_owned();
        let csrf = answer.body["data"]["CSRFPreventionToken"].as_str().expect("csrf").to_owned();
        Api { auth: Auth::Ticket { ticket, csrf }, ..api }
    }

    pub async fn root(lab: &RunningLab) -> Api {
        Api::login(lab, "root@pam", &lab.ready().root_password).await
    }

    pub fn token(lab: &RunningLab, full_id: &str, secret: &str) -> Api {
        Api::new(lab, Auth::Header(format!("PVEAPIToken={full_id}={secret}")))
    }

    /// Sends `method path` (path from the host, e.g. `/api2/json/version`); params as query for GET/DELETE, form
    /// body otherwise.
    pub async fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Answer {
        let method_v = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method_v.clone(), url);
        request = if method == "GET" || method == "DELETE" { request.query(params) } else { request.form(params) };
        request = match &self.auth {
            Auth::None => request,
            Auth::Ticket { ticket, csrf } => {
                let r = request.header("Cookie", format!("PVEAuthCookie={ticket}"));
                if method == "GET" { r } else { r.header("CSRFPreventionToken", csrf) }
            }
            Auth::Header(value) => request.header("Authorization", value),
        };
        let response = request.send().await.expect("send the request");
        answer(response).await
    }

    /// `call` under `/api2/json`.
    pub async fn api(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Answer {
        self.call(method, &format!("/api2/json{path}"), params).await
    }

    /// `api` that must succeed; returns `data`.
    pub async fn ok(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Value {
        let a = self.api(method, path, params).await;
        assert_eq!(a.status, 200, "{method} {path}: {a:?}");
        a.body["data"].clone()
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let raw = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Answer { status, reason: String::new(), content_type, body, raw }
}

/// Reads the status line with a raw TLS connection, to see the reason phrase (reqwest hides it).
pub async fn status_line(lab: &RunningLab, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let pem = std::fs::read(&lab.ready().ca_file).expect("CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = lab.ready().pve_url.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}
