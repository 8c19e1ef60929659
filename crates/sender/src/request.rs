//! Building and performing one webhook POST, and classifying what happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hookrelay_model::Event;
use hookrelay_model::retry::Failure;
use hookrelay_model::signing::Key;
use hookrelay_model::webhook::{BodyFormat, Secret, Webhook};
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::guard::{self, Destinations, GuardedResolver};

/// A request ready to send.
pub(crate) struct Outgoing {
    pub url: String,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

/// What one attempt came to.
pub(crate) struct Answer {
    pub started_at: OffsetDateTime,
    pub latency: Duration,
    pub status: Option<u16>,
    pub failure: Option<Failure>,
    pub error: Option<String>,
    pub snippet: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Answer {
    /// A failure found before anything was sent.
    pub fn refused(error: String) -> Self {
        Self {
            started_at: OffsetDateTime::now_utc(),
            latency: Duration::ZERO,
            status: None,
            failure: Some(Failure::Permanent),
            error: Some(error),
            snippet: None,
            retry_after: None,
        }
    }
}

/// The client of every delivery: direct, or through the egress proxy when one is
/// configured. Either way names resolve through the SSRF guard.
#[derive(Clone)]
pub(crate) enum Client {
    Direct(reqwest::Client),
    Egress {
        client: crate::egress::EgressClient,
        timeout: Duration,
    },
}

/// Why the client of deliveries could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot set up TLS for the egress proxy: {0}")]
    Tls(#[from] rustls::Error),
}

pub(crate) fn client(
    timeout: Duration,
    destinations: Arc<Destinations>,
    egress: Option<&crate::egress::EgressProxy>,
) -> Result<Client, ClientError> {
    let connect_timeout = timeout.min(Duration::from_secs(5));
    Ok(match egress {
        Some(proxy) => Client::Egress {
            // Shorter than the whole exchange's timeout, so that a proxy that does
            // not answer `CONNECT` is a failed connection (`connect`), not a timeout
            // of the receiver's.
            client: crate::egress::client(
                proxy,
                destinations,
                (timeout * 4 / 5).min(connect_timeout),
            )?,
            timeout,
        },
        None => Client::Direct(direct_client(timeout, connect_timeout, destinations)?),
    })
}

/// Names resolve through the SSRF guard, and proxies from the environment are
/// ignored (reqwest's proxy would resolve names past the guard; the egress proxy
/// has its own path, crate::egress).
fn direct_client(
    timeout: Duration,
    connect_timeout: Duration,
    destinations: Arc<Destinations>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(GuardedResolver { destinations })
        .no_proxy()
        .user_agent(hookrelay_model::USER_AGENT)
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        // A 3xx is the receiver's answer, not an instruction to post elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(32)
        .build()
}

/// The body and content type for a delivery.
pub(crate) fn body(event: &Event, format: BodyFormat) -> (Vec<u8>, &'static str) {
    match format {
        BodyFormat::Json => (
            serde_json::to_vec(&event.public_payload()).unwrap_or_default(),
            "application/json",
        ),
        BodyFormat::Form => (
            format!("uploadId={}", form_encode(event.upload_id())).into_bytes(),
            "application/x-www-form-urlencoded",
        ),
    }
}

/// The headers every receiver can rely on, after the webhook's custom ones.
pub(crate) fn headers(
    delivery_id: Uuid,
    event: &Event,
    attempt: u32,
    (body, content_type): (&[u8], &'static str),
    webhook: Option<&Webhook>,
    trace: &[(&'static str, String)],
) -> HeaderMap {
    let mut h = HeaderMap::new();
    // First, so that what hookrelay sets below replaces any of them (the model's
    // rule refuses those names; a row written around it changes nothing here).
    if let Some(w) = webhook {
        custom(&mut h, w);
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let id = delivery_id.to_string();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let timestamp = now.to_string();
    let described =
        hookrelay_model::wire::delivery_headers(&id, now, &event.id, &event.event_type, attempt);
    for (name, value) in &described {
        insert(&mut h, name, value);
    }
    if let Some(signature) = webhook.and_then(|w| sign(&w.signing_secrets, &id, &timestamp, body)) {
        insert(&mut h, "webhook-signature", &signature);
    }
    if let Some(secret) = webhook.and_then(|w| w.secret.as_ref()) {
        // OneSchema: the secret is the Basic auth password; no username.
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!(":{}", secret.expose()));
        if let Ok(mut v) = HeaderValue::from_str(&format!("Basic {token}")) {
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
    }
    for (name, value) in trace {
        insert(&mut h, name, value);
    }
    h
}

/// The Standard Webhooks `webhook-signature` value over `"{id}.{timestamp}.{body}"`,
/// one signature per key, space-separated (several while rotating or switching
/// scheme), each as its key's kind says: `v1,<base64 HMAC-SHA256>` for a `whsec_`
/// secret, `v1a,<base64 ed25519 signature>` for a `whsk_` private key.
pub(crate) fn sign(secrets: &[Secret], id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let signatures: Vec<String> = secrets
        .iter()
        .filter_map(Key::parse)
        .filter_map(|key| match key {
            Key::Hmac(key) => {
                use hmac::{KeyInit, Mac};
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(body);
                Some(format!("v1,{}", b64(&mac.finalize().into_bytes())))
            }
            Key::Ed25519(key) => {
                use ed25519_dalek::Signer;
                let mut message = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
                message.extend_from_slice(id.as_bytes());
                message.push(b'.');
                message.extend_from_slice(timestamp.as_bytes());
                message.push(b'.');
                message.extend_from_slice(body);
                Some(format!("v1a,{}", b64(&key.sign(&message).to_bytes())))
            }
        })
        .collect();
    (!signatures.is_empty()).then(|| signatures.join(" "))
}

/// The webhook's custom headers, each value marked sensitive (never in a `Debug`
/// of the request). A name or value HTTP does not allow (the model's rule refuses
/// them at the door) is skipped, naming the header, never its value.
fn custom(h: &mut HeaderMap, webhook: &Webhook) {
    for (name, value) in webhook.headers.iter() {
        let parsed = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.expose()),
        );
        match parsed {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                h.insert(name, value);
            }
            _ => tracing::warn!(
                webhook_id = %webhook.id, header = name,
                "custom header not sent: not a valid HTTP header"
            ),
        }
    }
}

/// Adds a header when the value is one HTTP allows; event ids are free text.
fn insert(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// POSTs and reads at most `snippet_bytes` of the answer.
pub(crate) async fn send(client: &Client, out: Outgoing, snippet_bytes: usize) -> Answer {
    match client {
        Client::Direct(client) => send_direct(client, out, snippet_bytes).await,
        Client::Egress { client, timeout } => {
            send_egress(client, *timeout, out, snippet_bytes).await
        }
    }
}

fn unanswered() -> Answer {
    Answer {
        started_at: OffsetDateTime::now_utc(),
        latency: Duration::ZERO,
        status: None,
        failure: None,
        error: None,
        snippet: None,
        retry_after: None,
    }
}

/// What the status line and headers of an answer say.
fn answered(answer: &mut Answer, status: reqwest::StatusCode, headers: &HeaderMap) {
    answer.status = Some(status.as_u16());
    if matches!(status.as_u16(), 429 | 503) {
        answer.retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
    }
    if !status.is_success() {
        answer.failure = Some(Failure::Status(status.as_u16()));
        answer.error = Some(format!("HTTP {status}"));
    }
}

async fn send_direct(client: &reqwest::Client, out: Outgoing, snippet_bytes: usize) -> Answer {
    let mut answer = unanswered();
    let clock = Instant::now();
    let result = client
        .post(&out.url)
        .headers(out.headers)
        .body(out.body)
        .send()
        .await;
    match result {
        Ok(mut response) => {
            let status = response.status();
            answered(&mut answer, status, response.headers());
            let (snippet, read_error) = read_snippet(&mut response, snippet_bytes).await;
            answer.snippet = Some(snippet);
            if let (true, Some(e)) = (status.is_success(), read_error) {
                // The receiver said 2xx; a body cut short does not undo that.
                tracing::debug!(error = %e, "response body not fully read");
            }
        }
        Err(e) => {
            let failure = if e.is_timeout() {
                Failure::Timeout
            } else if e.is_builder() {
                Failure::Permanent
            } else {
                Failure::Connect
            };
            not_answered(&mut answer, &e, failure);
        }
    }
    answer.latency = clock.elapsed();
    answer
}

/// The same POST through the egress proxy: the whole exchange, answer body
/// included, within `timeout` as reqwest's is.
async fn send_egress(
    client: &crate::egress::EgressClient,
    timeout: Duration,
    out: Outgoing,
    snippet_bytes: usize,
) -> Answer {
    use http_body_util::BodyExt;
    let mut answer = unanswered();
    let clock = Instant::now();
    // Parsed as reqwest parses it (the guard's check_url did the same).
    let uri = reqwest::Url::parse(&out.url)
        .ok()
        .and_then(|u| u.as_str().parse::<http::Uri>().ok());
    let Some(uri) = uri else {
        answer.failure = Some(Failure::Permanent);
        answer.error = Some("request could not be made: not a valid URL".into());
        return answer;
    };
    let mut request = http::Request::new(http_body_util::Full::new(bytes::Bytes::from(out.body)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = out.headers;
    request.headers_mut().insert(
        reqwest::header::USER_AGENT,
        HeaderValue::from_static(hookrelay_model::USER_AGENT),
    );
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, mut body) = response.into_parts();
        let mut snippet: Vec<u8> = Vec::new();
        let mut read_error = None;
        while snippet.len() < snippet_bytes {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let take = data.len().min(snippet_bytes - snippet.len());
                        snippet.extend_from_slice(&data[..take]);
                    }
                }
                Some(Err(e)) => {
                    read_error = Some(e);
                    break;
                }
                None => break,
            }
        }
        Ok::<_, hyper_util::client::legacy::Error>((parts, snippet, read_error))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((parts, snippet, read_error))) => {
            answered(&mut answer, parts.status, &parts.headers);
            answer.snippet = Some(String::from_utf8_lossy(&snippet).into_owned());
            if let (true, Some(e)) = (parts.status.is_success(), read_error) {
                tracing::debug!(error = %e, "response body not fully read");
            }
        }
        // Refused, unreachable or slow proxies included: a failed connection.
        Ok(Err(e)) => not_answered(&mut answer, &e, Failure::Connect),
        Err(_) => {
            answer.failure = Some(Failure::Timeout);
            answer.error = Some("timed out".into());
        }
    }
    answer.latency = clock.elapsed();
    answer
}

