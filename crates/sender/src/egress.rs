//! A fixed egress: every delivery leaves through an HTTP CONNECT or SOCKS5 proxy
//! (`HOOKRELAY_EGRESS_PROXY`), so receivers can allow-list the proxy's address.
//!
//! The SSRF guard stays ours: the sender resolves the destination's name itself,
//! checks the addresses ([`guard::resolve_permitted`]), and asks the proxy to
//! `CONNECT` to a checked `IP:port` (SOCKS5: an address type, never a domain name;
//! `socks5h://` is refused), never to the name; a proxy given a name would
//! resolve it again, past the guard (DNS rebinding). TLS then runs inside the tunnel
//! and verifies the URL's host name. Plain-http destinations go through a tunnel too:
//! one path for both. The proxy's own address is the operator's and is not checked.
//! reqwest's proxy support cannot do this (it sends the name in `CONNECT`, and
//! plain-http requests in absolute form), so this path is hyper's client, with its
//! pool, over a connector of ours.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::guard::{self, Destinations};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The HTTP client of the egress path.
pub(crate) type EgressClient = Client<HttpsConnector<Tunnel>, Full<Bytes>>;

/// Where deliveries leave from: `http://[user:password@]host:port` (HTTP CONNECT)
/// or `socks5://[user:password@]host:port` (SOCKS5 CONNECT to an address). Its
/// `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct EgressProxy {
    kind: Kind,
    host: String,
    port: u16,
    /// The URL's user name and password, decoded.
    credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HttpConnect,
    Socks5,
}

/// Why an egress proxy URL was refused. The URL itself is never repeated: it may
/// carry a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProxy {
    #[error(
        "the egress proxy is not a URL (expected http:// or socks5://[user:password@]host:port)"
    )]
    NotUrl,
    #[error(
        "the egress proxy must be an HTTP CONNECT (http://) or SOCKS5 (socks5://) proxy; {0}:// is not supported"
    )]
    Scheme(String),
    #[error("the egress proxy URL names no host")]
    NoHost,
    #[error("the egress proxy URL must have no path, query or fragment")]
    Extra,
    #[error("the egress proxy's user name or password cannot be sent in a header")]
    Credentials,
}

impl std::str::FromStr for EgressProxy {
    type Err = InvalidProxy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = reqwest::Url::parse(s.trim()).map_err(|_| InvalidProxy::NotUrl)?;
        // Not socks5h://: that asks the proxy to resolve names, past the guard.
        let kind = match url.scheme() {
            "http" => Kind::HttpConnect,
            "socks5" => Kind::Socks5,
            other => return Err(InvalidProxy::Scheme(other.to_owned())),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(InvalidProxy::NoHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidProxy::Extra);
        }
        let port = url.port_or_known_default().unwrap_or(match kind {
            Kind::HttpConnect => 80,
            Kind::Socks5 => 1080,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| InvalidProxy::Credentials)
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => {
                let (user, password) = (decode(user)?, decode(password.unwrap_or(""))?);
                let fits = match kind {
                    Kind::HttpConnect => !user.contains(':'),
                    // RFC 1929: each at most 255 bytes.
                    Kind::Socks5 => user.len() <= 255 && password.len() <= 255,
                };
                if !fits || format!("{user}{password}").contains(['\r', '\n']) {
                    return Err(InvalidProxy::Credentials);
                }
                Some((user, password))
            }
        };
        Ok(Self {
            kind,
            host,
            port,
            credentials,
        })
    }
}

impl EgressProxy {
    /// `host:port`, as the proxy is dialled and named in errors.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// `Basic …` for `Proxy-Authorization`, when the URL carries credentials.
    fn basic_authorization(&self) -> Option<String> {
        self.credentials.as_ref().map(|(user, password)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        })
    }
}

impl fmt::Display for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            Kind::HttpConnect => "http",
            Kind::Socks5 => "socks5",
        };
        write!(f, "{scheme}://{}", self.address())
    }
}

