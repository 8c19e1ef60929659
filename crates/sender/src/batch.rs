//! A router → sender message that carries several deliveries (`wire::read_batch`):
//! each runs as its own task, as a message of its own would, and the message is
//! acked once every one is settled. Redelivered (a crash, a closed channel), its
//! deliveries go on as messages of their own (`split` in consume.rs).

use std::sync::{Arc, Mutex};

use hookrelay_model::wire::BatchedDelivery;
use lapin::message::Delivery;

/// One batch message while its deliveries run.
pub(crate) struct Batch {
    pub delivery: Delivery,
    parts: usize,
    ends: Mutex<Vec<PartEnd>>,
}

/// How one batched delivery's handling ended.
#[derive(Debug)]
pub(crate) enum PartEnd {
    Settled,
    /// Not handled (the broker failed it, or the database refused even its dead
    /// letter): it needs another try, as a message given back to the queue does.
    GiveBack(BatchedDelivery),
    /// Left unsettled because the sender is stopping.
    Abandoned,
}

/// What becomes of the batch's message once every delivery in it has ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Finish<'a> {
    Ack,
    /// Publish these again, each as a message of its own, then ack: the others are
    /// settled, and handing the whole batch back would count each retry of one
    /// delivery against all of them.
    Republish(Vec<&'a BatchedDelivery>),
    /// Neither ack nor give back: the closing channel returns the message, and what
    /// was settled is found settled when it comes back.
    Leave,
}

pub(crate) fn finish(ends: &[PartEnd]) -> Finish<'_> {
    if ends.iter().any(|e| matches!(e, PartEnd::Abandoned)) {
        return Finish::Leave;
    }
    let again: Vec<&BatchedDelivery> = ends
        .iter()
        .filter_map(|e| match e {
            PartEnd::GiveBack(part) => Some(part),
            _ => None,
        })
        .collect();
    if again.is_empty() {
        Finish::Ack
    } else {
        Finish::Republish(again)
    }
}

impl Batch {
    pub(crate) fn new(delivery: Delivery, parts: usize) -> Arc<Self> {
        Arc::new(Self {
            delivery,
            parts,
            ends: Mutex::new(Vec::with_capacity(parts)),
        })
    }

    /// Records how one delivery ended; returns every end once this was the last.
    pub(crate) fn end(&self, end: PartEnd) -> Option<Vec<PartEnd>> {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        ends.push(end);
        (ends.len() == self.parts).then(|| std::mem::take(&mut *ends))
    }
}

#[cfg(test)]
mod tests {
    use hookrelay_model::wire::DeliveryMessage;
    use uuid::Uuid;

    use super::*;

    fn part(n: u128) -> BatchedDelivery {
        BatchedDelivery {
            message: DeliveryMessage::again(Uuid::from_u128(n), "acme", "evt_1", None, 0),
            traceparent: None,
            tracestate: None,
        }
    }

    fn ids(finish: &Finish<'_>) -> String {
        match finish {
            Finish::Ack => "ack".into(),
            Finish::Leave => "leave".into(),
            Finish::Republish(parts) => {
                let ids: Vec<String> = parts
                    .iter()
                    .map(|p| p.message.delivery_id.as_u128().to_string())
                    .collect();
                format!("republish {}, ack", ids.join(" "))
            }
        }
    }

    #[test]
    fn a_batch_is_acked_when_all_settle_and_sends_back_only_what_did_not() {
        use PartEnd::{Abandoned, GiveBack, Settled};
        let cases: Vec<(Vec<PartEnd>, &str)> = vec![
            (vec![Settled, Settled], "ack"),
            (vec![], "ack"),
            (
                vec![Settled, GiveBack(part(2)), Settled],
                "republish 2, ack",
            ),
            (
                vec![GiveBack(part(1)), GiveBack(part(2))],
                "republish 1 2, ack",
            ),
            (vec![Settled, Abandoned], "leave"),
            (vec![GiveBack(part(1)), Abandoned], "leave"),
        ];
        for (ends, expected) in cases {
            assert_eq!(ids(&finish(&ends)), expected, "{ends:?}");
        }
    }

    #[test]
    fn the_last_part_to_end_gets_every_end() {
        let batch = Batch::new(
            lapin::message::Delivery::mock(7, "".into(), "".into(), false, vec![]),
            2,
        );
        assert!(batch.end(PartEnd::Settled).is_none());
        let ends = batch.end(PartEnd::Abandoned).map(|e| e.len());
        assert_eq!(ends, Some(2));
    }
}
