//! The RabbitMQ management HTTP API (`HOOKRELAY_RABBITMQ_MANAGEMENT_URL`): what AMQP
//! cannot tell, the unacked count of each queue.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("HOOKRELAY_RABBITMQ_MANAGEMENT_URL is not a URL: {0}")]
    BadUrl(String),
    #[error("RabbitMQ management API at {url}: {error}")]
    Request { url: String, error: String },
}

/// What the management API says of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct QueueCounts {
    #[serde(default)]
    pub messages_ready: u64,
    #[serde(default)]
    pub messages_unacknowledged: u64,
    #[serde(default)]
    pub consumers: u64,
}

#[derive(Deserialize)]
struct Listed {
    name: String,
    #[serde(flatten)]
    counts: QueueCounts,
}

/// The counts of every queue of the AMQP URL's virtual host, by name.
pub async fn queue_counts(
    management_url: &str,
    amqp_url: &str,
) -> Result<HashMap<String, QueueCounts>, ManagementError> {
    let shown = hookrelay_model::config::redact_url(management_url);
    let mut base =
        url::Url::parse(management_url).map_err(|e| ManagementError::BadUrl(e.to_string()))?;
    let user = percent_decode(base.username());
    let password = base.password().map(percent_decode);
    // Credentials go in the header, never in a URL an error could print.
    let _ = base.set_username("");
    let _ = base.set_password(None);
    let path = format!(
        "{}/api/queues/{}",
        base.path().trim_end_matches('/'),
        encode(&vhost_of(amqp_url))
    );
    base.set_path(&path);
    base.set_query(Some(
        "columns=name,messages_ready,messages_unacknowledged,consumers",
    ));
    let failed = |error: String| ManagementError::Request {
        url: shown.clone(),
        error,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| failed(causes(e)))?;
    let mut request = client.get(base);
    if !user.is_empty() {
        request = request.basic_auth(user, password);
    }
    let response = request.send().await.map_err(|e| failed(causes(e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("answered {status}")));
    }
    let body = response.bytes().await.map_err(|e| failed(causes(e)))?;
    let listed: Vec<Listed> =
        serde_json::from_slice(&body).map_err(|e| failed(format!("unexpected answer: {e}")))?;
    Ok(listed.into_iter().map(|q| (q.name, q.counts)).collect())
}

/// An error and its causes, without the URL (reqwest's own text is only "error
/// sending request").
fn causes(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The virtual host of the first AMQP URL of a list (`/` when it names none).
fn vhost_of(amqp_urls: &str) -> String {
    let first = amqp_urls.split(',').next().unwrap_or_default().trim();
    let vhost = url::Url::parse(first)
        .map(|u| percent_decode(u.path().trim_start_matches('/')))
        .unwrap_or_default();
    if vhost.is_empty() {
        "/".to_owned()
    } else {
        vhost
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path segment: everything but unreserved characters percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_host_comes_from_the_first_amqp_url() {
        assert_eq!(vhost_of("amqp://g:g@127.0.0.1:5672/%2f"), "/");
        assert_eq!(vhost_of("amqp://g:g@127.0.0.1:5672"), "/");
        assert_eq!(vhost_of("amqp://g:g@mq1/prod,amqp://g:g@mq2/prod"), "prod");
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("a b"), "a%20b");
    }
}
