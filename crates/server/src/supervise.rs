//! Every task of a process under one watch: the roles, the HTTP server and the
//! background loops. A task that fails, panics or ends before the process is asked
//! to stop is logged and stops the process (an orchestrator restarts it): a loop
//! that died silently would leave the process looking healthy while it is not.

use std::error::Error;
use std::future::Future;

use tokio::task::JoinSet;

pub(crate) type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// How a supervised task ended.
type Ended = (&'static str, Result<(), BoxError>);

#[derive(Default)]
pub(crate) struct Tasks {
    set: JoinSet<Ended>,
}

/// Why a task's end stops the process.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{task} failed: {source}")]
    Failed {
        task: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{task} stopped before the process was asked to stop")]
    EndedEarly { task: &'static str },
    #[error("a task panicked: {0}")]
    Panicked(String),
}

impl Tasks {
    /// A role or server: runs until shutdown, or fails.
    pub(crate) fn spawn<F, E>(&mut self, task: &'static str, work: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.set
            .spawn(async move { (task, work.await.map_err(Into::into)) });
    }

    /// A background loop: runs until shutdown.
    pub(crate) fn spawn_loop<F>(&mut self, task: &'static str, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.set.spawn(async move {
            work.await;
            (task, Ok(()))
        });
    }

    /// Waits for the first task to end: while running, any end is an error.
    pub(crate) async fn first_end(&mut self) -> Option<TaskError> {
        let ended = self.set.join_next().await?;
        Some(match ended {
            Ok((task, Ok(()))) => TaskError::EndedEarly { task },
            Ok((task, Err(source))) => TaskError::Failed { task, source },
            Err(join) => TaskError::Panicked(join.to_string()),
        })
    }

    /// After shutdown was signalled: waits for every task, returning the first
    /// failure (a task that ends cleanly now did what it should).
    pub(crate) async fn drain(&mut self) -> Result<(), TaskError> {
        let mut first = None;
        while let Some(ended) = self.set.join_next().await {
            let failure = match ended {
                Ok((_, Ok(()))) => continue,
                Ok((task, Err(source))) => TaskError::Failed { task, source },
                Err(join) => TaskError::Panicked(join.to_string()),
            };
            tracing::error!(error = %failure, "task failed while stopping");
            first.get_or_insert(failure);
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_early_end_a_failure_and_a_panic_are_each_an_error() {
        let mut tasks = Tasks::default();
        tasks.spawn_loop("sampler", async {});
        assert!(matches!(
            tasks.first_end().await,
            Some(TaskError::EndedEarly { task: "sampler" })
        ));
        tasks.spawn("router", async { Err::<(), _>("broker gone") });
        let failed = tasks.first_end().await.map(|e| e.to_string());
        assert_eq!(failed.as_deref(), Some("router failed: broker gone"));
        tasks.spawn_loop("releaser", async { panic!("bug") });
        assert!(matches!(
            tasks.first_end().await,
            Some(TaskError::Panicked(_))
        ));
    }

    #[tokio::test]
    async fn draining_after_stop_reports_only_failures() {
        let mut tasks = Tasks::default();
        tasks.spawn_loop("sampler", async {});
        tasks.spawn("http", async { Ok::<(), BoxError>(()) });
        assert!(tasks.drain().await.is_ok());
        tasks.spawn("sender", async {
            Err::<(), _>("cannot build the HTTP client")
        });
        assert!(tasks.drain().await.is_err());
    }
}
