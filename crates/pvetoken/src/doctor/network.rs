//! DNS, TCP and TLS towards the PVE API, each its own check so the first broken layer is the one named.

use std::net::SocketAddr;
use std::time::Duration;

use pvetoken_client::ClientError;
use pvetoken_client::endpoint::Endpoint;
use pvetoken_client::pve::PveClient;
use pvetoken_client::{Fingerprint, TlsSettings};

use super::{Finding, Severity, id};

/// Resolves the host; an IP address needs no DNS.
pub async fn dns(endpoint: &Endpoint) -> (Vec<SocketAddr>, Vec<Finding>, String) {
    let host = endpoint.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    match tokio::net::lookup_host((host.as_str(), endpoint.port())).await {
        Ok(addresses) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            let detail = if host.parse::<std::net::IpAddr>().is_ok() {
                format!("{host} is an IP address")
            } else {
                let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
                format!("{host} resolves to {}", list.join(", "))
            };
            (addresses, Vec::new(), detail)
        }
        Err(error) => (
            Vec::new(),
            vec![
                Finding::new(
                    id::DNS_UNRESOLVABLE,
                    Severity::Blocking,
                    "dns",
                    format!("{host} does not resolve: {error}"),
                )
                .why("no consumer can reach the PVE API by this name")
                .fix(format!("getent hosts {host}   (check /etc/hosts, the DNS server, the VPN)"))
                .fix("pvetoken create ... --url https://IP:8006   (or fix PROXMOX_HOST/PROXMOX_URL in the token file)"),
            ],
            format!("{host}: no address"),
        ),
    }
}

/// Opens a TCP connection to the first address that answers.
pub async fn tcp(endpoint: &Endpoint, addresses: &[SocketAddr], timeout: Duration) -> (Vec<Finding>, String) {
    let mut last = String::from("no address to connect to");
    for address in addresses {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_stream)) => return (Vec::new(), format!("connected to {address}")),
            Ok(Err(error)) => last = format!("{address}: {error}"),
            Err(_) => last = format!("{address}: no answer within {} s", timeout.as_secs()),
        }
    }
    let port = endpoint.port();
    let refused = last.contains("refused");
    let finding = Finding::new(
        if refused { id::TCP_REFUSED } else { id::TCP_UNREACHABLE },
        Severity::Blocking,
        "tcp",
        format!("cannot open a TCP connection to {}: {last}", endpoint.host_port()),
    )
    .why(if refused {
        "nothing listens on that port: wrong port, or pveproxy is not running"
    } else {
        "a firewall, a VPN or routing drops the connection"
    })
    .fix("on the PVE host: systemctl status pveproxy; ss -ltnp | grep 8006")
    .fix(format!("from here: nc -vz {} {port}", endpoint.host()))
    .fix("if the address is wrong: pvetoken create ... --url https://HOST:8006 (rewrites the token file)");
    (vec![finding], last)
}

