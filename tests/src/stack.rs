//! `TestStack`: one isolated hookrelay (prefix + database + receiver) per test.

use std::sync::Arc;
use std::time::Duration;

use hookrelay_amqp::{self as amqp, ConnectRetry};
use hookrelay_metrics::Metrics;
use hookrelay_model::retry::RetrySchedule;
use hookrelay_model::shutdown::{self, ShutdownTrigger};
use hookrelay_model::webhook::{NewWebhook, Webhook};
use hookrelay_model::{Event, Topology};
use hookrelay_producer::Publisher;
use hookrelay_router::{Router, RouterConfig};
use hookrelay_sender::{Sender, SenderConfig};
use hookrelay_server::api::ApiState;
use hookrelay_store::Cipher;
use hookrelay_store::deliveries::{self, Attempt, Delivery};
use hookrelay_store::webhooks::{self};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{BasicProperties, Channel, Connection};
use tokio::task::JoinHandle;

use crate::AMQP_URL;
use crate::db::TestDb;
use crate::receiver::Receiver;

/// A message taken off a queue by a test.
#[derive(Debug, Clone)]
pub struct Message {
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, key: &str) -> Option<String> {
        amqp::header_text(&self.properties, key)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("message body is JSON")
    }
}

pub struct TestStack {
    /// The broker this stack and the roles it starts use: this machine's, or a
    /// comma-separated list of cluster nodes.
    pub amqp_url: String,
    pub prefix: String,
    pub topology: Topology,
    pub schedule: RetrySchedule,
    pub db: TestDb,
    pub receiver: Receiver,
    pub publisher: Arc<Publisher>,
    pub connection: Connection,
    pub channel: Channel,
    /// Shared by every role this stack starts, as in one `serve` process.
    pub metrics: Arc<Metrics>,
    /// Seals and opens webhook secrets for every role this stack starts (no key
    /// unless a test sets one).
    pub cipher: Cipher,
    roles: Vec<(ShutdownTrigger, JoinHandle<()>)>,
}

impl TestStack {
    /// Short retry delays so retry tests take a second, not a minute.
    pub async fn new() -> Self {
        Self::build(true, AMQP_URL, crate::db::SERVER).await
    }

    /// Without the test-only `x-expires` on queues, so that `hookrelay serve` child
    /// processes, which declare the production arguments, can share the topology.
    pub async fn for_processes() -> Self {
        Self::build(false, AMQP_URL, crate::db::SERVER).await
    }

    /// As [`Self::for_processes`], on the broker(s) of `amqp_url` (a list of nodes).
    pub async fn for_processes_on(amqp_url: &str) -> Self {
        Self::build(false, amqp_url, crate::db::SERVER).await
    }

    /// As [`Self::for_processes_on`], with the database on the Postgres `db_server`
    /// (`postgres://user@host:port`) instead of this machine's.
    pub async fn for_processes_with(amqp_url: &str, db_server: &str) -> Self {
        Self::build(false, amqp_url, db_server).await
    }

    async fn build(expiring: bool, amqp_url: &str, db_server: &str) -> Self {
        let prefix = crate::unique_name("t", '.');
        let schedule = RetrySchedule {
            delays: vec![Duration::from_millis(200), Duration::from_millis(400)],
            retry_after_max: Duration::from_secs(2),
        };
        let mut topology = Topology::new(&prefix, &schedule.delays, schedule.retry_after_max);
        if expiring {
            topology = topology.with_queue_expiry(Duration::from_secs(600));
        }
        let connection = amqp::connect(amqp_url, "hookrelay-test", ConnectRetry::default())
            .await
            .expect("RabbitMQ must run at 127.0.0.1:5672 (see README: cargo xtask test starts it)");
        let channel = amqp::confirm_channel(&connection).await.expect("channel");
        hookrelay_amqp::topology::declare(&topology, &channel)
            .await
            .expect("declare topology");
        let publisher = Publisher::connect(amqp_url, topology.clone(), ConnectRetry::default())
            .await
            .expect("publisher");
        Self {
            amqp_url: amqp_url.to_owned(),
            prefix,
            topology,
            schedule,
            db: TestDb::new_on(db_server).await,
            receiver: Receiver::start().await,
            publisher: Arc::new(publisher),
            connection,
            channel,
            metrics: Arc::new(Metrics::new()),
            cipher: Cipher::none(),
            roles: Vec::new(),
        }
    }

