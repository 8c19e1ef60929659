//! A fixed egress (`HOOKRELAY_EGRESS_PROXY`): deliveries leave through an HTTP
//! CONNECT proxy (the harness's, on 127.0.0.1), which is asked for the address the
//! sender resolved and checked, never for the name; the SSRF guard refuses before
//! the proxy hears of a destination; a proxy that is down or refuses is a failed
//! connection, retried under the webhook's policy.

use std::net::SocketAddr;
use std::time::Duration;

use hookrelay_model::retry::RetryPolicy;
use hookrelay_sender::egress::EgressProxy;
use hookrelay_sender::guard::Destinations;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::proxy::ConnectProxy;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Receiver, TestStack, wait_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A stack whose sender leaves through the proxy at `proxy_url`.
async fn through(proxy_url: &str, destinations: Option<Destinations>) -> TestStack {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.egress_proxy = Some(proxy_url.parse::<EgressProxy>().expect("proxy URL"));
    if let Some(d) = destinations {
        config.destinations = d;
    }
    stack.start_sender_with(config).await;
    stack
}

#[tokio::test]
async fn egress_deliveries_go_through_the_proxy_to_the_checked_address_not_the_name() {
    let proxy = ConnectProxy::start().await;
    let url = format!("http://relay:s3cr%40t@{}", proxy.addr);
    let stack = through(&url, None).await;
    let port = stack.receiver.addr.port();
    // By name: the sender resolves it, the proxy gets the address.
    stack
        .create_webhook(webhook(
            "acme",
            "named",
            &format!("http://localhost:{port}/via"),
        ))
        .await;
    let e = event("acme", "file_uploaded", json!({"payload": {"n": 1}}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/via", 1, WAIT).await;
    assert_eq!(got[0].json()["n"], 1, "the POST itself came through");
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);

    let asked = proxy.asked();
    assert!(!asked.is_empty(), "the delivery went through the proxy");
    for c in &asked {
        assert!(
            c.target.parse::<SocketAddr>().is_ok(),
            "the proxy is asked for an IP:port, never a name: {c:?}"
        );
        assert_eq!(
            c.authorization.as_deref(),
            Some("Basic cmVsYXk6czNjckB0"),
            "Proxy-Authorization from the URL's user:password"
        );
    }
    assert!(
        asked
            .iter()
            .any(|c| c.target == format!("127.0.0.1:{port}")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn egress_a_name_resolving_to_a_private_address_is_refused_before_the_proxy_is_asked() {
    let proxy = ConnectProxy::start().await;
    // Only 127.0.0.2 is allowed: `localhost` (127.0.0.1 here) is not. The proxy's own
    // loopback address is the operator's and is not checked.
    let stack = through(
        &proxy.url(),
        Some(Destinations {
            allow_private: false,
            allowed: vec!["127.0.0.2/32".parse().unwrap()],
        }),
    )
    .await;
    let allowed = Receiver::start_on("127.0.0.2").await;
    let port = stack.receiver.addr.port();
    let mut blocked = webhook("acme", "blocked", &format!("http://localhost:{port}/no"));
    blocked.event_types = vec!["a".into()];
    stack.create_webhook(blocked).await;
    let mut open = webhook("acme", "open", &allowed.url("/yes"));
    open.event_types = vec!["b".into()];
    stack.create_webhook(open).await;
    let a = event("acme", "a", json!({}));
    let b = event("acme", "b", json!({}));
    stack.publish(&a).await;
    stack.publish(&b).await;

    let d = stack.wait_settled("acme", &a.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    let error = d[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("destination blocked"), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");
    assert_eq!(d[0].attempts, 1, "blocked for good, not retried");
    assert!(stack.receiver.all().is_empty(), "nothing reached it");

    allowed.wait_for("/yes", 1, WAIT).await;
    assert_eq!(
        proxy
            .asked()
            .into_iter()
            .map(|c| c.target)
            .collect::<Vec<_>>(),
        vec![format!("127.0.0.2:{}", allowed.addr.port())],
        "the proxy was asked for the allowed destination only"
    );
}

#[tokio::test]
async fn egress_a_proxy_that_is_down_is_a_failed_connection_retried_until_it_is_back() {
    let down = ConnectProxy::free_port().await;
    let stack = through(&format!("http://{down}"), None).await;
    let mut w = webhook("acme", "later", &stack.receiver.url("/later"));
    w.retry_on = RetryPolicy::parse(&["connect"]).unwrap();
    stack.create_webhook(w).await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;

    wait_until("the first attempt is recorded", WAIT, || async {
        match stack.deliveries_of("acme", &e.id).await.first() {
            Some(d) => !stack.attempts_of(d.id).await.is_empty(),
            None => false,
        }
    })
    .await;
    let proxy = ConnectProxy::start_on(down, None).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(
        d[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        d[0].last_error
    );
    let attempts = stack.attempts_of(d[0].id).await;
    assert!(attempts.len() >= 2, "{attempts:?}");
    let first = attempts[0].error.clone().unwrap_or_default();
    assert!(
        first.contains("connection failed")
            && first.contains(&format!("egress proxy {down} unreachable")),
        "{first}"
    );
    assert_eq!(attempts[0].outcome, "retry");
    assert!(!proxy.asked().is_empty());
    stack.receiver.wait_for("/later", 1, WAIT).await;
}

#[tokio::test]
async fn egress_a_proxy_that_refuses_connect_is_a_failed_connection_with_its_answer() {
    let proxy = ConnectProxy::requiring("Basic c29tZW9uZTplbHNl").await;
    let url = format!("http://relay:wrong-password@{}", proxy.addr);
    let stack = through(&url, None).await;
    let mut w = webhook("acme", "refused", &stack.receiver.url("/refused"));
    w.retry_on = RetryPolicy::parse(&["connect"]).unwrap();
    stack.create_webhook(w).await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    let attempts = stack.attempts_of(d[0].id).await;
    assert_eq!(attempts.len(), 3, "retried per the policy: {attempts:?}");
    for a in &attempts {
        let error = a.error.clone().unwrap_or_default();
        assert!(
            error.contains("refused CONNECT 127.0.0.1:")
                && error.contains("407 Proxy Authentication Required"),
            "{error}"
        );
        assert!(!error.contains("wrong-password"), "{error}");
    }
    assert_eq!(proxy.asked().len(), 3);
    assert!(stack.receiver.all().is_empty());
}

/// `hookrelay serve` with `HOOKRELAY_EGRESS_PROXY` set: the setting goes from the
/// flag to the sender, which delivers through the proxy; the log says so with the
/// proxy's address and never shows its password.
#[tokio::test]
async fn egress_serve_takes_the_proxy_from_its_variable_and_never_logs_the_password() {
    let proxy = ConnectProxy::start().await;
    let mut stack = TestStack::for_processes().await;
    stack.start_router().await;
    stack
        .create_webhook(webhook("acme", "proc", &stack.receiver.url("/proc")))
        .await;
    let log = std::env::temp_dir().join(format!("{}.egress.log", stack.prefix));
    let mut sender = serve_sender(
        &stack,
        &format!("http://relay:pw-never-logged@{}", proxy.addr),
        &log,
    );
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    stack.receiver.wait_for("/proc", 1, WAIT).await;
    sender.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert_eq!(
        proxy
            .asked()
            .into_iter()
            .map(|c| c.target)
            .collect::<Vec<_>>(),
        vec![stack.receiver.addr.to_string()],
    );
    assert!(
        text.contains("deliveries leave through the egress proxy")
            && text.contains(&proxy.addr.to_string()),
        "{text}"
    );
    assert!(!text.contains("pw-never-logged"), "{text}");
}

/// A proxy URL hookrelay cannot use (`socks5h://` asks the proxy to resolve names)
/// stops `serve` at start-up with a message that names the setting and not the
/// URL's password.
#[tokio::test]
async fn egress_serve_refuses_a_socks5h_proxy_without_showing_its_password() {
    let stack = TestStack::for_processes().await;
    let log = std::env::temp_dir().join(format!("{}.egress-bad.log", stack.prefix));
    let mut sender = serve_sender(
        &stack,
        "socks5h://relay:pw-never-shown@127.0.0.1:1080",
        &log,
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = sender.0.try_wait().expect("wait") {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "serve did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(!status.success());
    assert!(
        text.contains("HOOKRELAY_EGRESS_PROXY") && text.contains("socks5h:// is not supported"),
        "{text}"
    );
    assert!(!text.contains("pw-never-shown"), "{text}");
}

/// A `hookrelay serve` child, killed when dropped (a failed assertion included).
struct Serving(std::process::Child);

impl Serving {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_sender(stack: &TestStack, proxy: &str, log: &std::path::Path) -> Serving {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let file = std::fs::File::create(log).expect("log file");
    std::process::Command::new(hookrelay_tests::hookrelay_binary())
        .args(["serve", "--roles", "sender", "--http-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
        .env("HOOKRELAY_AMQP_URL", &stack.amqp_url)
        .env("HOOKRELAY_AMQP_PREFIX", &stack.prefix)
        .env("HOOKRELAY_RETRY_DELAYS", "200ms,400ms")
        .env("HOOKRELAY_RETRY_AFTER_MAX", "2s")
        .env("HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "true")
        .env("HOOKRELAY_EGRESS_PROXY", proxy)
        .env("HOOKRELAY_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .map(Serving)
        .expect("hookrelay serve starts")
}

#[tokio::test]
async fn egress_a_proxy_that_never_answers_connect_is_a_failed_connection_not_a_timeout() {
    let proxy = ConnectProxy::silent().await;
    let stack = through(&proxy.url(), None).await;
    let mut w = webhook("acme", "silent", &stack.receiver.url("/silent"));
    w.retry_on = RetryPolicy::parse(&["connect"]).unwrap();
    stack.create_webhook(w).await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    let attempts = stack.attempts_of(d[0].id).await;
    assert_eq!(
        attempts.len(),
        3,
        "retried as a failed connection: {attempts:?}"
    );
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.starts_with("connection failed")
            && error.contains(&format!("through egress proxy {}", proxy.addr)),
        "{error}"
    );
    assert!(stack.receiver.all().is_empty());
}

/// An https destination: the proxy is asked for the checked address, and TLS runs
/// inside the tunnel with the URL's host name (the ClientHello's SNI, which is also
/// the name the certificate is verified against). The receiver here speaks plain
/// HTTP, so the handshake fails: a failed connection, nothing POSTed in clear.
#[tokio::test]
async fn egress_https_runs_tls_inside_the_tunnel_for_the_urls_host_name() {
    let proxy = ConnectProxy::start().await;
    let stack = through(&proxy.url(), None).await;
    let port = stack.receiver.addr.port();
    stack
        .create_webhook(webhook(
            "acme",
            "tls",
            &format!("https://localhost:{port}/tls"),
        ))
        .await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    let error = d[0].last_error.clone().unwrap_or_default();
    assert!(error.starts_with("connection failed"), "{error}");
    let asked = proxy.asked();
    let tunnel = asked
        .iter()
        .find(|c| c.target == format!("127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("{asked:?}"));
    let hello = &tunnel.first_bytes;
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    assert!(
        hello.windows(b"localhost".len()).any(|w| w == b"localhost"),
        "the SNI names the URL's host"
    );
    assert!(
        stack.receiver.received_on("/tls").is_empty(),
        "nothing in clear"
    );
}

/// `socks5://`: the same guard, the same tunnel to the checked address (SOCKS5's
/// IPv4 address type, never a domain name), with RFC 1929 credentials.
#[tokio::test]
async fn egress_a_socks5_proxy_is_asked_for_the_checked_address_with_its_credentials() {
    let proxy = ConnectProxy::socks5(Some("relay:s3cr@t")).await;
    let stack = through(&format!("socks5://relay:s3cr%40t@{}", proxy.addr), None).await;
    let port = stack.receiver.addr.port();
    stack
        .create_webhook(webhook(
            "acme",
            "socks",
            &format!("http://localhost:{port}/socks"),
        ))
        .await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    stack.receiver.wait_for("/socks", 1, WAIT).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    let asked = proxy.asked();
    assert_eq!(
        asked.iter().map(|c| c.target.clone()).collect::<Vec<_>>(),
        vec![format!("127.0.0.1:{port}")]
    );
    assert_eq!(asked[0].authorization.as_deref(), Some("relay:s3cr@t"));
}

/// A SOCKS5 proxy that refuses the credentials: a failed connection naming why.
#[tokio::test]
async fn egress_a_socks5_proxy_that_refuses_the_credentials_is_a_failed_connection() {
    let proxy = ConnectProxy::socks5(Some("relay:right")).await;
    let stack = through(&format!("socks5://relay:wrong@{}", proxy.addr), None).await;
    stack
        .create_webhook(webhook("acme", "socks", &stack.receiver.url("/socks")))
        .await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    let error = d[0].last_error.clone().unwrap_or_default();
    assert!(
        error.starts_with("connection failed")
            && error.contains("refused CONNECT 127.0.0.1:")
            && error.contains("user name or password refused")
            && !error.contains("wrong"),
        "{error}"
    );
    assert!(stack.receiver.all().is_empty());
}
