//! Ordered delivery per ordering key: which deliveries are sequenced, and the
//! sequence numbers a batch takes from each (webhook, key) counter. Pure rules; the
//! store applies them in the batch's transaction (docs/delivery-semantics.md,
//! "Ordered webhooks").

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::Event;
use crate::webhook::Webhook;

/// The key a delivery of `event` to `webhook` is sequenced under: the event's
/// ordering key when the webhook is ordered; none otherwise (sent in parallel).
pub fn sequenced_under<'a>(webhook: &Webhook, event: &'a Event) -> Option<&'a str> {
    if webhook.ordered {
        event.ordering_key.as_deref()
    } else {
        None
    }
}

/// A sequenced delivery's place: its webhook and key.
pub type KeyOf<'a> = (Uuid, &'a str);

/// How many sequence numbers each (webhook, key) of a batch needs, in (webhook, key)
/// order: the order the counters are locked in, so that two transactions
/// sequencing the same keys never wait for each other in a circle.
pub fn demand<'a>(keys: &[Option<KeyOf<'a>>]) -> Vec<(KeyOf<'a>, i64)> {
    let mut counts: BTreeMap<KeyOf<'a>, i64> = BTreeMap::new();
    for key in keys.iter().flatten() {
        *counts.entry(*key).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// The sequence number of each delivery: within one (webhook, key), consecutive from
/// the first number its counter gave (`first`), in the batch's order, which is the
/// order the router took the events in. `None` for an unsequenced delivery, or a key
/// `first` does not name.
pub fn assign(keys: &[Option<KeyOf<'_>>], first: &BTreeMap<KeyOf<'_>, i64>) -> Vec<Option<i64>> {
    let mut next = first.clone();
    keys.iter()
        .map(|key| {
            let n = next.get_mut(key.as_ref()?)?;
            let seq = *n;
            *n += 1;
            Some(seq)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn demand_counts_each_key_once_in_lock_order() {
        let keys = [
            Some((id(2), "b")),
            None,
            Some((id(1), "z")),
            Some((id(2), "b")),
            Some((id(1), "a")),
        ];
        assert_eq!(
            demand(&keys),
            vec![((id(1), "a"), 1), ((id(1), "z"), 1), ((id(2), "b"), 2)]
        );
        assert!(demand(&[None, None]).is_empty());
    }

    #[test]
    fn numbers_follow_the_batch_order_within_each_key() {
        let a = (id(1), "a");
        let b = (id(1), "b");
        let other_webhook = (id(2), "a");
        let first = BTreeMap::from([(a, 7), (b, 1), (other_webhook, 3)]);
        for (keys, expected) in [
            (
                vec![Some(a), Some(a), Some(a)],
                vec![Some(7), Some(8), Some(9)],
            ),
            (
                vec![Some(a), Some(b), None, Some(a), Some(b)],
                vec![Some(7), Some(1), None, Some(8), Some(2)],
            ),
            (
                vec![Some(other_webhook), Some(a), Some(other_webhook)],
                vec![Some(3), Some(7), Some(4)],
            ),
            (vec![None, Some((id(9), "unknown"))], vec![None, None]),
        ] {
            assert_eq!(assign(&keys, &first), expected, "{keys:?}");
        }
    }

    #[test]
    fn only_an_ordered_webhook_sequences_and_only_a_keyed_event() {
        let mut webhook = crate::matching::tests::hook("acme", "w");
        let keyed = crate::matching::tests::event(serde_json::json!({"ordering_key": "k"}));
        let plain = crate::matching::tests::event(serde_json::json!({}));
        assert_eq!(sequenced_under(&webhook, &keyed), None);
        webhook.ordered = true;
        assert_eq!(sequenced_under(&webhook, &keyed), Some("k"));
        assert_eq!(sequenced_under(&webhook, &plain), None);
    }
}
