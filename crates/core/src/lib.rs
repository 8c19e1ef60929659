//! What every hookrelay role shares: the event envelope (the wire contract), the
//! messages between roles, the RabbitMQ topology, retry policy, webhook matching and
//! the Postgres store. Nothing here runs on its own.

pub mod amqp;
pub mod config;
pub mod deadletter;
pub mod envelope;
pub mod matching;
pub mod metrics;
pub mod retry;
pub mod shutdown;
pub mod store;
pub mod template;
pub mod topology;
pub mod trace;
pub mod wire;

pub use envelope::{EnvelopeError, Event};
pub use topology::Topology;

/// `hookrelay/<version>`: the User-Agent of every webhook POST.
pub const USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));
