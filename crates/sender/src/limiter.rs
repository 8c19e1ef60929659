//! Per-webhook cap on in-flight requests, without starving anyone.
//!
//! At the cap, a delivery waits for a slot while the webhook answers promptly (a busy
//! but healthy endpoint keeps its throughput). Once the webhook's oldest request in
//! flight is older than `slow_after`, waiting stops: the caller defers the delivery to
//! a delay queue, so a hanging endpoint holds at most `cap` slots for long.
//!
//! A request's age counts from when it was sent ([`Slot::sending`]), not from when
//! its slot was taken: a slot held while its delivery waits for the webhook's slot
//! shared across senders is not a request in flight. Waiting for a slot is never
//! hanging (`Wait::Busy`); only requests sent and not answered are (`Wait::Hanging`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::admission::{Hang, Wait};

#[derive(Debug)]
pub(crate) struct PerTarget {
    cap: usize,
    slow_after: Duration,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    next_id: u64,
    by_key: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// This key's cap: its webhook's own `max_in_flight` or the default, as it was
    /// when the entry was made (a change applies once the key is idle).
    cap: usize,
    slots: Arc<Semaphore>,
    /// When each request in flight was sent, by slot id (a slot not yet sending is
    /// not here).
    started: HashMap<u64, Instant>,
    waiting: usize,
}

/// Releases the slot when dropped.
pub(crate) struct Slot {
    limiter: Arc<PerTarget>,
    key: String,
    id: u64,
    permit: Option<OwnedSemaphorePermit>,
}

impl PerTarget {
    pub(crate) fn new(cap: usize, slow_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            slow_after,
            entries: Mutex::new(Entries::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` is at its cap with its oldest request sent hanging past
    /// `slow_after`: a check that costs nothing, made before any database work.
    pub(crate) fn hanging(&self, key: &str) -> Option<Hang> {
        let entries = self.lock();
        let entry = entries.by_key.get(key)?;
        if entry.slots.available_permits() > 0 {
            return None;
        }
        self.hang_of(entry)
    }

    fn hang_of(&self, entry: &Entry) -> Option<Hang> {
        let oldest = entry.started.values().min()?.elapsed();
        (oldest >= self.slow_after).then_some(Hang {
            oldest,
            in_flight: entry.started.len(),
        })
    }

    /// A slot for `key` under its own cap (the default when none), waited for up to
    /// `slow_after` while the webhook answers in time; else why not.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        key: &str,
        cap: Option<usize>,
    ) -> Result<Slot, Wait> {
        let slots = {
            let mut entries = self.lock();
            let cap = cap.unwrap_or(self.cap).max(1);
            let entry = entries
                .by_key
                .entry(key.to_owned())
                .or_insert_with(|| Entry {
                    cap,
                    slots: Arc::new(Semaphore::new(cap)),
                    started: HashMap::new(),
                    waiting: 0,
                });
            if let Ok(permit) = Arc::clone(&entry.slots).try_acquire_owned() {
                return Ok(self.slot(&mut entries, key, permit));
            }
            if let Some(hang) = self.hang_of(entry) {
                return Err(Wait::Hanging(hang));
            }
            entry.waiting += 1;
            Arc::clone(&entry.slots)
        };
        let permit = tokio::time::timeout(self.slow_after, slots.acquire_owned()).await;
        let mut entries = self.lock();
        let hang = entries.by_key.get_mut(key).and_then(|entry| {
            entry.waiting -= 1;
            self.hang_of(entry)
        });
        match permit {
            Ok(Ok(permit)) => Ok(self.slot(&mut entries, key, permit)),
            _ => {
                forget_if_idle(&mut entries, key);
                Err(hang.map_or(Wait::Busy(self.slow_after), Wait::Hanging))
            }
        }
    }

    fn slot(
        self: &Arc<Self>,
        entries: &mut Entries,
        key: &str,
        permit: OwnedSemaphorePermit,
    ) -> Slot {
        entries.next_id += 1;
        let id = entries.next_id;
        Slot {
            limiter: Arc::clone(self),
            key: key.to_owned(),
            id,
            permit: Some(permit),
        }
    }
}

fn forget_if_idle(entries: &mut Entries, key: &str) {
    let idle = entries.by_key.get(key).is_some_and(|e| {
        e.waiting == 0 && e.started.is_empty() && e.slots.available_permits() == e.cap
    });
    if idle {
        entries.by_key.remove(key);
    }
}

impl Slot {
    /// The request is being sent now: from here its age counts toward hanging.
    pub(crate) fn sending(&self) {
        let mut entries = self.limiter.lock();
        if let Some(entry) = entries.by_key.get_mut(&self.key) {
            entry.started.insert(self.id, Instant::now());
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut entries = self.limiter.lock();
        if let Some(entry) = entries.by_key.get_mut(&self.key) {
            entry.started.remove(&self.id);
        }
        drop(self.permit.take());
        forget_if_idle(&mut entries, &self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_with_its_own_cap_gets_that_many_slots() {
        let l = PerTarget::new(8, Duration::from_secs(1));
        let one = l.acquire("capped", Some(1)).await.ok().unwrap();
        let second = tokio::time::timeout(Duration::from_millis(500), l.acquire("capped", Some(1)));
        assert!(
            second.await.is_err(),
            "the second waits: its cap is 1, not 8"
        );
        drop(one);
        let _again = l.acquire("capped", Some(1)).await.ok().unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(l.acquire("default", None).await.ok().unwrap());
        }
        assert_eq!(held.len(), 8, "without its own cap, a key gets the default");
    }

    #[tokio::test(start_paused = true)]
    async fn waits_while_prompt_and_refuses_once_slow() {
        let l = PerTarget::new(2, Duration::from_secs(1));
        let a = l.acquire("a", None).await.ok().unwrap();
        let b = l.acquire("a", None).await.ok().unwrap();
        a.sending();
        b.sending();
        assert!(
            l.acquire("other", None).await.is_ok(),
            "other keys are not affected"
        );
        // At the cap but young: waits, and gets the slot a releases.
        let waiter = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.acquire("a", None).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(a);
        let Ok(held) = waiter.await.unwrap() else {
            panic!("the waiter got the released slot");
        };
        held.sending();
        // Now the oldest request in flight is older than slow_after: refused at once.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = Instant::now();
        let Err(Wait::Hanging(hang)) = l.acquire("a", None).await else {
            panic!("refused as hanging");
        };
        assert!(
            hang.oldest >= Duration::from_secs(2),
            "reports how long the oldest has hung: {hang:?}"
        );
        assert_eq!(hang.in_flight, 2);
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    /// The bug of a busy endpoint tripped as hanging: slots held by deliveries that
    /// have not sent yet, or taken by requests answering in time, make a waiter
    /// wait and then give up as busy, never as hanging.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_slot_is_busy_never_hanging() {
        let l = PerTarget::new(1, Duration::from_secs(1));
        let unsent = l.acquire("a", None).await.ok().unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            l.hanging("a"),
            None,
            "a slot that has not sent is not hanging"
        );
        assert_eq!(
            l.acquire("a", None).await.err(),
            Some(Wait::Busy(Duration::from_secs(1))),
            "waited its patience, then busy"
        );
        unsent.sending();
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(l.hanging("a"), None, "sent 0.9 s ago: not yet slow");
        assert_eq!(
            l.acquire("a", None)
                .await
                .err()
                .map(|w| matches!(w, Wait::Hanging(h) if h.in_flight == 1)),
            Some(true),
            "the wait outlived the request's patience: now it hangs"
        );
    }
}
