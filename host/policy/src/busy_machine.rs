//! Telling a slow machine from a slow plugin.
//!
//! Every call into a plugin runs under a wall-clock deadline, but a load or
//! a `handoff test` must be judged by the plugin, not by how busy the
//! machine is. When a deadline runs out while the calling thread itself
//! used less CPU time than the deadline, the machine was slow: the work is
//! tried again, up to [`LOAD_ATTEMPTS`] times. A plugin that really runs
//! too long uses its whole deadline in CPU time and fails at once.

use std::time::Duration;

/// The most times a load is tried when only the machine's speed failed it.
pub const LOAD_ATTEMPTS: u32 = 5;

/// Runs `work` (given the attempt number, from 1) until it succeeds, fails
/// for a reason other than `missed_deadline`, or misses `deadline` having
/// used at least that much CPU time itself. `what` names the work in the
/// log line a retry leaves.
pub(crate) fn retry_when_busy<T, E>(
    what: &str,
    deadline: Duration,
    missed_deadline: impl Fn(&E) -> bool,
    mut work: impl FnMut(u32) -> Result<T, E>,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        let cpu_before = thread_cpu_time();
        match work(attempt) {
            Err(error) if missed_deadline(&error) && attempt < LOAD_ATTEMPTS => {
                let used = thread_cpu_time().saturating_sub(cpu_before);
                if used >= deadline {
                    return Err(error);
                }
                tracing::info!(
                    plugin = what,
                    attempt,
                    cpu_ms = used.as_millis() as u64,
                    "a plugin ran past its deadline on a busy machine; trying again"
                );
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// CPU time the calling thread has used.
#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::MAX;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Without a per-thread CPU clock an overrun is always retried, as on a
/// busy machine, up to the attempt limit.
#[cfg(not(unix))]
fn thread_cpu_time() -> Duration {
    Duration::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_missed_without_using_the_cpu_is_tried_again() {
        let mut attempts = 0;
        let result: Result<u32, &str> = retry_when_busy(
            "p",
            Duration::from_secs(3600),
            |e| *e == "late",
            |n| {
                attempts += 1;
                if n < 3 { Err("late") } else { Ok(n) }
            },
        );
        assert_eq!(result, Ok(3));
        assert_eq!(attempts, 3);
    }

    #[test]
    fn other_failures_and_the_last_attempt_are_final() {
        let mut attempts = 0;
        let refused: Result<(), &str> = retry_when_busy(
            "p",
            Duration::from_secs(3600),
            |e| *e == "late",
            |_| {
                attempts += 1;
                Err("refused")
            },
        );
        assert_eq!((refused, attempts), (Err("refused"), 1));
        attempts = 0;
        let late: Result<(), &str> = retry_when_busy(
            "p",
            Duration::from_secs(3600),
            |e| *e == "late",
            |_| {
                attempts += 1;
                Err("late")
            },
        );
        assert_eq!((late, attempts), (Err("late"), LOAD_ATTEMPTS));
    }

    #[test]
    fn a_deadline_missed_while_using_the_cpu_is_final() {
        let mut attempts = 0;
        let result: Result<(), &str> = retry_when_busy(
            "p",
            Duration::ZERO,
            |e| *e == "late",
            |_| {
                attempts += 1;
                Err("late")
            },
        );
        assert_eq!((result, attempts), (Err("late"), 1));
    }
}
