//! Per-webhook cap on in-flight requests, without starving anyone.
//!
//! At the cap, a delivery waits for a slot while the webhook answers promptly (a busy
//! but healthy endpoint keeps its throughput). Once the webhook's oldest request in
//! flight is older than `slow_after`, waiting stops: the caller defers the delivery to
//! a delay queue, so a hanging endpoint holds at most `cap` slots for long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

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
    /// Start of each request in flight, by slot id.
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

    /// How long `key`'s oldest request has hung, when it is at its cap and slow: a
    /// check that costs nothing, made before any database work.
    pub(crate) fn slow_and_full(&self, key: &str) -> Option<Duration> {
        let entries = self.lock();
        let entry = entries.by_key.get(key)?;
        if entry.slots.available_permits() > 0 {
            return None;
        }
        let age = entry.started.values().min()?.elapsed();
        (age >= self.slow_after).then_some(age)
    }

    /// A slot for `key` under its own cap (the default when none), or, when the
    /// webhook is at its cap and slow, how long its oldest request has been in flight.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        key: &str,
        cap: Option<usize>,
    ) -> Result<Slot, Duration> {
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
            let oldest = entry.started.values().min().map(|t| t.elapsed());
            if let Some(age) = oldest.filter(|age| *age >= self.slow_after) {
                return Err(age);
            }
            entry.waiting += 1;
            Arc::clone(&entry.slots)
        };
        let permit = tokio::time::timeout(self.slow_after, slots.acquire_owned()).await;
        let mut entries = self.lock();
        if let Some(entry) = entries.by_key.get_mut(key) {
            entry.waiting -= 1;
        }
        match permit {
            Ok(Ok(permit)) => Ok(self.slot(&mut entries, key, permit)),
            _ => {
                forget_if_idle(&mut entries, key);
                Err(self.slow_after)
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
        if let Some(entry) = entries.by_key.get_mut(key) {
            entry.started.insert(id, Instant::now());
        }
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
        let _b = l.acquire("a", None).await.ok().unwrap();
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
        let _held = waiter
            .await
            .unwrap()
            .expect("the waiter got the released slot");
        // Now the oldest request in flight is older than slow_after: refused at once.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = Instant::now();
        let age = l.acquire("a", None).await.err().expect("refused");
        assert!(
            age >= Duration::from_secs(2),
            "reports how long the oldest has hung: {age:?}"
        );
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
