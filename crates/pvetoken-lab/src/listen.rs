//! TLS accept loops (PVE: our service function; Semaphore: the axum router), with handshake and header timeouts
//! so that no client can hang a task, and graceful shutdown.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

async fn wait_shutdown(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn builder() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(true);
    b
}

/// Accepts connections until shutdown; each is served by `serve(connection, shutdown)` on a task of its own.
async fn accept<F, Fut>(listener: TcpListener, rx: watch::Receiver<bool>, serve: F)
where
    F: Fn(TcpStream, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = wait_shutdown(rx.clone()) => return,
        };
        let Ok((tcp, _peer)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve(tcp, rx.clone()));
    }
}

/// The TLS handshake, given [`HANDSHAKE_TIMEOUT`]; `None` when it failed or took too long.
async fn handshake(acceptor: &tokio_rustls::TlsAcceptor, tcp: TcpStream) -> Option<TlsStream<TcpStream>> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await.ok()?.ok()
}

/// Serves one connection with `service` (HTTP/1.1, header timeout, keep-alive) until it ends or the lab shuts down
/// (then gracefully, for two seconds at most).
async fn serve<I, S, B>(io: I, service: S, rx: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder().serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = wait_shutdown(rx) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

/// Serves the PVE simulator.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    rx: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<Full<Bytes>>, std::io::Error>> + Send + 'static,
{
    accept(listener, rx, move |tcp, rx| {
        let (acceptor, handler) = (acceptor.clone(), handler.clone());
        async move {
            if let Some(tls) = handshake(&acceptor, tcp).await {
                serve(tls, hyper::service::service_fn(handler), rx).await;
            }
        }
    })
    .await;
}

/// Serves the Semaphore simulator's axum router.
/// `acceptor` = `None` serves plain HTTP (real Semaphore listens on plain HTTP :3000 by default).
pub(crate) async fn accept_loop_tower(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    rx: watch::Receiver<bool>,
    router: axum::Router,
) {
    accept(listener, rx, move |tcp, rx| {
        let (acceptor, service) = (acceptor.clone(), TowerToHyperService::new(router.clone()));
        async move {
            match acceptor {
                Some(acceptor) => {
                    if let Some(tls) = handshake(&acceptor, tcp).await {
                        serve(tls, service, rx).await;
                    }
                }
                None => serve(tcp, service, rx).await,
            }
        }
    })
    .await;
}
