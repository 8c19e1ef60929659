//! Acks coalesced per channel: one `multiple` ack settles a run of finished
//! deliveries, instead of one frame (and one quorum-queue settle) each.
//!
//! A `multiple` ack of tag T settles every unsettled delivery up to T on the
//! channel, so it is sent only for a run that starts at the oldest delivery taken
//! and is finished throughout. A finished delivery stuck behind an unfinished one (a
//! slow endpoint) is acked alone once it has waited `LINGER`, so it never holds its
//! prefetch slot for long. Acking late is safe: the outcome is already committed,
//! and a delivery redelivered after a crash is found settled and acked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use lapin::Acker;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long the first finished delivery waits for others to share its ack frame.
const WINDOW: Duration = Duration::from_millis(5);
/// How long a finished delivery waits behind an unfinished older one before it is
/// acked alone.
const LINGER: Duration = Duration::from_millis(25);

#[derive(Default)]
pub(crate) struct Acks {
    state: Mutex<State<Acker>>,
    wake: Notify,
}

/// Generic over the acker so the rule can be tested without a channel.
struct State<A> {
    /// Every delivery taken off the consumer and not yet settled, by tag.
    taken: BTreeSet<u64>,
    /// Finished deliveries waiting for their ack, with when they finished.
    finished: BTreeMap<u64, (A, Instant)>,
    closed: bool,
}

impl<A> Default for State<A> {
    fn default() -> Self {
        Self {
            taken: BTreeSet::new(),
            finished: BTreeMap::new(),
            closed: false,
        }
    }
}

enum Frame<A> {
    /// Settles this delivery and every older unsettled one.
    UpTo(A),
    One(A),
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<Acker>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A delivery came off the consumer: no `multiple` ack may pass it until it is
    /// finished or settled otherwise.
    pub(crate) fn taken(&self, delivery: &Delivery) {
        self.lock().taken.insert(delivery.delivery_tag);
    }

    /// The delivery's outcome is committed and its follow-ups confirmed: ack it soon.
    pub(crate) fn ack(&self, delivery: &Delivery) {
        let tag = delivery.delivery_tag;
        let mut state = self.lock();
        if state.taken.contains(&tag) {
            state
                .finished
                .insert(tag, (delivery.acker.clone(), Instant::now()));
            drop(state);
            self.wake.notify_one();
        }
    }

    /// The delivery was settled directly (rejected back to the queue) or never will
    /// be on this channel: stop waiting for it.
    pub(crate) fn settled(&self, delivery: &Delivery) {
        let mut state = self.lock();
        state.taken.remove(&delivery.delivery_tag);
        state.finished.remove(&delivery.delivery_tag);
        drop(state);
        self.wake.notify_one();
    }

    /// Sends what is due until [`Acks::close`]; then everything finished.
    pub(crate) async fn run(&self) {
        loop {
            let waiting = {
                let state = self.lock();
                if state.closed {
                    break;
                }
                !state.finished.is_empty()
            };
            if waiting {
                // Something waits behind an unfinished delivery: come back for it.
                let _ = tokio::time::timeout(LINGER, self.wake.notified()).await;
            } else {
                self.wake.notified().await;
            }
            tokio::time::sleep(WINDOW).await;
            self.flush(false).await;
        }
        self.flush(true).await;
    }

    /// Acks everything finished now (the consumer is draining or gone) and stops
    /// [`Acks::run`], which sends it.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    async fn flush(&self, all: bool) {
        let frames = self.lock().due(Instant::now(), all);
        for frame in frames {
            let (acker, multiple) = match frame {
                Frame::UpTo(a) => (a, true),
                Frame::One(a) => (a, false),
            };
            // A closed channel returns its deliveries to the queue; redelivered, they
            // are found settled and acked then.
            if let Err(e) = acker.ack(BasicAckOptions { multiple }).await {
                tracing::debug!(error = %e, "ack not sent; the broker redelivers");
            }
        }
    }
}

impl<A> State<A> {
    /// The frames to send now: one `multiple` ack for the finished run from the
    /// oldest delivery taken, and one ack each for finished deliveries that have
    /// waited `LINGER` behind an unfinished one (all of them when `all`).
    fn due(&mut self, now: Instant, all: bool) -> Vec<Frame<A>> {
        let mut frames = Vec::new();
        let run: Vec<u64> = self
            .taken
            .iter()
            .take_while(|tag| self.finished.contains_key(tag))
            .copied()
            .collect();
        let mut last = None;
        for tag in run {
            self.taken.remove(&tag);
            last = self.finished.remove(&tag).map(|(acker, _)| acker);
        }
        frames.extend(last.map(Frame::UpTo));
        let stale: Vec<u64> = self
            .finished
            .iter()
            .filter(|(_, (_, at))| all || now.duration_since(*at) >= LINGER)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in stale {
            self.taken.remove(&tag);
            if let Some((acker, _)) = self.finished.remove(&tag) {
                frames.push(Frame::One(acker));
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each finished delivery's "acker" is its own tag, so a frame names what it acks.
    fn state(taken: &[u64], finished: &[(u64, Instant)]) -> State<u64> {
        State {
            taken: taken.iter().copied().collect(),
            finished: finished
                .iter()
                .map(|(tag, at)| (*tag, (*tag, *at)))
                .collect(),
            closed: false,
        }
    }

    fn kinds(frames: &[Frame<u64>]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Frame::UpTo(tag) => format!("up to {tag}"),
                Frame::One(tag) => format!("{tag}"),
            })
            .collect()
    }

    #[test]
    fn a_finished_run_from_the_oldest_is_one_multiple_ack() {
        let now = Instant::now();
        let mut s = state(&[1, 2, 3, 4], &[(1, now), (2, now), (3, now)]);
        let frames = s.due(now, false);
        assert_eq!(kinds(&frames), ["up to 3"]);
        assert_eq!(s.taken.iter().copied().collect::<Vec<_>>(), [4]);
        assert!(s.finished.is_empty());
    }

    #[test]
    fn a_finished_delivery_behind_an_unfinished_one_waits_then_goes_alone() {
        let now = Instant::now();
        let mut s = state(&[1, 2, 3], &[(2, now), (3, now)]);
        assert!(
            s.due(now, false).is_empty(),
            "1 is unfinished: nothing may pass it"
        );
        let frames = s.due(now + LINGER, false);
        assert_eq!(kinds(&frames), ["2", "3"]);
        assert_eq!(s.taken.iter().copied().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn closing_acks_everything_finished_and_nothing_else() {
        let now = Instant::now();
        let mut s = state(&[1, 2, 3, 5], &[(1, now), (3, now), (5, now)]);
        let frames = s.due(now, true);
        assert_eq!(kinds(&frames), ["up to 1", "3", "5"]);
        assert_eq!(s.taken.iter().copied().collect::<Vec<_>>(), [2]);
    }
}