impl fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressProxy")
            .field("kind", &self.kind)
            .field("address", &self.address())
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What went wrong between the sender and the destination on the egress path (the
/// guard's refusal is a [`guard::Blocked`] instead, and fails the delivery for good).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("egress proxy {proxy} unreachable")]
    Unreachable {
        proxy: String,
        #[source]
        source: std::io::Error,
    },
    #[error("egress proxy {proxy} refused CONNECT {target}: {answer}")]
    Refused {
        proxy: String,
        target: SocketAddr,
        answer: String,
    },
    #[error("egress proxy {proxy} gave no valid answer to CONNECT {target}: {what}")]
    BadAnswer {
        proxy: String,
        target: SocketAddr,
        what: &'static str,
    },
    #[error("egress proxy {proxy}: CONNECT {target} failed")]
    Io {
        proxy: String,
        target: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {after:?} connecting to {target} through egress proxy {proxy}")]
    Timeout {
        proxy: String,
        target: SocketAddr,
        after: Duration,
    },
    #[error("the URL names no host")]
    NoHost,
}

/// The connector: resolves and checks the destination, then opens a tunnel to the
/// checked address through the proxy. hyper-rustls runs TLS over it for https.
#[derive(Clone)]
pub(crate) struct Tunnel {
    proxy: Arc<EgressProxy>,
    destinations: Arc<Destinations>,
    connect_timeout: Duration,
}

impl Tunnel {
    async fn open(self, dst: Uri) -> Result<TokioIo<TcpStream>, BoxError> {
        let host = dst.host().ok_or(ProxyError::NoHost)?;
        let port = dst
            .port_u16()
            .unwrap_or(if dst.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        // The guard decides before the proxy hears of the destination.
        let addresses = guard::resolve_permitted(&self.destinations, host).await?;
        let mut last: Option<ProxyError> = None;
        for ip in addresses {
            let target = SocketAddr::new(ip, port);
            match tokio::time::timeout(self.connect_timeout, self.connect(target)).await {
                Ok(Ok(stream)) => return Ok(TokioIo::new(stream)),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(ProxyError::Timeout {
                        proxy: self.proxy.address(),
                        target,
                        after: self.connect_timeout,
                    })
                }
            }
        }
        Err(match last {
            Some(e) => e.into(),
            None => format!("{host} has no address").into(),
        })
    }

    /// One tunnel to `target` (an IP and port, never a name).
    async fn connect(&self, target: SocketAddr) -> Result<TcpStream, ProxyError> {
        let stream = TcpStream::connect((self.proxy.host.as_str(), self.proxy.port))
            .await
            .map_err(|source| ProxyError::Unreachable {
                proxy: self.proxy.address(),
                source,
            })?;
        stream.set_nodelay(true).map_err(|source| ProxyError::Io {
            proxy: self.proxy.address(),
            target,
            source,
        })?;
        match self.proxy.kind {
            Kind::HttpConnect => self.http_connect(stream, target).await,
            Kind::Socks5 => self.socks5_connect(stream, target).await,
        }
    }

    /// How a handshake with the proxy for `target` fails: the connection's I/O, an
    /// answer that is not the protocol's, a refusal with the proxy's own words.
    fn failures(
        &self,
        target: SocketAddr,
    ) -> (
        impl Fn(std::io::Error) -> ProxyError + Copy + '_,
        impl Fn(&'static str) -> ProxyError + Copy + '_,
        impl Fn(String) -> ProxyError + Copy + '_,
    ) {
        let proxy = move || self.proxy.address();
        (
            move |source| ProxyError::Io {
                proxy: proxy(),
                target,
                source,
            },
            move |what| ProxyError::BadAnswer {
                proxy: proxy(),
                target,
                what,
            },
            move |answer| ProxyError::Refused {
                proxy: proxy(),
                target,
                answer,
            },
        )
    }

    /// HTTP `CONNECT ip:port`, with `Proxy-Authorization: Basic` when configured.
    async fn http_connect(
        &self,
        mut stream: TcpStream,
        target: SocketAddr,
    ) -> Result<TcpStream, ProxyError> {
        let (io, bad, refused) = self.failures(target);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = self.proxy.basic_authorization() {
            request.push_str("Proxy-Authorization: ");
            request.push_str(&authorization);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        // The answer's head. The destination speaks only after we do (HTTP and TLS are
        // client-first), so nothing may follow the head in what the proxy sent.
        let mut head: Vec<u8> = Vec::with_capacity(128);
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(bad("it closed the connection"));
            }
            head.extend_from_slice(&chunk[..n]);
            if let Some(end) = find_head_end(&head) {
                if end != head.len() {
                    return Err(bad("data followed the answer"));
                }
                break;
            }
            if head.len() > 8 * 1024 {
                return Err(bad("the answer's head is too long"));
            }
        }
        let status_line = head
            .split(|b| *b == b'\n')
            .next()
            .map(|l| String::from_utf8_lossy(l).trim().to_owned())
            .unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !version.starts_with("HTTP/1.") {
            return Err(bad("not an HTTP answer"));
        }
        match code.parse::<u16>() {
            Ok(200..=299) => Ok(stream),
            Ok(_) => Err(refused(
                status_line
                    .split_once(' ')
                    .map(|(_, rest)| rest.chars().take(120).collect())
                    .unwrap_or_default(),
            )),
            Err(_) => Err(bad("no status code")),
        }
    }
}

impl Tunnel {
    /// SOCKS5 (RFC 1928) `CONNECT` to an address (never a domain name), with
    /// user name and password (RFC 1929) when configured.
    async fn socks5_connect(
        &self,
        mut stream: TcpStream,
        target: SocketAddr,
    ) -> Result<TcpStream, ProxyError> {
        let (io, bad, refused) = self.failures(target);
        let method = if self.proxy.credentials.is_some() {
            0x02
        } else {
            0x00
        };
        stream.write_all(&[0x05, 0x01, method]).await.map_err(io)?;
        let mut chosen = [0u8; 2];
        stream.read_exact(&mut chosen).await.map_err(io)?;
        if chosen[0] != 0x05 {
            return Err(bad("not a SOCKS5 answer"));
        }
        if chosen[1] != method {
            return Err(refused("no acceptable authentication method".into()));
        }
        if let Some((user, password)) = &self.proxy.credentials {
            // Both at most 255 bytes: checked when the URL was parsed.
            let mut auth = vec![0x01, u8::try_from(user.len()).unwrap_or(u8::MAX)];
            auth.extend_from_slice(user.as_bytes());
            auth.push(u8::try_from(password.len()).unwrap_or(u8::MAX));
            auth.extend_from_slice(password.as_bytes());
            stream.write_all(&auth).await.map_err(io)?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0x00 {
                return Err(refused("user name or password refused".into()));
            }
        }
        let mut request = vec![0x05, 0x01, 0x00];
        match target.ip() {
            std::net::IpAddr::V4(ip) => {
                request.push(0x01);
                request.extend_from_slice(&ip.octets());
            }
            std::net::IpAddr::V6(ip) => {
                request.push(0x04);
                request.extend_from_slice(&ip.octets());
            }
        }
        request.extend_from_slice(&target.port().to_be_bytes());
        stream.write_all(&request).await.map_err(io)?;
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).await.map_err(io)?;
        if reply[0] != 0x05 {
            return Err(bad("not a SOCKS5 answer"));
        }
        if reply[1] != 0x00 {
            return Err(refused(socks5_reply(reply[1])));
        }
        // The bound address, which we do not need.
        let rest = match reply[3] {
            0x01 => 4 + 2,
            0x04 => 16 + 2,
            0x03 => {
                let mut len = [0u8; 1];
                stream.read_exact(&mut len).await.map_err(io)?;
                usize::from(len[0]) + 2
            }
            _ => return Err(bad("an unknown address type")),
        };
        let mut bound = vec![0u8; rest];
        stream.read_exact(&mut bound).await.map_err(io)?;
        Ok(stream)
    }
}

