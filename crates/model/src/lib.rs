//! hookrelay's model: pure types and rules, no I/O. The event envelope and its
//! validation (the wire contract in code), the router → sender message and header
//! names, the topology's names and arguments, retry policy and schedule, matching,
//! URL templates, webhooks and their secrets and custom headers, and the human-written configuration
//! values. Every other crate builds on it; it depends on none of them.

pub mod access;
pub mod catalog;
pub mod config;
pub mod deadletter;
pub mod destination;
pub mod envelope;
pub mod error;
pub mod filter;
pub mod headers;
pub mod ids;
pub mod matching;
pub mod ordering;
pub mod portal;
pub mod rate;
pub mod retry;
pub mod secret;
pub mod series;
pub mod shutdown;
pub mod signing;
pub mod template;
pub mod tenant;
pub mod text;
pub mod topology;
pub mod webhook;
pub mod wire;

pub use deadletter::DeadLetterReason;
pub use envelope::{EnvelopeError, Event};
pub use error::Invalid;
pub use ids::{EventId, OrderingKey, WebhookKey};
pub use tenant::Tenant;
pub use topology::Topology;

/// `hookrelay/<version>`: the User-Agent of every webhook POST.
pub const USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));
