//! The HTTP listener beside gRPC (`--http`): `GET /metrics` (Prometheus text format), `GET
//! /healthz` (the process is up), `GET /readyz` (the node can serve requests; 503 with the reason
//! when not), and the actors' HTTP/JSON gateway under `/actors` ([`crate::gateway`]: call an
//! action, send to a queue, follow an actor's events as server-sent events, list the actor
//! types), which any HTTP client can use:
//!
//! ```console
//! $ curl -X POST localhost:7200/actors/counter/user-42/actions/increment -d '{"amount": 5}'
//! 5
//! $ curl -N localhost:7200/actors/counter/user-42/events
//! ```
//!
//! The three probes are always open; the gateway asks for `Authorization: Bearer <token>` when the
//! node has tokens.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::gateway::Gateway;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the HTTP handlers read. Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: PrometheusHandle,
    /// Set by the server once the node can serve requests.
    pub ready: Arc<AtomicBool>,
    /// Why the node is not ready, returned with the 503 of `/readyz`.
    pub not_ready_reason: Arc<Mutex<String>>,
    /// The actors' gateway under `/actors`, when the node hosts actors.
    pub gateway: Option<Gateway>,
}

impl HttpState {
    /// A state that starts not ready, with `reason`.
    pub fn new(metrics: PrometheusHandle, reason: impl Into<String>) -> HttpState {
        HttpState {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            not_ready_reason: Arc::new(Mutex::new(reason.into())),
            gateway: None,
        }
    }
}

/// The routes, for serving or for tests.
pub fn router(state: HttpState) -> Router {
    let gateway = state.gateway.clone();
    let probes = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    match gateway {
        Some(gateway) => probes.merge(crate::gateway::routes(gateway)),
        None => probes,
    }
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve<L>(
    listener: L,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let address = listener.local_addr().context("read the http listener address")?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("serve http on {address}"))
}

async fn metrics(State(state): State<HttpState>) -> Response {
    // Upkeep drains histogram buckets; doing it on scrape keeps memory bounded without a timer.
    state.metrics.run_upkeep();
    let mut body = state.metrics.render();
    body.push_str(&crate::telemetry::render_process());
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        return (StatusCode::OK, "ready").into_response();
    }
    let reason = match state.not_ready_reason.lock() {
        Ok(reason) => reason.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let reason = if reason.is_empty() { "not ready".to_string() } else { reason };
    (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 GET over a raw socket; returns (status code, body).
    async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let status = response.split(' ').nth(1).unwrap().parse().unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 "), "{head}");
        (status, body.to_string())
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("mortar_node_test_requests_total").increment(3);
        });
        let state = HttpState::new(handle, "waiting for a quorum");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));

        let (status, body) = get(address, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));

        let (status, body) = get(address, "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "waiting for a quorum"));
        state.ready.store(true, Ordering::Release);
        let (status, body) = get(address, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready"));

        let (status, body) = get(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("mortar_node_test_requests_total 3"), "{body}");

        let (status, _) = get(address, "/nope").await;
        assert_eq!(status, 404);

        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("server stops on shutdown")
            .unwrap()
            .unwrap();
    }
}
