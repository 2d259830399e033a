//! Dedicated evaluator threads: where a server runs untrusted plugins.
//!
//! Plugins never run on the async runtime's workers: a slow one (up to its
//! deadline) would stall every connection on that worker. tokio's blocking
//! pool keeps them off, but each submission then pays for a semaphore, a
//! pool hand-off and, when the pool is idle, a thread's wake-up; on a busy
//! server most of a request's time went to threads waking one another.
//! Here a fixed set of threads takes submissions from one bounded queue:
//! a thread that finishes one takes the next without sleeping, so under
//! load a submission costs one queue push and one answer, and the number of
//! evaluations at once is the number of threads, whatever the load.

use std::panic::{AssertUnwindSafe, catch_unwind};

use handoff_policy::panic_message;
use tokio::sync::oneshot;

/// Submissions that may wait per thread before submitters wait too.
const QUEUED_PER_THREAD: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of evaluator threads. The threads stop once this is dropped
/// and the queue is empty.
#[derive(Debug)]
pub(crate) struct EvaluatorThreads {
    jobs: flume::Sender<Job>,
}

/// Why a submission got no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Interrupted {
    /// The work panicked; the thread survives and takes the next one.
    #[error("the evaluation panicked: {0}")]
    Panicked(String),
    /// Every thread is gone (never the case while the pool is alive).
    #[error("no evaluator thread is running")]
    Stopped,
}

impl EvaluatorThreads {
    /// Starts `count` threads (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<EvaluatorThreads> {
        let count = count.max(1);
        let (jobs, queue) = flume::bounded::<Job>(count * QUEUED_PER_THREAD);
        for index in 0..count {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("handoff-eval-{index}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                })?;
        }
        Ok(EvaluatorThreads { jobs })
    }

    /// Runs `work` on one of the threads and waits for its result without
    /// blocking the runtime; waits for room first when the queue is full.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Interrupted> {
        let (answer, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A submitter that went away while queued (its client hung up)
            // costs nothing: its work is neither decided nor recorded.
            if answer.is_closed() {
                return;
            }
            let outcome = catch_unwind(AssertUnwindSafe(work))
                .map_err(|panic| Interrupted::Panicked(panic_message(panic.as_ref())));
            // The submitter may have gone away; the work is done either way.
            let _ = answer.send(outcome);
        });
        self.jobs
            .send_async(job)
            .await
            .map_err(|_| Interrupted::Stopped)?;
        result.await.map_err(|_| Interrupted::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_on_a_named_evaluator_thread() {
        let threads = EvaluatorThreads::start(2).unwrap();
        let name = threads
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("handoff-eval-"));
    }

    #[tokio::test]
    async fn a_panic_is_an_error_and_the_thread_takes_the_next_job() {
        let threads = EvaluatorThreads::start(1).unwrap();
        let error = threads
            .run(|| -> u32 { panic!("a plugin host bug") })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("a plugin host bug"), "{error}");
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn work_whose_submitter_left_while_queued_never_runs() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let threads = Arc::new(EvaluatorThreads::start(1).unwrap());
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let busy = tokio::spawn({
            let threads = threads.clone();
            async move {
                threads
                    .run(move || {
                        let _ = started.send(());
                        hold.recv().is_ok()
                    })
                    .await
            }
        });
        running.await.unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let queued = threads.run({
            let ran = ran.clone();
            move || ran.store(true, Ordering::SeqCst)
        });
        // The first poll queues it; the timeout then drops the submitter.
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(20), queued).await;
        assert!(
            gave_up.is_err(),
            "the thread is held, so it cannot have run"
        );
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        // One thread takes jobs in order: this one comes after the other.
        threads.run(|| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn no_more_run_at_once_than_there_are_threads() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let threads = Arc::new(EvaluatorThreads::start(2).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (threads, running, most) = (threads.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                threads
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // All sixteen ran, never more than two at once (two at once is
        // likely but not certain on a busy machine, so not asserted).
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert!((1..=2).contains(&most.load(Ordering::SeqCst)));
    }
}
