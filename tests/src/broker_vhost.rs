//! A vhost and a user of their own on the machine's RabbitMQ, for webhooks whose
//! destination is a broker (`amqp://`): made with `rabbitmqctl` (run as root here),
//! and deleted when dropped, after a panic too. Names start with `amqpdest_` and a
//! fresh uuid, so runs never meet.

use std::process::Command;

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::stack::Message;

pub struct BrokerVhost {
    pub vhost: String,
    pub user: String,
    pub password: String,
}

fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl BrokerVhost {
    /// A vhost and a user with every permission on it (and none elsewhere).
    pub async fn create() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let vhost = Self {
            vhost: format!("amqpdest_vh_{id}"),
            user: format!("amqpdest_u_{id}"),
            password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
        };
        let (v, u, p) = (
            vhost.vhost.clone(),
            vhost.user.clone(),
            vhost.password.clone(),
        );
        tokio::task::spawn_blocking(move || {
            rabbitmqctl(&["add_vhost", &v])?;
            rabbitmqctl(&["add_user", &u, &p])?;
            rabbitmqctl(&["set_permissions", "-p", &v, &u, ".*", ".*", ".*"])
        })
        .await
        .expect("rabbitmqctl task")
        .expect("rabbitmqctl makes the vhost and user (run as root)");
        vhost
    }

    /// `amqp://user:password@127.0.0.1:5672/vhost`.
    pub fn url(&self) -> String {
        self.url_with(&self.user, &self.password)
    }

    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("amqp://{user}:{password}@127.0.0.1:5672/{}", self.vhost)
    }

    /// A connection of the vhost's user, for the test's own look at it.
    pub async fn connect(&self) -> (Connection, Channel) {
        let connection = Connection::connect(&self.url(), ConnectionProperties::default())
            .await
            .expect("the test user connects to its vhost");
        let channel = connection.create_channel().await.expect("channel");
        (connection, channel)
    }

    /// A durable direct exchange and a queue bound to it with `routing_key`.
    pub async fn exchange_with_queue(
        channel: &Channel,
        exchange: &str,
        queue: &str,
        routing_key: &str,
    ) {
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("binding");
    }

    /// Takes one message off `queue`, if there is one.
    pub async fn take(channel: &Channel, queue: &str) -> Option<Message> {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")?;
        let d = got.delivery;
        Some(Message {
            routing_key: d.routing_key.as_str().to_owned(),
            properties: d.properties,
            body: d.data,
        })
    }

    /// How many connections the vhost's user has open now.
    pub async fn connections_of_user(&self) -> usize {
        let user = self.user.clone();
        tokio::task::spawn_blocking(move || {
            rabbitmqctl(&["list_connections", "user"])
                .map(|out| out.lines().filter(|l| l.trim() == user).count())
        })
        .await
        .expect("rabbitmqctl task")
        .expect("rabbitmqctl lists connections")
    }
}

impl Drop for BrokerVhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.vhost]);
        let _ = rabbitmqctl(&["delete_user", &self.user]);
    }
}