/// What a request that got no answer leaves in `answer`: a destination the guard
/// refused fails for good, naming why; anything else fails as `failure`.
fn not_answered(answer: &mut Answer, e: &(dyn std::error::Error + 'static), failure: Failure) {
    if let Some(blocked) = guard::blocked_in(e) {
        answer.failure = Some(Failure::Permanent);
        answer.error = Some(blocked.to_string());
    } else {
        answer.failure = Some(failure);
        answer.error = Some(describe(e, failure));
    }
}

async fn read_snippet(
    response: &mut reqwest::Response,
    max: usize,
) -> (String, Option<reqwest::Error>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if buf.len() >= max {
            break;
        }
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(max - buf.len())]),
            Ok(None) => break,
            Err(e) => return (String::from_utf8_lossy(&buf).into_owned(), Some(e)),
        }
    }
    (String::from_utf8_lossy(&buf).into_owned(), None)
}

fn describe(e: &(dyn std::error::Error + 'static), failure: Failure) -> String {
    let mut text = match failure {
        Failure::Timeout => "timed out".to_owned(),
        Failure::Connect => "connection failed".to_owned(),
        _ => "request could not be made".to_owned(),
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = when - OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub(crate) fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook_with(headers: &[(&str, &str)], basic: Option<&str>) -> Webhook {
        let mut w = Webhook {
            id: Uuid::nil(),
            tenant: "acme".into(),
            key: "k".into(),
            url: "https://x.test/".into(),
            amqp_exchange: None,
            amqp_routing_key: None,
            url_credentials: None,
            event_types: vec![],
            secret: None,
            signing_secrets: vec![],
            signing_scheme: Default::default(),
            public_keys: vec![],
            headers: Default::default(),
            development_mode: false,
            import_identifiers: vec![],
            schema_ids: vec![],
            format: BodyFormat::Json,
            retry_on: Default::default(),
            filter: None,
            enabled: true,
            disabled_reason: None,
            paused_at: None,
            breaker: None,
            rate_limit: None,
            rate_burst: None,
            max_in_flight: None,
            ordered: false,
            on_failure: Default::default(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        w.headers = hookrelay_model::headers::CustomHeaders::new(
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), Secret::new(*v))),
        );
        w.secret = basic.map(Secret::new);
        w
    }

    /// Custom headers go with the request, marked sensitive; whatever hookrelay sets
    /// wins over a stored one of the same name (a row written around the rule).
    #[test]
    fn custom_headers_are_sent_and_never_replace_hookrelays() {
        let event: Event = serde_json::from_value(serde_json::json!({
            "id": "e1", "tenant": "acme", "type": "t",
            "occurred_at": "2024-04-24T17:20:14Z", "payload": {}
        }))
        .unwrap();
        let w = webhook_with(
            &[
                ("x-api-key", "k-123"),
                ("webhook-id", "forged"),
                ("authorization", "Bearer forged"),
                ("content-type", "text/plain"),
                ("x-bad", "two\nlines"),
            ],
            Some("pw"),
        );
        let id = Uuid::now_v7();
        let h = headers(id, &event, 1, (b"{}", "application/json"), Some(&w), &[]);
        let key = h.get("x-api-key").unwrap();
        assert_eq!(key, "k-123");
        assert!(key.is_sensitive());
        assert_eq!(h.get("webhook-id").unwrap(), id.to_string().as_str());
        assert_eq!(h.get("authorization").unwrap(), "Basic OnB3");
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        assert!(h.get("x-bad").is_none(), "a value HTTP refuses is skipped");
        let without = headers(id, &event, 1, (b"{}", "application/json"), None, &[]);
        assert!(without.get("x-api-key").is_none());
    }

    /// Each key signs as its kind says, newest first: an HMAC `v1` and an ed25519
    /// `v1a` that its public key verifies over `{id}.{timestamp}.{body}`.
    #[test]
    fn each_key_signs_with_its_scheme() {
        use ed25519_dalek::Verifier;
        use hookrelay_model::signing::SigningScheme;
        let sk = SigningScheme::Ed25519.generate().unwrap();
        let hmac = Secret::new(format!("whsec_{}", "A".repeat(32)));
        let header = sign(&[sk.clone(), hmac], "msg_1", "1700000000", b"{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "{header}");
        let v1a = parts[0].strip_prefix("v1a,").unwrap();
        assert!(parts[1].starts_with("v1,"));
        let Some(Key::Ed25519(key)) = Key::parse(&sk) else {
            panic!("an ed25519 key")
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v1a)
            .unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&raw).unwrap();
        let public = key.verifying_key();
        assert!(public.verify(b"msg_1.1700000000.{}", &signature).is_ok());
        assert!(public.verify(b"msg_1.1700000001.{}", &signature).is_err());
        assert_eq!(sign(&[Secret::new("junk")], "m", "1", b""), None);
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("7df3a66d-b7bb"), "7df3a66d-b7bb");
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
