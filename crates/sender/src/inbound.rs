//! A delivery message as its handling sees it: one the broker delivered, acked once
//! handled, or one this sender kept for itself (`handover`), with no broker message
//! and nothing to ack.

use lapin::BasicProperties;
use lapin::message::Delivery;

use crate::acks::Acks;

#[derive(Clone, Copy)]
pub(crate) struct Inbound<'a> {
    /// The message's body, as published (a dead letter carries it as it is).
    pub data: &'a [u8],
    pub properties: &'a BasicProperties,
    /// The broker's message; none for a delivery this sender kept.
    from_broker: Option<&'a Delivery>,
}

impl<'a> Inbound<'a> {
    pub(crate) fn from_broker(delivery: &'a Delivery) -> Self {
        Self {
            data: &delivery.data,
            properties: &delivery.properties,
            from_broker: Some(delivery),
        }
    }

    pub(crate) fn kept(data: &'a [u8], properties: &'a BasicProperties) -> Self {
        Self {
            data,
            properties,
            from_broker: None,
        }
    }

    /// Kept by this sender: the row, not a message, is its durable copy.
    pub(crate) fn is_kept(&self) -> bool {
        self.from_broker.is_none()
    }

    /// Acks the broker's message once the coalesced acks go out; a kept delivery
    /// has none.
    pub(crate) fn ack(&self, acks: &Acks) {
        if let Some(delivery) = self.from_broker {
            acks.ack(delivery);
        }
    }
}
