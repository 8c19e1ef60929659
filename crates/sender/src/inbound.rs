//! A delivery message as its handling sees it: one the broker delivered, acked once
//! handled; one delivery of a broker message that carries several (`batch`), whose
//! message is acked once all are; or one this sender kept for itself (`handover`),
//! with no broker message and nothing to ack.

use std::sync::atomic::{AtomicBool, Ordering};

use lapin::BasicProperties;
use lapin::message::Delivery;

use crate::acks::Acks;

#[derive(Clone, Copy)]
pub(crate) struct Inbound<'a> {
    /// The message's body, as published (a dead letter carries it as it is); a
    /// batched delivery's own message, as if it had come alone.
    pub data: &'a [u8],
    pub properties: &'a BasicProperties,
    origin: Origin<'a>,
}

#[derive(Clone, Copy)]
enum Origin<'a> {
    Broker(&'a Delivery),
    /// Settled when set: its batch's message is acked once every part's is.
    Part(&'a AtomicBool),
    Kept,
}

impl<'a> Inbound<'a> {
    pub(crate) fn from_broker(delivery: &'a Delivery) -> Self {
        Self {
            data: &delivery.data,
            properties: &delivery.properties,
            origin: Origin::Broker(delivery),
        }
    }

    pub(crate) fn part(
        data: &'a [u8],
        properties: &'a BasicProperties,
        settled: &'a AtomicBool,
    ) -> Self {
        Self {
            data,
            properties,
            origin: Origin::Part(settled),
        }
    }

    pub(crate) fn kept(data: &'a [u8], properties: &'a BasicProperties) -> Self {
        Self {
            data,
            properties,
            origin: Origin::Kept,
        }
    }

    /// Kept by this sender: the row, not a message, is its durable copy.
    pub(crate) fn is_kept(&self) -> bool {
        matches!(self.origin, Origin::Kept)
    }

    /// Acks the broker's message once the coalesced acks go out (a batched delivery:
    /// marks its part settled); a kept delivery has none.
    pub(crate) fn ack(&self, acks: &Acks) {
        match self.origin {
            Origin::Broker(delivery) => acks.ack(delivery),
            Origin::Part(settled) => settled.store(true, Ordering::Release),
            Origin::Kept => {}
        }
    }
}