/// A TLS handshake plus one unauthenticated `GET /version` (PVE answers 401: proof it is PVE and TLS works).
pub async fn tls(endpoint: &Endpoint, settings: &TlsSettings, timeout: Duration) -> (Vec<Finding>, String) {
    let mut findings = Vec::new();
    let probe = probe(endpoint, settings, timeout).await;
    let how = if settings.insecure {
        "not verified (--insecure / PROXMOX_TLS_INSECURE)".to_owned()
    } else if let Some(pin) = &settings.fingerprint {
        format!("pinned SHA-256 {pin}")
    } else if let Some(ca) = &settings.ca_file {
        format!("verified against {}", ca.display())
    } else {
        "verified against the system roots".to_owned()
    };
    match probe {
        Ok(()) => {
            if settings.insecure {
                findings.push(
                    Finding::new(id::TLS_INSECURE, Severity::Warning, "tls", "the server certificate is not checked")
                        .why("anyone on the path can read the token secret from the Authorization header")
                        .fix("on the PVE host: pvenode cert info --output-format json")
                        .fix("pvetoken create --profile PROFILE --fingerprint SHA256   (pins it in the token file)"),
                );
            }
            (findings, format!("TLS ok, certificate {how}"))
        }
        Err(ClientError::CertificateMismatch { presented, expected, .. }) => {
            findings.push(
                Finding::new(
                    id::TLS_PIN_MISMATCH,
                    Severity::Blocking,
                    "tls",
                    format!("the server presented SHA-256 {presented}, but {expected} is pinned"),
                )
                .why(
                    "the certificate was renewed (pvenode cert set / ACME), the URL points at another server, or \
                      something intercepts the connection; every pinned consumer refuses it",
                )
                .fix("on the PVE host: pvenode cert info --output-format json   (compare the fingerprint)")
                .fix(format!(
                    "if it matches: edit PROXMOX_FINGERPRINT='{presented}' in the token file, or rerun pvetoken create \
                     ... --fingerprint {presented}"
                )),
            );
            (findings, "the pinned fingerprint does not match".to_owned())
        }
        Err(ClientError::CertificateUntrusted { reason, .. }) => {
            let presented = presented_fingerprint(endpoint, timeout).await;
            let pin = presented.as_ref().map_or_else(|| "SHA256".to_owned(), ToString::to_string);
            findings.push(
                Finding::new(
                    id::TLS_UNTRUSTED,
                    Severity::Blocking,
                    "tls",
                    format!("the server certificate is not trusted: {reason}"),
                )
                .why(
                    "PVE's default certificate is signed by the cluster's own CA, which this machine does not trust; \
                      Go consumers say `x509: certificate signed by unknown authority`",
                )
                .fix("on the PVE host: pvenode cert info --output-format json   (check the fingerprint below)")
                .fix(format!(
                    "pin it: pvetoken create ... --fingerprint {pin}   (or PROXMOX_FINGERPRINT in the token file)"
                ))
                .fix("or trust the CA: --ca-file pve-root-ca.pem (a copy of /etc/pve/pve-root-ca.pem)"),
            );
            (findings, format!("certificate not trusted (presented SHA-256 {pin})"))
        }
        Err(ClientError::Api { status: 404 | 501, .. } | ClientError::Decode { .. }) => {
            findings.push(
                Finding::new(
                    id::TLS_NOT_PVE,
                    Severity::Blocking,
                    "tls",
                    format!("{} answers HTTPS, but not like the Proxmox VE API", endpoint.base()),
                )
                .why("the URL points at another service (a reverse proxy path, the web UI of something else)")
                .fix("pvetoken create ... --url https://HOST:8006   (the API port is 8006)"),
            );
            (findings, "not a PVE API".to_owned())
        }
        Err(error) => {
            findings.push(
                Finding::new(id::TLS_HANDSHAKE_FAILED, Severity::Blocking, "tls", format!("TLS failed: {error}"))
                    .why("no consumer can talk to the API")
                    .fix(format!("openssl s_client -connect {} </dev/null", endpoint.host_port())),
            );
            (findings, "TLS failed".to_owned())
        }
    }
}

async fn probe(endpoint: &Endpoint, settings: &TlsSettings, timeout: Duration) -> Result<(), ClientError> {
    let http = pvetoken_client::tls::http_client_with_timeouts(settings, timeout, timeout)?;
    match PveClient::anonymous(http, endpoint.clone()).version().await {
        Ok(_) | Err(ClientError::AuthFailed { .. }) => Ok(()),
        Err(ClientError::Api { status: 401, .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// The server's certificate fingerprint, learnt by pinning a fingerprint no certificate has (the mismatch error
/// names the presented one). Shown as a candidate only: the user compares it with `pvenode cert info`.
async fn presented_fingerprint(endpoint: &Endpoint, timeout: Duration) -> Option<Fingerprint> {
    let impossible: Fingerprint = "00".repeat(32).parse().ok()?;
    let settings = TlsSettings { ca_file: None, fingerprint: Some(impossible), insecure: false };
    match probe(endpoint, &settings, timeout).await {
        Err(ClientError::CertificateMismatch { presented, .. }) => Some(presented),
        _ => None,
    }
}
