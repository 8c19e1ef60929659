//! Batches database work across concurrent deliveries: every request that arrives
//! while a batch is being written or read joins the next one. Under load many
//! deliveries share one statement (and one commit); at rest a request goes at once,
//! with no timer.

use std::future::Future;

use deadpool_postgres::Pool;
use hookrelay_store::StoreError;
use tokio::sync::{mpsc, oneshot};

/// Requests per statement at most.
const MAX_BATCH: usize = 256;

/// An error shared by every request of a failed batch: its text, and whether trying
/// again may help.
#[derive(Debug, Clone)]
pub(crate) struct BatchFailure {
    pub message: String,
    pub transient: bool,
}

impl From<BatchFailure> for StoreError {
    fn from(f: BatchFailure) -> Self {
        if f.transient {
            StoreError::Unavailable(f.message)
        } else {
            StoreError::Refused(f.message)
        }
    }
}

impl From<&StoreError> for BatchFailure {
    fn from(e: &StoreError) -> Self {
        Self {
            message: e.to_string(),
            transient: e.is_transient(),
        }
    }
}

/// The output of a batch of one.
fn only_output<O>(result: Result<Vec<O>, StoreError>) -> Result<O, BatchFailure> {
    match result {
        Ok(outputs) => outputs.into_iter().next().ok_or_else(|| BatchFailure {
            message: "database batch returned no output".into(),
            transient: false,
        }),
        Err(e) => Err(BatchFailure::from(&e)),
    }
}

type Reply<O> = oneshot::Sender<Result<O, BatchFailure>>;

pub(crate) struct Batcher<I, O> {
    tx: mpsc::Sender<(I, Reply<O>)>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Clone + Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// `work` gets a batch of inputs and returns one output per input, in order. A
    /// batch refused for good is tried again one input at a time, so one input the
    /// database refuses fails alone, not with every request that shared its batch.
    pub(crate) fn start<F, Fut>(pool: Pool, work: F) -> Self
    where
        F: Fn(Pool, Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, StoreError>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<(I, Reply<O>)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (inputs, replies): (Vec<I>, Vec<Reply<O>>) = batch.into_iter().unzip();
                let alone = (inputs.len() > 1).then(|| inputs.clone());
                match (work(pool.clone(), inputs).await, alone) {
                    (Ok(outputs), _) => {
                        for (reply, output) in replies.into_iter().zip(outputs) {
                            let _ = reply.send(Ok(output));
                        }
                    }
                    (Err(e), Some(inputs)) if !e.is_transient() => {
                        for (input, reply) in inputs.into_iter().zip(replies) {
                            let result = work(pool.clone(), vec![input]).await;
                            let _ = reply.send(only_output(result));
                        }
                    }
                    (Err(e), _) => {
                        let failure = BatchFailure::from(&e);
                        for reply in replies {
                            let _ = reply.send(Err(failure.clone()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    pub(crate) async fn call(&self, input: I) -> Result<O, BatchFailure> {
        let stopped = || BatchFailure {
            message: "database batcher stopped".into(),
            transient: false,
        };
        let (reply, result) = oneshot::channel();
        self.tx.send((input, reply)).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}
