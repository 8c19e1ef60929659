//! AMQP destinations: publishing a delivery to a webhook's broker (an `amqp://` or
//! `amqps://` URL, its exchange and routing key), persistent, mandatory and
//! confirmed, and what came of it as the same [`Answer`] an HTTP POST gives, so the
//! verdict, retries, breaker and dead-lettering apply unchanged.
//!
//! The broker's host is resolved here and checked by the SSRF guard; the connection
//! goes to the checked address (TLS still verifies the URL's name). Connections are
//! pooled per checked address and URL (vhost and credentials), with one confirm
//! channel per exchange (the broker closes a channel on a publish to an exchange that
//! does not exist: only that exchange's publishes share its fate), and closed after
//! `idle_after` without a publish.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookrelay_model::retry::Failure;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use reqwest::header::HeaderMap;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::guard::{self, Destinations};
use crate::request::Answer;

/// One message for a broker destination.
pub(crate) struct Publish<'a> {
    /// The URL with its credentials, placeholders filled. Never logged or shown.
    pub url: &'a str,
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// The Standard Webhooks headers and the webhook's custom ones, as for a POST.
    pub headers: HeaderMap,
    /// The message id: the delivery id, what a POST sends as `webhook-id`.
    pub message_id: String,
}

/// The pool of connections to webhooks' brokers: one per sender.
pub(crate) struct Brokers {
    destinations: Arc<Destinations>,
    timeout: Duration,
    idle_after: Duration,
    /// Per key, its connection once open; each key's own lock is held while it
    /// connects, so a slow broker holds back only its own publishes.
    open: Mutex<HashMap<Key, Slot>>,
}

/// A key's connection, once open, behind the lock its connecting holds.
type Slot = Arc<Mutex<Option<Arc<Link>>>>;

/// A pooled connection's identity: the checked address and the whole URL (its vhost,
/// user and password; never logged, so no `Debug`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    address: SocketAddr,
    url: String,
}

/// A connection and its confirm channels, one per exchange (each opened again after
/// the broker closes it, as it does on a publish to an exchange that does not exist).
struct Link {
    connection: Connection,
    channels: Mutex<HashMap<String, Channel>>,
    used: std::sync::Mutex<Instant>,
}

/// Why a publish failed: the attempt's error text and failure class.
struct Refused {
    failure: Failure,
    error: String,
}

impl Refused {
    fn connect(error: impl Into<String>) -> Self {
        Self {
            failure: Failure::Connect,
            error: error.into(),
        }
    }
}

