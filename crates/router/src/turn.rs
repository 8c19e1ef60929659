//! The order in which one router's batches take sequence numbers for ordered
//! webhooks: the order it took them from its queue.
//!
//! Batches are handled concurrently (one commits while another waits for its
//! confirms), so a later batch's transaction may reach a key's counter first. Each
//! batch therefore gets a turn when it is taken: a batch with keyed events waits,
//! before its transaction, until every batch taken before it has taken its numbers
//! (committed) or ended; it hands the turn on at its commit. A batch without keyed
//! events never waits: it hands the turn on once the earlier ones have had it,
//! after its own work. docs/delivery-semantics.md, "Ordered webhooks", has the proof.

use tokio::sync::watch;

/// The turns of one consumer's batches, in the order taken.
pub(crate) struct Turns {
    last: watch::Receiver<bool>,
}

/// One batch's turn.
pub(crate) struct Turn {
    /// True once the batch taken just before this one has had its turn; closed (its
    /// sender dropped) when that batch ended without it (shutdown, a lost broker):
    /// nothing is acked after an unacked batch, so waiting longer gains nothing.
    earlier: watch::Receiver<bool>,
    /// `None` for a part of a batch (`within`): the whole batch hands the turn on.
    mine: Option<watch::Sender<bool>>,
}

impl Turns {
    pub(crate) fn new() -> Self {
        let (done, last) = watch::channel(true);
        drop(done);
        Self { last }
    }

    /// The turn of the batch taken now: after every batch taken before.
    pub(crate) fn take(&mut self) -> Turn {
        let (mine, next) = watch::channel(false);
        Turn {
            earlier: std::mem::replace(&mut self.last, next),
            mine: Some(mine),
        }
    }
}

impl Turn {
    /// Waits until every batch taken before this one has had its turn or ended.
    pub(crate) async fn wait_for_earlier(&self) {
        let mut earlier = self.earlier.clone();
        // An error is the earlier batch's end: see `earlier`.
        let _ = earlier.wait_for(|done| *done).await;
    }

    /// This batch has taken its numbers (committed): later batches may take theirs.
    pub(crate) fn taken(&self) {
        if let Some(mine) = &self.mine {
            mine.send_replace(true);
        }
    }

    /// Hands the turn on once the earlier batches have had it (a batch that needed
    /// no numbers, or whose numbers are taken).
    pub(crate) async fn pass_on(&self) {
        self.wait_for_earlier().await;
        self.taken();
    }

    /// The turn of a part of this batch, handled on its own: it waits as the batch
    /// does and hands nothing on; the batch does when all its parts are done.
    pub(crate) fn within(&self) -> Turn {
        Turn {
            earlier: self.earlier.clone(),
            mine: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn waits(turn: &Turn) -> bool {
        tokio::time::timeout(Duration::from_millis(50), turn.wait_for_earlier())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_batch_waits_for_every_earlier_batch_and_no_later_one() {
        let mut turns = Turns::new();
        let first = turns.take();
        let second = turns.take();
        let third = turns.take();
        assert!(!waits(&first).await, "the first batch never waits");
        assert!(waits(&second).await);
        assert!(waits(&third).await);
        // The third's own commit does not let the second go.
        third.taken();
        assert!(waits(&second).await);
        first.taken();
        assert!(!waits(&second).await);
        assert!(waits(&third).await, "the second has not had its turn");
        second.pass_on().await;
        assert!(!waits(&third).await);
    }

    #[tokio::test]
    async fn a_part_hands_nothing_on_and_an_ended_batch_lets_the_next_go() {
        let mut turns = Turns::new();
        let first = turns.take();
        let second = turns.take();
        first.within().taken();
        assert!(waits(&second).await, "a part of the first is not the first");
        drop(first);
        assert!(!waits(&second).await, "an ended batch holds nothing back");
    }
}
