//! Where lifecycle events go.

use handoff_model::LifecycleEvent;

/// Where lifecycle events go: the audit trail, a console, metrics, a test.
/// Called in event order, while the reload that caused them holds its lock,
/// so an implementation should be quick.
pub trait LifecycleSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &LifecycleEvent);
}

impl<F: Fn(&LifecycleEvent) + Send + Sync> LifecycleSink for F {
    fn record(&self, event: &LifecycleEvent) {
        self(event)
    }
}
