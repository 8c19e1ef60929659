//! Which webhooks receive an event. Pure functions: the router loads the tenant's
//! webhooks and asks here; a paused or disabled one gets its deliveries held.

use crate::envelope::Event;
use crate::webhook::{Target, Webhook};

/// The targets of one event, in this order of precedence:
/// 1. `webhook_url`: one basic (form) delivery to that URL, nothing else;
/// 2. `webhook_keys`: the tenant's webhooks with those keys, filtered by event type;
/// 3. otherwise every webhook of the tenant subscribed to the type whose development
///    mode equals the event's and whose triggers match.
///
/// Webhooks of other tenants never match, whatever the keys say. Paused and disabled
/// webhooks match like the others ([`holds`] says their deliveries wait).
pub fn targets(event: &Event, webhooks: &[Webhook]) -> Vec<Target> {
    if let Some(url) = &event.webhook_url {
        return vec![Target::Url(url.clone())];
    }
    let own = webhooks.iter().filter(|w| w.tenant == event.tenant);
    let chosen: Vec<&Webhook> = match &event.webhook_keys {
        Some(keys) => own
            .filter(|w| keys.contains(&w.key) && subscribes(w, event))
            .collect(),
        None => own.filter(|w| subscribed_managed(w, event)).collect(),
    };
    chosen
        .into_iter()
        .filter(|w| w.filter.as_ref().is_none_or(|f| f.matches(&event.payload)))
        .map(|w| Target::Webhook(w.id))
        .collect()
}

/// Whether the webhook's deliveries are held rather than sent: it is paused,
/// disabled, or its circuit breaker is open. They wait, visible (status `held`),
/// until it is resumed, enabled and its breaker closed, or an operator discards them.
pub fn holds(webhook: &Webhook) -> bool {
    webhook.paused_at.is_some() || !webhook.enabled || webhook.breaker.is_some()
}

/// Keys the event names that no webhook of its tenant has (worth a log line).
pub fn unknown_keys<'a>(event: &'a Event, webhooks: &[Webhook]) -> Vec<&'a str> {
    let Some(keys) = &event.webhook_keys else {
        return Vec::new();
    };
    keys.iter()
        .filter(|k| {
            !webhooks
                .iter()
                .any(|w| w.tenant == event.tenant && w.key == **k)
        })
        .map(String::as_str)
        .collect()
}

/// Types of the events hookrelay publishes itself.
pub const OPERATIONAL_PREFIX: &str = "hookrelay.";

/// Event type filter: an empty list subscribes to every type (but hookrelay's own).
fn subscribes(w: &Webhook, event: &Event) -> bool {
    // hookrelay's own events (`hookrelay.webhook_disabled`) go only to webhooks that
    // name them: "every type" means every type of the tenant's upstreams.
    let operational = event.event_type.starts_with(OPERATIONAL_PREFIX);
    (w.event_types.is_empty() && !operational) || w.event_types.contains(&event.event_type)
}

fn subscribed_managed(w: &Webhook, event: &Event) -> bool {
    subscribes(w, event) && w.development_mode == event.development_mode && triggers_match(w, event)
}

