//! Attempt records, written in batches (see `batcher`), and delivery jobs, read in
//! batches.

use std::collections::HashMap;

use backon::Retryable;
use deadpool_postgres::Pool;
use hookrelay_store::deliveries::{self, AttemptRecord, SendJob};
use hookrelay_store::{Cipher, StoreError};
use uuid::Uuid;

use crate::batcher::Batcher;

#[derive(Clone)]
pub(crate) struct Recorder(Batcher<AttemptRecord, ()>);

impl Recorder {
    pub(crate) fn start(pool: Pool) -> Self {
        Self(Batcher::start(
            pool,
            |pool, records: Vec<AttemptRecord>| async move {
                let client = pool.get().await?;
                deliveries::record_attempts(&client, &records).await?;
                Ok(vec![(); records.len()])
            },
        ))
    }

    /// Returns once the record is committed. A transient database error is retried
    /// here, so the caller never repeats the webhook request to record its outcome.
    pub(crate) async fn record(&self, record: AttemptRecord) -> Result<(), StoreError> {
        (|| self.0.call(record.clone()))
            .retry(hookrelay_store::TRANSIENT_RETRY)
            .when(|f| f.transient)
            .notify(|f, pause| {
                tracing::warn!(error = %f.message, retry_in = ?pause, "recording the attempt failed; retrying");
            })
            .await
            .map_err(StoreError::from)
    }
}

#[derive(Clone)]
pub(crate) struct Loader(Batcher<Uuid, Option<SendJob>>);

impl Loader {
    pub(crate) fn start(pool: Pool, cipher: Cipher) -> Self {
        Self(Batcher::start(pool, move |pool, ids: Vec<Uuid>| {
            let cipher = cipher.clone();
            async move {
                let client = pool.get().await?;
                let found = deliveries::send_jobs(&client, &cipher, &ids).await?;
                Ok(jobs_in_order(&ids, &found))
            }
        }))
    }

    pub(crate) async fn load(&self, id: Uuid) -> Result<Option<SendJob>, StoreError> {
        self.0.call(id).await.map_err(StoreError::from)
    }
}

/// One answer per id asked, in order: two copies of one delivery's message loaded in
/// the same statement (a redelivery beside the message it repeats) both find its row.
fn jobs_in_order<J: Clone>(ids: &[Uuid], found: &HashMap<Uuid, J>) -> Vec<Option<J>> {
    ids.iter().map(|id| found.get(id).cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_asked_gets_its_row_even_when_asked_twice_in_one_batch() {
        let (a, b, missing) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let found: HashMap<Uuid, &str> = [(a, "a"), (b, "b")].into_iter().collect();
        let cases: [(&[Uuid], &[Option<&str>]); 3] = [
            (&[a, b], &[Some("a"), Some("b")]),
            (&[a, missing, a], &[Some("a"), None, Some("a")]),
            (&[b, b, b], &[Some("b"), Some("b"), Some("b")]),
        ];
        for (ids, expected) in cases {
            assert_eq!(jobs_in_order(ids, &found), expected, "{ids:?}");
        }
    }
}