impl Brokers {
    pub(crate) fn new(
        destinations: Arc<Destinations>,
        timeout: Duration,
        idle_after: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            destinations,
            timeout,
            idle_after,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Publishes and waits for the broker's confirm, within the timeout.
    pub(crate) async fn publish(&self, message: Publish<'_>) -> Answer {
        let started_at = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, self.try_publish(message)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Refused {
                failure: Failure::Timeout,
                error: format!(
                    "timed out after {}: no confirm from the broker",
                    humantime::format_duration(self.timeout)
                ),
            }),
        };
        let (failure, error) = match outcome {
            Ok(()) => (None, None),
            Err(refused) => (Some(refused.failure), Some(refused.error)),
        };
        Answer {
            started_at,
            latency: clock.elapsed(),
            status: None,
            failure,
            error,
            snippet: None,
            retry_after: None,
        }
    }

    async fn try_publish(&self, message: Publish<'_>) -> Result<(), Refused> {
        let uri = AMQPUri::from_str(message.url).map_err(|_| Refused {
            failure: Failure::Permanent,
            error: "not a valid amqp:// or amqps:// URL".into(),
        })?;
        let address = self.checked_address(&uri).await?;
        let key = Key {
            address,
            url: message.url.to_owned(),
        };
        let link = self.link(&key, uri).await?;
        let channel = match link.channel(message.exchange).await {
            Ok(channel) => channel,
            Err(e) => {
                self.forget(&key).await;
                return Err(Refused::connect(broker_error("cannot open a channel", &e)));
            }
        };
        let properties = properties(&message)?;
        let exchange = short("amqp_exchange", message.exchange)?;
        let routing_key = short("amqp_routing_key", message.routing_key)?;
        let confirm = channel
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.body,
                properties,
            )
            .await;
        let confirmation = match confirm {
            Ok(confirm) => confirm.await,
            Err(e) => Err(e),
        };
        match confirmation {
            Ok(Confirmation::Ack(None)) => Ok(()),
            Ok(Confirmation::Ack(Some(returned))) => Err(Refused::connect(format!(
                "unroutable: no queue bound to exchange `{}` for routing key `{}` ({} {})",
                message.exchange, message.routing_key, returned.reply_code, returned.reply_text
            ))),
            Ok(Confirmation::Nack(_)) => Err(Refused::connect("nacked by the broker")),
            Ok(Confirmation::NotRequested) => {
                link.drop_channel(message.exchange).await;
                Err(Refused::connect("the broker's channel did not confirm"))
            }
            Err(e) => {
                // The broker closes the channel on a refused publish (an exchange that
                // does not exist): the next publish opens another.
                link.drop_channel(message.exchange).await;
                if !link.connection.status().connected() {
                    self.forget(&key).await;
                }
                Err(Refused::connect(broker_error("refused by the broker", &e)))
            }
        }
    }

    /// The broker's address, resolved and checked by the SSRF guard.
    async fn checked_address(&self, uri: &AMQPUri) -> Result<SocketAddr, Refused> {
        let host = &uri.authority.host;
        match guard::resolve_permitted(&self.destinations, host).await {
            Ok(permitted) => permitted
                .first()
                .map(|ip| SocketAddr::new(*ip, uri.authority.port))
                .ok_or_else(|| Refused::connect(format!("{host} has no address"))),
            Err(e) => match guard::blocked_in(e.as_ref()) {
                Some(blocked) => Err(Refused {
                    failure: Failure::Permanent,
                    error: blocked.to_string(),
                }),
                None => Err(Refused::connect(format!("cannot resolve {host}: {e}"))),
            },
        }
    }

    /// The pooled connection for `key`, opened when there is none or it was lost.
    async fn link(&self, key: &Key, uri: AMQPUri) -> Result<Arc<Link>, Refused> {
        let slot = Arc::clone(self.open.lock().await.entry(key.clone()).or_default());
        let mut slot = slot.lock().await;
        if let Some(link) = slot.as_ref()
            && link.connection.status().connected()
        {
            link.touch();
            return Ok(Arc::clone(link));
        }
        *slot = None;
        let connection = connect(uri, key.address).await?;
        let link = Arc::new(Link {
            connection,
            channels: Mutex::new(HashMap::new()),
            used: std::sync::Mutex::new(Instant::now()),
        });
        *slot = Some(Arc::clone(&link));
        Ok(link)
    }

    async fn forget(&self, key: &Key) {
        let slot = self.open.lock().await.remove(key);
        let link = match slot {
            Some(slot) => slot.lock().await.take(),
            None => None,
        };
        if let Some(link) = link {
            link.close().await;
        }
    }

    /// Closes the connections idle for `idle_after` (each at its next look, every
    /// quarter of it), and all of them at shutdown.
    pub(crate) async fn close_idle(
        self: Arc<Self>,
        mut shutdown: hookrelay_model::shutdown::Shutdown,
    ) {
        let every = (self.idle_after / 4).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.wait() => break,
            }
            let mut open = self.open.lock().await;
            let mut idle = Vec::new();
            for slot in open.values() {
                // A slot busy connecting or publishing is not idle.
                let Ok(mut slot) = slot.try_lock() else {
                    continue;
                };
                if slot
                    .as_ref()
                    .is_some_and(|l| l.idle_for() >= self.idle_after)
                {
                    idle.extend(slot.take());
                }
            }
            // An empty slot goes once nobody holds it: a publish takes its slot
            // under this lock, so one about to connect keeps it.
            open.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || slot.try_lock().map_or(true, |s| s.is_some())
            });
            drop(open);
            for link in idle {
                tracing::debug!("closing an idle connection to a webhook's broker");
                link.close().await;
            }
        }
        let all: Vec<_> = self.open.lock().await.drain().map(|(_, s)| s).collect();
        for slot in all {
            if let Some(link) = slot.lock().await.take() {
                link.close().await;
            }
        }
    }

    /// How many broker connections are open (tests).
    #[cfg(test)]
    pub(crate) async fn open_count(&self) -> usize {
        let open = self.open.lock().await;
        let mut n = 0;
        for slot in open.values() {
            n += usize::from(slot.lock().await.is_some());
        }
        n
    }
}