    pub fn router_config(&self) -> RouterConfig {
        RouterConfig::new(&self.amqp_url, self.topology.clone())
    }

    pub fn sender_config(&self) -> SenderConfig {
        let mut config =
            SenderConfig::new(&self.amqp_url, self.topology.clone(), self.schedule.clone());
        config.http_timeout = Duration::from_millis(500);
        config.shutdown_grace = Duration::from_secs(5);
        // Test receivers listen on 127.0.0.1.
        config.destinations.allow_private = true;
        config.cipher = self.cipher.clone();
        config
    }

    /// Starts a router with default test settings.
    pub async fn start_router(&mut self) -> Router {
        self.start_router_with(self.router_config()).await
    }

    pub async fn start_router_with(&mut self, config: RouterConfig) -> Router {
        let router = Router::new(
            config,
            self.db.delivery_pool.clone(),
            Arc::clone(&self.metrics),
        );
        let (trigger, stop) = shutdown::channel();
        let r = router.clone();
        let handle = tokio::spawn(async move {
            let _ = r.run(stop).await;
        });
        self.roles.push((trigger, handle));
        // A router consumes only once it leads (its lock taken, the queue free): what
        // a test publishes next then reaches it as it comes, not in one burst.
        let metrics = Arc::clone(&self.metrics);
        crate::wait_until("the router consumes", Duration::from_secs(30), || {
            let consuming = metrics.is_consuming(hookrelay_router::ROLE);
            async move { consuming }
        })
        .await;
        router
    }

    pub async fn start_sender(&mut self) -> Sender {
        self.start_sender_with(self.sender_config()).await
    }

    pub async fn start_sender_with(&mut self, config: SenderConfig) -> Sender {
        let sender = Sender::new(
            config,
            self.db.delivery_pool.clone(),
            Arc::clone(&self.metrics),
        );
        let (trigger, stop) = shutdown::channel();
        let s = sender.clone();
        let handle = tokio::spawn(async move {
            s.run(stop).await.expect("sender runs");
        });
        self.roles.push((trigger, handle));
        sender
    }

    /// Stops every running role and waits until each has finished.
    pub async fn stop_roles(&mut self) {
        for (trigger, handle) in self.roles.drain(..) {
            trigger.trigger();
            let _ = handle.await;
        }
    }

    pub async fn publish(&self, event: &Event) {
        self.publisher.publish(event).await.expect("publish");
    }

    /// Publishes an event as an upstream that traces would: with its `traceparent`.
    pub async fn publish_traced(&self, event: &Event, traceparent: &str) {
        let headers = amqp::Headers::new()
            .text(hookrelay_model::wire::HEADER_TRACEPARENT, traceparent)
            .into_table();
        amqp::publish_confirmed(
            &self.channel,
            &self.topology.events_exchange(),
            &event.routing_key(),
            &event.to_json(),
            amqp::persistent(&event.id, headers).unwrap(),
        )
        .await
        .expect("traced publish");
    }

