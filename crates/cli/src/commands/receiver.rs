//! `hookrelay receiver`: answers 200 to every POST and logs what arrived. For the demo
//! and the compose stack; not for production.

use std::net::SocketAddr;

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

pub async fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "receiver listening");
    axum::serve(listener, axum::Router::new().fallback(receive))
        .await
        .context("receiver failed")
}

async fn receive(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    tracing::info!(
        %method,
        path = %uri.path(),
        webhook_id = %header("webhook-id"),
        event_id = %header("x-hookrelay-event-id"),
        content_type = %header("content-type"),
        authorization = if headers.contains_key("authorization") { "present" } else { "absent" },
        body = %String::from_utf8_lossy(&body),
        "webhook received"
    );
    StatusCode::OK
}
