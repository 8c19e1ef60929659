//! Writes attempt records in batches: every record that arrives while a write is in
//! flight joins the next one, so under load many deliveries share one statement and
//! one commit, and at rest a record is written at once (no timer).

use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_core::store::StoreError;
use hookrelay_core::store::deliveries::{self, AttemptRecord};
use tokio::sync::{mpsc, oneshot};

/// Records per statement at most.
const MAX_BATCH: usize = 256;

type Done = oneshot::Sender<Result<(), (String, bool)>>;

#[derive(Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<(AttemptRecord, Done)>,
}

impl Recorder {
    pub(crate) fn start(pool: Pool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(pool, rx));
        Self { tx }
    }

    /// Returns once the record is committed. A transient database error is retried
    /// here, so the caller never repeats the webhook request to record its outcome.
    pub(crate) async fn record(&self, record: AttemptRecord) -> Result<(), StoreError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let (done, result) = oneshot::channel();
            self.tx
                .send((record.clone(), done))
                .await
                .map_err(|_| StoreError::Invalid("attempt recorder stopped".into()))?;
            let outcome = result
                .await
                .map_err(|_| StoreError::Invalid("attempt recorder stopped".into()))?;
            match outcome {
                Ok(()) => return Ok(()),
                Err((message, true)) => {
                    tracing::warn!(error = %message, retry_in = ?pause, "recording the attempt failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err((message, false)) => return Err(StoreError::Invalid(message)),
            }
        }
    }
}

async fn write_batches(pool: Pool, mut rx: mpsc::Receiver<(AttemptRecord, Done)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let records: Vec<AttemptRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
        let result = match pool.get().await {
            Ok(client) => deliveries::record_attempts(&client, &records).await,
            Err(e) => Err(StoreError::from(e)),
        };
        let outcome = result.map_err(|e| (e.to_string(), e.is_transient()));
        for (_, done) in batch {
            let _ = done.send(outcome.clone());
        }
    }
}