    /// Publishes raw bytes to the events exchange, as a buggy upstream might.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        let props = amqp::persistent("raw", Default::default()).unwrap();
        amqp::publish_confirmed(
            &self.channel,
            &self.topology.events_exchange(),
            routing_key,
            body,
            props,
        )
        .await
        .expect("raw publish");
    }

    /// Serves the api role's HTTP app (ingest and admin) for this stack on a free
    /// port; returns its base URL.
    pub async fn serve_api(&self, token: Option<&str>, max_event_bytes: usize) -> String {
        serve_app(self.api_state(token, max_event_bytes)).await
    }

    /// Serves the api role's app with the customer portal, its links pointing at the
    /// served address and `frame_ancestors` allowed to frame it; returns its base URL.
    pub async fn serve_portal(&self, token: Option<&str>, frame_ancestors: &[&str]) -> String {
        let ancestors: Vec<String> = frame_ancestors.iter().map(|a| a.to_string()).collect();
        serve_app_with(self.api_state(token, 1 << 20), move |mut state, base| {
            let links = hookrelay_admin::portal::Links {
                public_url: base.to_owned(),
                ..Default::default()
            };
            state.admin = state.admin.map(|a| a.with_portal(links));
            state.portal.frame_ancestors = ancestors;
            state
        })
        .await
    }

    /// What [`Self::serve_api`] serves, for a test to change before serving it.
    pub fn api_state(&self, token: Option<&str>, max_event_bytes: usize) -> ApiState {
        let admin = hookrelay_admin::http::AdminState::new(
            self.db.pool.clone(),
            self.cipher.clone(),
            self.topology.clone(),
            self.amqp_url.clone(),
            30,
        );
        ApiState {
            publisher: Some(Arc::clone(&self.publisher)),
            admin: Some(admin),
            pool: self.db.pool.clone(),
            api_token: token.map(str::to_owned),
            max_event_bytes,
            metrics: Arc::new(Metrics::new()),
            consumers: vec![],
            portal: hookrelay_portal::Settings::default(),
            schema_validation: Default::default(),
        }
    }

    /// Webhooks stored, of every tenant.
    pub async fn webhook_count(&self) -> i64 {
        self.db
            .client()
            .await
            .query_one("SELECT count(*) FROM webhooks", &[])
            .await
            .expect("count webhooks")
            .get(0)
    }

    pub async fn create_webhook(&self, new: NewWebhook) -> Webhook {
        webhooks::create(&self.db.client().await, &self.cipher, &new)
            .await
            .expect("create webhook")
    }

    pub async fn deliveries_of(&self, tenant: &str, event_id: &str) -> Vec<Delivery> {
        deliveries::for_event(&self.db.client().await, tenant, event_id)
            .await
            .expect("deliveries")
    }

    /// The trace id stored on the (first) delivery of an event.
    pub async fn trace_id_of(&self, event_id: &str) -> Option<String> {
        self.db
            .client()
            .await
            .query_one(
                "SELECT trace_id FROM deliveries WHERE event_id = $1 LIMIT 1",
                &[&event_id],
            )
            .await
            .expect("trace id")
            .get(0)
    }

    pub async fn attempts_of(&self, delivery_id: uuid::Uuid) -> Vec<Attempt> {
        deliveries::attempts(&self.db.client().await, delivery_id)
            .await
            .expect("attempts")
    }

    /// Waits until the event's deliveries all have a final status (delivered or failed).
    pub async fn wait_settled(
        &self,
        tenant: &str,
        event_id: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Delivery> {
        let what = format!("{count} deliveries of {event_id} are settled");
        crate::wait_until(&what, timeout, || async {
            let d = self.deliveries_of(tenant, event_id).await;
            d.len() == count
                && d.iter()
                    .all(|d| d.status != deliveries::DeliveryStatus::Pending)
        })
        .await;
        self.deliveries_of(tenant, event_id).await
    }

    /// Routes `events` (one webhook each) queued before any router runs, with a
    /// router that waits for them to fill its first batch, then stops the roles and
    /// takes the delivery messages it published: one, a batch, if all went together.
    pub async fn routed_together(&mut self, events: &[Event]) -> Vec<Message> {
        self.publisher.publish_batch(events).await.expect("publish");
        let mut config = self.router_config();
        config.batch_wait = Duration::from_millis(300);
        self.start_router_with(config).await;
        for e in events {
            crate::wait_until(
                "its delivery is created",
                Duration::from_secs(20),
                || async { self.deliveries_of(&e.tenant, &e.id).await.len() == 1 },
            )
            .await;
        }
        self.stop_roles().await;
        self.drain_queue(&self.topology.deliveries_queue()).await
    }

    /// Takes every message now in `queue` (they are acked: removed).
    pub async fn drain_queue(&self, queue: &str) -> Vec<Message> {
        drain(&self.channel, queue).await
    }

    /// As [`Self::drain_queue`], on a new connection: for after a broker restart,
    /// which closes the stack's own.
    pub async fn drain_queue_fresh(&self, queue: &str) -> Vec<Message> {
        let connection = amqp::connect(
            &self.amqp_url,
            "hookrelay-test-drain",
            ConnectRetry::default(),
        )
        .await
        .expect("RabbitMQ is back");
        let channel = connection.create_channel().await.expect("channel");
        let taken = drain(&channel, queue).await;
        let _ = connection.close(200, "done".into()).await;
        taken
    }
}