/// Dromo's "schemas to trigger on": import identifiers and/or saved schema ids; both
/// lists empty matches every import.
fn triggers_match(w: &Webhook, event: &Event) -> bool {
    if w.import_identifiers.is_empty() && w.schema_ids.is_empty() {
        return true;
    }
    let by_identifier = event
        .import_identifier
        .as_ref()
        .is_some_and(|i| w.import_identifiers.contains(i));
    let by_schema = event
        .schema_id
        .as_ref()
        .is_some_and(|s| w.schema_ids.contains(s));
    by_identifier || by_schema
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::retry::RetryPolicy;
    use crate::webhook::BodyFormat;
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    pub(crate) fn hook(tenant: &str, key: &str) -> Webhook {
        Webhook {
            id: Uuid::new_v4(),
            tenant: tenant.into(),
            key: key.into(),
            url: "https://example.test/hook".into(),
            amqp_exchange: None,
            amqp_routing_key: None,
            url_credentials: None,
            event_types: vec![],
            secret: None,
            signing_secrets: vec![],
            signing_scheme: Default::default(),
            public_keys: vec![],
            headers: Default::default(),
            development_mode: false,
            import_identifiers: vec![],
            schema_ids: vec![],
            format: BodyFormat::Json,
            retry_on: RetryPolicy::default(),
            enabled: true,
            disabled_reason: None,
            paused_at: None,
            breaker: None,
            filter: None,
            rate_limit: None,
            rate_burst: None,
            max_in_flight: None,
            ordered: false,
            on_failure: crate::webhook::OnFailure::Skip,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    pub(crate) fn event(extra: serde_json::Value) -> Event {
        let mut v = json!({
            "id": "e1", "tenant": "acme", "type": "import_completed",
            "occurred_at": "2024-04-24T17:20:14Z", "payload": {}
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        Event::from_value(v).unwrap()
    }

    fn ids(targets: &[Target]) -> Vec<Uuid> {
        targets
            .iter()
            .filter_map(|t| match t {
                Target::Webhook(id) => Some(*id),
                Target::Url(_) => None,
            })
            .collect()
    }

    #[test]
    fn webhook_url_gives_one_basic_delivery_only() {
        let hooks = vec![hook("acme", "a")];
        let t = targets(
            &event(json!({"webhook_url": "https://x.test/basic"})),
            &hooks,
        );
        assert_eq!(t, vec![Target::Url("https://x.test/basic".into())]);
    }

    #[test]
    fn keys_select_only_named_webhooks_still_filtered_by_type() {
        let mut typed = hook("acme", "typed");
        typed.event_types = vec!["file_uploaded".into()];
        let named = hook("acme", "named");
        let other = hook("acme", "other");
        let hooks = vec![typed, named.clone(), other];
        let e = event(json!({"webhook_keys": ["typed", "named", "ghost"]}));
        assert_eq!(ids(&targets(&e, &hooks)), vec![named.id]);
        assert_eq!(unknown_keys(&e, &hooks), vec!["ghost"]);
        let none = event(json!({"webhook_keys": []}));
        assert!(targets(&none, &hooks).is_empty());
    }

    #[test]
    fn keys_never_reach_another_tenant() {
        let theirs = hook("globex", "shared-key");
        let e = event(json!({"webhook_keys": ["shared-key"]}));
        assert!(targets(&e, std::slice::from_ref(&theirs)).is_empty());
        assert!(targets(&event(json!({})), &[theirs]).is_empty());
    }

    #[test]
    fn operational_events_reach_only_webhooks_that_name_them() {
        let all = hook("acme", "all");
        let mut named = hook("acme", "named");
        named.event_types = vec!["hookrelay.webhook_disabled".into()];
        let named_id = named.id;
        let e = event(json!({"type": "hookrelay.webhook_disabled"}));
        assert_eq!(ids(&targets(&e, &[all, named])), vec![named_id]);
    }

    #[test]
    fn event_types_filter_and_empty_means_all() {
        let mut typed = hook("acme", "typed");
        typed.event_types = vec!["import_completed".into()];
        let mut wrong = hook("acme", "wrong");
        wrong.event_types = vec!["file_uploaded".into()];
        let all = hook("acme", "all");
        let got = ids(&targets(
            &event(json!({})),
            &[typed.clone(), wrong, all.clone()],
        ));
        assert_eq!(got, vec![typed.id, all.id]);
    }

    #[test]
    fn development_mode_must_equal() {
        let mut dev = hook("acme", "dev");
        dev.development_mode = true;
        let prod = hook("acme", "prod");
        let hooks = vec![dev.clone(), prod.clone()];
        assert_eq!(
            ids(&targets(&event(json!({"development_mode": true})), &hooks)),
            vec![dev.id]
        );
        assert_eq!(ids(&targets(&event(json!({})), &hooks)), vec![prod.id]);
    }

    #[test]
    fn triggers_match_identifier_or_schema() {
        let mut by_id = hook("acme", "by-id");
        by_id.import_identifiers = vec!["contacts".into()];
        let mut by_schema = hook("acme", "by-schema");
        by_schema.schema_ids = vec!["s-1".into()];
        let mut both = hook("acme", "both");
        both.import_identifiers = vec!["leads".into()];
        both.schema_ids = vec!["s-2".into()];
        let hooks = vec![by_id.clone(), by_schema.clone(), both.clone()];
        assert_eq!(
            ids(&targets(
                &event(json!({"import_identifier": "contacts"})),
                &hooks
            )),
            vec![by_id.id]
        );
        assert_eq!(
            ids(&targets(&event(json!({"schema_id": "s-1"})), &hooks)),
            vec![by_schema.id]
        );
        assert_eq!(
            ids(&targets(&event(json!({"schema_id": "s-2"})), &hooks)),
            vec![both.id]
        );
        assert_eq!(
            ids(&targets(
                &event(json!({"import_identifier": "leads", "schema_id": "s-9"})),
                &hooks
            )),
            vec![both.id]
        );
        assert!(targets(&event(json!({"import_identifier": "other"})), &hooks).is_empty());
        assert!(targets(&event(json!({})), &hooks).is_empty());
    }

    #[test]
    fn a_payload_filter_narrows_what_a_webhook_receives_whichever_way_it_is_chosen() {
        let mut big = hook("acme", "big");
        big.filter = Some(
            crate::filter::PayloadFilter::parse(
                "filter",
                &json!({"path": "data.rows", "gte": 100}),
            )
            .unwrap(),
        );
        let with = |rows: i64, extra: serde_json::Value| {
            let mut v = json!({"payload": {"data": {"rows": rows}}});
            if let Some(m) = extra.as_object() {
                for (k, x) in m {
                    v[k] = x.clone();
                }
            }
            event(v)
        };
        assert_eq!(
            targets(&with(500, json!({})), &[big.clone()]),
            vec![Target::Webhook(big.id)]
        );
        assert!(targets(&with(5, json!({})), &[big.clone()]).is_empty());
        assert!(targets(&with(5, json!({"webhook_keys": ["big"]})), &[big]).is_empty());
    }

    #[test]
    fn disabled_and_paused_webhooks_still_match_their_events_are_held_not_dropped() {
        let mut off = hook("acme", "off");
        off.enabled = false;
        assert_eq!(
            targets(&event(json!({})), &[off.clone()]),
            vec![Target::Webhook(off.id)]
        );
        assert!(holds(&off));
        let on = hook("acme", "on");
        assert!(!holds(&on));
    }
}