impl Link {
    fn touch(&self) {
        if let Ok(mut used) = self.used.lock() {
            *used = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.used.lock().map(|u| u.elapsed()).unwrap_or_default()
    }

    /// The confirm channel for `exchange`, opened when there is none or the broker
    /// closed it.
    async fn channel(&self, exchange: &str) -> Result<Channel, lapin::Error> {
        let mut channels = self.channels.lock().await;
        if let Some(channel) = channels.get(exchange).filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channels.insert(exchange.to_owned(), channel.clone());
        Ok(channel)
    }

    async fn drop_channel(&self, exchange: &str) {
        self.channels.lock().await.remove(exchange);
    }

    async fn close(&self) {
        if self.connection.status().connected() {
            let _ = self.connection.close(200, "idle".into()).await;
        }
    }
}

/// Opens a connection to `address` (the guard's), speaking TLS to the URL's host name
/// for `amqps://`.
async fn connect(uri: AMQPUri, address: SocketAddr) -> Result<Connection, Refused> {
    let runtime = lapin::runtime::default_runtime()
        .map_err(|e| Refused::connect(format!("no runtime for the broker's connection: {e}")))?;
    let host = uri.authority.host.clone();
    let tls = uri.scheme == AMQPScheme::AMQPS;
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("hookrelay sender {}", hookrelay_model::USER_AGENT).into());
    let connected = Connection::connector(
        uri,
        runtime,
        async move |_uri, runtime| {
            let stream = lapin::tcp::AsyncTcpStream::connect(&runtime, address).await?;
            if tls {
                let config = lapin::tcp::OwnedTLSConfig::default();
                Ok(stream.into_tls(&host, config.as_ref()).await?)
            } else {
                Ok(stream)
            }
        },
        properties,
    )
    .await;
    connected.map_err(|e| Refused::connect(connect_error(&e)))
}

/// A connection's failure as the attempt log shows it: refused credentials and
/// vhosts by name, a refused connection as such.
fn connect_error(e: &lapin::Error) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("access_refused") || lower.contains("access refused") {
        format!("access refused by the broker (check the URL's credentials): {text}")
    } else if lower.contains("not_allowed") {
        format!("access refused by the broker (the user may not use the vhost): {text}")
    } else if lower.contains("connection refused") {
        format!("connection refused: {text}")
    } else {
        format!("cannot connect to the broker: {text}")
    }
}

fn broker_error(what: &str, e: &lapin::Error) -> String {
    format!("{what}: {e}")
}

fn short(field: &str, value: &str) -> Result<ShortString, Refused> {
    ShortString::try_new(value.to_owned()).map_err(|_| Refused {
        failure: Failure::Permanent,
        error: format!("{field} is longer than 255 bytes"),
    })
}

/// The message's properties: persistent, its content type, the delivery id as
/// `message_id`, and the headers a POST carries (the webhook's custom ones and the
/// Standard Webhooks ones) as message headers; never the POST's Basic auth.
fn properties(message: &Publish<'_>) -> Result<BasicProperties, Refused> {
    let mut table = FieldTable::default();
    for (name, value) in &message.headers {
        if name == reqwest::header::AUTHORIZATION || name == reqwest::header::CONTENT_TYPE {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let Ok(key) = ShortString::try_new(name.as_str().to_owned()) else {
            continue;
        };
        table.insert(
            key,
            AMQPValue::LongString(LongString::from(value.to_owned())),
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Ok(BasicProperties::default()
        .with_message_id(short("message id", &message.message_id)?)
        .with_content_type(message.content_type.into())
        .with_delivery_mode(2)
        .with_timestamp(now)
        .with_app_id("hookrelay".into())
        .with_headers(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_name_their_cause() {
        let io = lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ));
        assert!(connect_error(&io).starts_with("connection refused"));
    }

    /// The POST's headers become message headers, but never its Basic auth (a
    /// secret for HTTP) or its content type (a property).
    #[test]
    fn message_headers_are_the_posts_without_basic_auth() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Basic OnB3"),
            ("content-type", "application/json"),
            ("webhook-id", "d-1"),
            ("x-team", "payments"),
        ] {
            headers.insert(
                reqwest::header::HeaderName::from_static(name),
                value.parse().unwrap(),
            );
        }
        let message = Publish {
            url: "amqp://h",
            exchange: "x",
            routing_key: "k",
            body: Vec::new(),
            content_type: "application/json",
            headers,
            message_id: "d-1".into(),
        };
        let Ok(properties) = properties(&message) else {
            panic!("properties")
        };
        let table = properties.headers().clone().unwrap_or_default();
        let names: Vec<&str> = table.inner().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["webhook-id", "x-team"]);
        assert_eq!(properties.delivery_mode(), &Some(2));
        assert_eq!(
            properties.message_id().as_ref().map(|m| m.as_str()),
            Some("d-1")
        );
    }

    #[tokio::test]
    async fn a_blocked_broker_fails_for_good_before_connecting() {
        let brokers = Brokers::new(
            Arc::new(Destinations::default()),
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        let answer = brokers
            .publish(Publish {
                url: "amqp://u:p@127.0.0.1:5672/%2f",
                exchange: "x",
                routing_key: "k",
                body: b"{}".to_vec(),
                content_type: "application/json",
                headers: HeaderMap::new(),
                message_id: "m".into(),
            })
            .await;
        assert_eq!(answer.failure, Some(Failure::Permanent));
        let error = answer.error.unwrap_or_default();
        assert!(error.contains("destination blocked"), "{error}");
        assert!(!error.contains("u:p"), "{error}");
        assert_eq!(brokers.open_count().await, 0);
    }
}