async fn drain(channel: &Channel, queue: &str) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic_get")
    {
        let d = m.delivery;
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        out.push(Message {
            routing_key: d.routing_key.as_str().to_owned(),
            properties: d.properties,
            body: d.data,
        });
    }
    out
}

impl TestStack {
    /// Messages ready in a queue (not counting those a consumer holds).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        let channel = self.connection.create_channel().await.unwrap();
        let q = amqp::inspect_queue(&channel, queue)
            .await
            .expect("queue exists");
        let _ = channel.close(200, "done".into()).await;
        q.message_count()
    }

    /// Waits until `queue` holds `n` ready messages.
    pub async fn wait_queue_len(&self, queue: &str, n: u32, timeout: Duration) {
        let what = format!("{queue} holds {n} messages");
        crate::wait_until(&what, timeout, || async {
            self.queue_len(queue).await == n
        })
        .await;
    }

    /// Waits until the dead-letter queue holds `n` messages, and takes them.
    pub async fn dead_letters(&self, n: usize, timeout: Duration) -> Vec<Message> {
        let mut taken = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while taken.len() < n {
            taken.extend(self.drain_queue(&self.topology.dead_letter_queue()).await);
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {n} dead letters; got {}",
                    taken.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        taken
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        for (trigger, handle) in self.roles.drain(..) {
            trigger.trigger();
            handle.abort();
        }
        let topology = self.topology.clone();
        let amqp_url = self.amqp_url.clone();
        crate::block_on_fresh(async move {
            let retry = ConnectRetry {
                attempts: 1,
                max_delay: Duration::from_millis(10),
            };
            if let Ok(conn) = amqp::connect(&amqp_url, "hookrelay-test-cleanup", retry).await
                && let Ok(ch) = conn.create_channel().await
            {
                let _ = hookrelay_amqp::topology::delete(&topology, &ch).await;
                hookrelay_amqp::close(&conn, &[ch], "cleaned up").await;
            }
        });
    }
}

/// Serves the api's HTTP app with `state` on a free port; returns its base URL.
pub async fn serve_app(state: ApiState) -> String {
    serve_app_with(state, |state, _| state).await
}

/// Serves the app on a free port, `adjust`ing its state with the base URL first (the
/// portal's links name the address they are served at).
pub async fn serve_app_with(
    state: ApiState,
    adjust: impl FnOnce(ApiState, &str) -> ApiState,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = adjust(state, &base);
    tokio::spawn(async move { axum::serve(listener, hookrelay_server::api::app(state)).await });
    base
}

/// An event of tenant `tenant` with a fresh id and the given extra fields.
pub fn event(tenant: &str, event_type: &str, extra: serde_json::Value) -> Event {
    let mut v = serde_json::json!({
        "id": format!("evt-{}", uuid::Uuid::new_v4()),
        "tenant": tenant,
        "type": event_type,
        "occurred_at": "2024-04-24T17:20:14.659349Z",
        "payload": {"event": event_type, "data": {"n": 1}}
    });
    if let Some(map) = extra.as_object() {
        for (k, val) in map {
            v[k] = val.clone();
        }
    }
    Event::from_value(v).expect("valid test event")
}

/// A webhook of `tenant` with key `key` posting to `url`.
pub fn webhook(tenant: &str, key: &str, url: &str) -> NewWebhook {
    let key = hookrelay_model::WebhookKey::parse(key).expect("a valid test key");
    NewWebhook::new(tenant, key, url)
}
