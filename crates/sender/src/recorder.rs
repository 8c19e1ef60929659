//! Attempt records, written in batches (see `batcher`), and delivery jobs, read in
//! batches.

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
                let mut found = deliveries::send_jobs(&client, &cipher, &ids).await?;
                Ok(ids.iter().map(|id| found.remove(id)).collect())
            }
        }))
    }

    pub(crate) async fn load(&self, id: Uuid) -> Result<Option<SendJob>, StoreError> {
        self.0.call(id).await.map_err(StoreError::from)
    }
}
