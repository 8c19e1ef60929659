//! Declaring what `hookrelay_model::topology` names: idempotent, so every role does
//! it at start and any role can be the first to come up.

use hookrelay_model::topology::{Arg, Declarations, ExchangeKind, Topology};
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind as LapinKind};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("declaring {what} `{name}` failed: {source}")]
    Declare {
        what: &'static str,
        name: String,
        source: lapin::Error,
    },
    #[error("AMQP name `{0}` is longer than 255 bytes; use a shorter prefix")]
    NameTooLong(String),
}

/// Declares all exchanges, queues and bindings. Safe to call concurrently and often.
pub async fn declare(topology: &Topology, channel: &Channel) -> Result<(), TopologyError> {
    declare_all(channel, topology.declarations()).await
}

/// Declares what publishing events needs (`Topology::ingress`).
pub async fn declare_ingress(topology: &Topology, channel: &Channel) -> Result<(), TopologyError> {
    declare_all(channel, topology.ingress()).await
}

/// Deletes everything `declare` made (test clean-up; never used by the roles).
pub async fn delete(topology: &Topology, channel: &Channel) -> Result<(), lapin::Error> {
    for q in topology.queues() {
        channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    for x in topology.exchanges() {
        channel
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}

async fn declare_all(channel: &Channel, all: Declarations) -> Result<(), TopologyError> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for exchange in &all.exchanges {
        let kind = match exchange.kind {
            ExchangeKind::Topic => LapinKind::Topic,
            ExchangeKind::Fanout => LapinKind::Fanout,
        };
        channel
            .exchange_declare(
                short(&exchange.name)?,
                kind,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .map_err(failed("exchange", &exchange.name))?;
    }
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for queue in &all.queues {
        channel
            .queue_declare(short(&queue.name)?, durable_queue, table(&queue.args))
            .await
            .map_err(failed("queue", &queue.name))?;
    }
    for binding in &all.bindings {
        channel
            .queue_bind(
                short(&binding.queue)?,
                short(&binding.exchange)?,
                binding.key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failed("binding of queue", &binding.queue))?;
    }
    Ok(())
}

fn failed(what: &'static str, name: &str) -> impl FnOnce(lapin::Error) -> TopologyError {
    let name = name.to_owned();
    move |source| TopologyError::Declare { what, name, source }
}

fn table(args: &[(&'static str, Arg)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in args {
        let value = match value {
            Arg::Text(s) => AMQPValue::LongString(LongString::from(s.clone())),
            Arg::Int(n) => match i32::try_from(*n) {
                Ok(v) => AMQPValue::LongInt(v),
                Err(_) => AMQPValue::LongLongInt(*n),
            },
        };
        table.insert((*key).into(), value);
    }
    table
}

fn short(name: &str) -> Result<ShortString, TopologyError> {
    ShortString::try_new(name.to_owned()).map_err(|_| TopologyError::NameTooLong(name.to_owned()))
}