/// RFC 1928's reply codes, as an operator reads them.
fn socks5_reply(code: u8) -> String {
    let text = match code {
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unknown error",
    };
    format!("SOCKS5 reply {code}: {text}")
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

impl tower_service::Service<Uri> for Tunnel {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        Box::pin(self.clone().open(dst))
    }
}

/// The client of the egress path: hyper's pooled client over [`Tunnel`], with TLS
/// verified as reqwest verifies it (the platform's verifier and roots).
pub(crate) fn client(
    proxy: &EgressProxy,
    destinations: Arc<Destinations>,
    connect_timeout: Duration,
) -> Result<EgressClient, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let tunnel = Tunnel {
        proxy: Arc::new(proxy.clone()),
        destinations,
        connect_timeout,
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tunnel);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(32)
        .build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_and_never_show_the_password() {
        let p: EgressProxy = "http://egress:s3cr%40t@10.0.0.5:3128".parse().unwrap();
        assert_eq!(p.address(), "10.0.0.5:3128");
        assert_eq!(p.to_string(), "http://10.0.0.5:3128");
        let auth = p.basic_authorization().unwrap();
        assert_eq!(
            auth,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("egress:s3cr@t")
            )
        );
        assert!(!format!("{p:?}").contains("s3cr"), "{p:?}");
        let plain: EgressProxy = "http://proxy.internal".parse().unwrap();
        assert_eq!(plain.address(), "proxy.internal:80");
        assert!(!plain.has_credentials());
        let v6: EgressProxy = "http://[fd00::1]:8080/".parse().unwrap();
        assert_eq!(v6.address(), "[fd00::1]:8080");
        let socks: EgressProxy = "socks5://u:hunter2@10.0.0.5".parse().unwrap();
        assert_eq!(socks.to_string(), "socks5://10.0.0.5:1080");
        assert!(!format!("{socks:?}").contains("hunter2"));
    }

    #[test]
    fn other_proxy_urls_are_refused_without_repeating_them() {
        for (url, want) in [
            (
                "socks5h://u:hunter2@10.0.0.5:1080",
                InvalidProxy::Scheme("socks5h".into()),
            ),
            (
                "https://10.0.0.5:3128",
                InvalidProxy::Scheme("https".into()),
            ),
            ("10.0.0.5:3128", InvalidProxy::NotUrl),
            ("not a url", InvalidProxy::NotUrl),
            ("http://10.0.0.5:3128/path", InvalidProxy::Extra),
        ] {
            let got = url.parse::<EgressProxy>().unwrap_err();
            assert_eq!(got, want, "{url}");
            assert!(!got.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn the_answer_head_ends_at_the_blank_line() {
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n\r\n"), Some(19));
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
