//! Shared helpers: start a lab in-process and talk to it over real HTTPS, trusting only the lab's CA.
#![allow(dead_code, reason = "each test area uses a different subset")]

use std::sync::Arc;

use pvetoken_lab::{LabConfig, RunningLab};
use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;

fn tls_connector(lab: &RunningLab) -> tokio_rustls::TlsConnector {
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
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A tiny HTTPS client (one connection per request) that trusts exactly the lab's CA, with plain rustls/webpki
/// verification.
#[derive(Clone)]
pub struct Client {
    connector: tokio_rustls::TlsConnector,
    addr: String,
}

impl Client {
    /// Sends one request; `Err` when the connection fails or is dropped.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let tls = self.connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut request = hyper::Request::builder().method(method).uri(path).header("host", self.addr.as_str());
        for (k, v) in headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body))).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .unwrap_or_default();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        use http_body_util::BodyExt as _;
        let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Ok(Answer { status, reason, content_type, body, raw, set_cookie })
    }
}

pub fn client(lab: &RunningLab) -> Client {
    Client { connector: tls_connector(lab), addr: lab.ready().pve_url.trim_start_matches("https://").to_owned() }
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
    /// The `name=value` part of a `Set-Cookie` header, if any.
    pub set_cookie: Option<String>,
}

pub struct Api {
    pub http: Client,
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

    /// The headers this client's authentication adds.
    pub fn auth_headers(&self, method: &str) -> Vec<(String, String)> {
        match &self.auth {
            Auth::None => Vec::new(),
            Auth::Ticket { ticket, csrf } => {
                let mut h = vec![("cookie".to_owned(), format!("PVEAuthCookie={ticket}"))];
                if method != "GET" {
                    h.push(("CSRFPreventionToken".to_owned(), csrf.clone()));
                }
                h
            }
            Auth::Header(value) => vec![("authorization".to_owned(), value.clone())],
        }
    }

    /// Sends `method path` (path from the host, e.g. `/api2/json/version`); params as query for GET/DELETE, form
    /// body otherwise.
    pub async fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Answer {
        let encoded: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let mut headers = self.auth_headers(method);
        let (target, body) = if method == "GET" || method == "DELETE" {
            (if encoded.is_empty() { path.to_owned() } else { format!("{path}?{encoded}") }, Vec::new())
        } else {
            headers.push(("content-type".to_owned(), "application/x-www-form-urlencoded".to_owned()));
            (path.to_owned(), encoded.into_bytes())
        };
        self.http.send(method, &target, &headers, body).await.expect("send the request")
    }

    /// Sends `value` as a JSON body to `path` (from the host, e.g. `/_lab/agent`).
    pub async fn call_json(&self, method: &str, path: &str, value: &Value) -> Answer {
        let mut headers = self.auth_headers(method);
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
        let body = serde_json::to_vec(value).expect("JSON body");
        self.http.send(method, path, &headers, body).await.expect("send the request")
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

/// Reads the status line with a raw TLS connection, to see the reason phrase (reqwest hides it).
pub async fn status_line(lab: &RunningLab, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let connector = tls_connector(lab);
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

/// A client for the lab's Semaphore simulator (same CA as the PVE listener).
pub fn semaphore_client(lab: &RunningLab) -> Client {
    Client { connector: tls_connector(lab), addr: lab.ready().semaphore_url.trim_start_matches("https://").to_owned() }
}
