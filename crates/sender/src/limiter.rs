//! Per-webhook cap on in-flight requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub(crate) struct PerTarget {
    cap: usize,
    counts: Mutex<HashMap<String, usize>>,
}

/// Releases the slot when dropped.
pub(crate) struct Slot {
    limiter: Arc<PerTarget>,
    key: String,
}

impl PerTarget {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `key`, or `None` when it already has `cap` requests in flight.
    pub(crate) fn try_acquire(self: &Arc<Self>, key: &str) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(key.to_owned()).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            limiter: Arc::clone(self),
            key: key.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_key_and_releases_on_drop() {
        let l = PerTarget::new(2);
        let a = l.try_acquire("a").unwrap();
        let _b = l.try_acquire("a").unwrap();
        assert!(l.try_acquire("a").is_none());
        assert!(l.try_acquire("other").is_some());
        drop(a);
        assert!(l.try_acquire("a").is_some());
    }
}
