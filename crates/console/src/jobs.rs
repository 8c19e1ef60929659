//! Dead-letter replays run as background jobs of this process, so a long one shows
//! its progress instead of holding the browser's request: the job page reads it.
//! Jobs live in memory: behind several api replicas, the job page must reach the
//! replica that started it (a sticky session), else it says the job is unknown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hookrelay_admin::dlq::{self, Dlq, Filter, ReplayOptions, Summary};
use hookrelay_admin::http::AdminState;
use uuid::Uuid;

/// Finished jobs kept for their pages, newest last.
const KEPT: usize = 100;

#[derive(Clone)]
pub(crate) struct Job {
    /// What it replays, in words.
    pub what: String,
    pub scanned: u64,
    /// The queue's length when it began.
    pub total: u64,
    pub outcome: Option<Result<Summary, String>>,
}

#[derive(Clone, Default)]
pub(crate) struct Jobs(Arc<Mutex<BTreeMap<Uuid, Job>>>);

impl Jobs {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Uuid, Job>> {
        // A job that panicked mid-update leaves a readable map behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, id: Uuid) -> Option<Job> {
        self.lock().get(&id).cloned()
    }

    /// Starts replaying what `filter` matches; returns the job's id.
    pub fn replay(&self, admin: &AdminState, filter: Filter, what: String) -> Uuid {
        let id = Uuid::now_v7();
        {
            let mut jobs = self.lock();
            jobs.insert(
                id,
                Job {
                    what,
                    scanned: 0,
                    total: 0,
                    outcome: None,
                },
            );
            while jobs.len() > KEPT {
                let Some(oldest) = jobs.keys().next().copied() else {
                    break;
                };
                jobs.remove(&oldest);
            }
        }
        let (jobs, admin) = (self.clone(), admin.clone());
        tokio::spawn(async move {
            let outcome = run(&jobs, id, &admin, &filter).await;
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "a dead-letter replay from the console stopped");
            }
            if let Some(job) = jobs.lock().get_mut(&id) {
                job.outcome = Some(outcome);
            }
        });
        id
    }
}

async fn run(
    jobs: &Jobs,
    id: Uuid,
    admin: &AdminState,
    filter: &Filter,
) -> Result<Summary, String> {
    let connection = admin.connection().await.map_err(|e| e.to_string())?;
    let dlq = Dlq {
        connection: &connection,
        topology: &admin.topology,
        pool: &admin.pool,
    };
    let progress = |scanned: u64, total: u64| {
        if let Some(job) = jobs.lock().get_mut(&id) {
            job.scanned = scanned;
            job.total = total;
        }
    };
    let options = ReplayOptions {
        dry_run: false,
        rate: None,
        progress: &progress,
    };
    dlq::replay(&dlq, filter, &options)
        .await
        .map_err(|e| e.to_string())
}
