//! `hookrelay deliveries --tenant T --event ID`: an event's deliveries with every attempt.

use anyhow::Context;
use hookrelay_core::store::{self, deliveries};
use serde::Serialize;

use super::print;
use crate::config::Common;

#[derive(Serialize)]
struct DeliveryLog {
    #[serde(flatten)]
    delivery: deliveries::Delivery,
    attempt_log: Vec<deliveries::Attempt>,
}

pub async fn run(common: &Common, tenant: &str, event_id: &str, json: bool) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2)?;
    let db = pool.get().await.context("connecting to Postgres")?;
    let mut logs = Vec::new();
    for delivery in deliveries::for_event(&db, tenant, event_id).await? {
        let attempt_log = deliveries::attempts(&db, delivery.id).await?;
        logs.push(DeliveryLog {
            delivery,
            attempt_log,
        });
    }
    let rows = logs
        .iter()
        .map(|l| {
            let d = &l.delivery;
            let target = d
                .webhook_id
                .map(|w| w.to_string())
                .or_else(|| d.url.clone())
                .unwrap_or_default();
            let statuses: Vec<String> = l
                .attempt_log
                .iter()
                .map(|a| {
                    a.status_code
                        .map_or_else(|| "error".to_owned(), |s| s.to_string())
                })
                .collect();
            vec![
                d.id.to_string(),
                target,
                d.status.as_str().to_owned(),
                d.attempts.to_string(),
                if statuses.is_empty() {
                    "-".into()
                } else {
                    statuses.join(",")
                },
                d.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print(
        json,
        &logs,
        &[
            "DELIVERY",
            "TARGET",
            "STATUS",
            "ATTEMPTS",
            "ANSWERS",
            "LAST ERROR",
        ],
        rows,
    );
    Ok(())
}
