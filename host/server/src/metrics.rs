//! What `/metrics` exposes, in the Prometheus text format: decisions by
//! tier, faults by kind, per-plugin latency and fuel, queue depth, SLA
//! breaches and reloads.
//!
//! Counters are fed from what the server already has in hand (the decision,
//! the SLA event, the lifecycle event), so metering adds no work on the
//! evaluation path beyond an atomic add per plugin. Queue depth is read from
//! the store at scrape time, so it is right even when another process (the
//! `handoff queue` command) changed the queue.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use handoff_dispatch::{QueueDepth, SlaEvent};
use handoff_model::{Decision, LifecycleEvent, Named};

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    evaluations: Family<Labels, Counter>,
    evaluation_seconds: Histogram,
    faults: Family<Labels, Counter>,
    plugin_seconds: HistogramFamily,
    plugin_fuel: Family<Labels, Counter>,
    queue_depth: Family<Labels, Gauge>,
    evaluators: Gauge,
    sla_breaches: Family<Labels, Counter>,
    lease_expirations: Counter,
    reloads: Family<Labels, Counter>,
}

/// 1 µs to about 4 s, doubling: a warm plugin call sits in the low buckets,
/// a plugin stopped at its deadline in the top ones.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-6, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("handoff");
        let evaluations = Family::<Labels, Counter>::default();
        registry.register(
            "evaluations",
            "Decisions made, by tier",
            evaluations.clone(),
        );
        let evaluation_seconds = latency_buckets();
        registry.register(
            "evaluation_seconds",
            "Time from the first plugin call to the decision",
            evaluation_seconds.clone(),
        );
        let faults = Family::<Labels, Counter>::default();
        registry.register(
            "plugin_faults",
            "Plugin faults, by plugin and kind",
            faults.clone(),
        );
        let plugin_seconds: HistogramFamily = Family::new_with_constructor(latency_buckets);
        registry.register(
            "plugin_seconds",
            "Wall time of one plugin's three stages, by plugin",
            plugin_seconds.clone(),
        );
        let plugin_fuel = Family::<Labels, Counter>::default();
        registry.register(
            "plugin_fuel",
            "Fuel consumed, by plugin",
            plugin_fuel.clone(),
        );
        let queue_depth = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Unresolved handoffs, by tier, role and state",
            queue_depth.clone(),
        );
        let evaluators = Gauge::default();
        registry.register(
            "evaluators",
            "Evaluators (each with warm instances of every plugin) the server holds",
            evaluators.clone(),
        );
        let sla_breaches = Family::<Labels, Counter>::default();
        registry.register(
            "sla_breaches",
            "Missed deadlines, by deadline, tier and what followed (escalated or alert)",
            sla_breaches.clone(),
        );
        let lease_expirations = Counter::default();
        registry.register(
            "lease_expirations",
            "Handoffs put back in their queue because the person holding them let the lease run out",
            lease_expirations.clone(),
        );
        let reloads = Family::<Labels, Counter>::default();
        registry.register(
            "reloads",
            "Policy versions applied or rejected by hot reload",
            reloads.clone(),
        );
        Metrics {
            registry,
            evaluations,
            evaluation_seconds,
            faults,
            plugin_seconds,
            plugin_fuel,
            queue_depth,
            evaluators,
            sla_breaches,
            lease_expirations,
            reloads,
        }
    }

    /// Counts one decision and what each plugin spent on it.
    pub fn observe_decision(&self, decision: &Decision) {
        self.evaluations
            .get_or_create(&vec![("tier", decision.tier().as_str().to_string())])
            .inc();
        self.evaluation_seconds
            .observe(decision.metering.elapsed_us / 1e6);
        let metering = &decision.metering;
        for plugin in metering.plugins.iter().chain(&metering.shadow) {
            let labels = vec![("plugin", plugin.plugin.clone())];
            self.plugin_seconds
                .get_or_create(&labels)
                .observe(plugin.wall_us / 1e6);
            self.plugin_fuel.get_or_create(&labels).inc_by(plugin.fuel);
        }
        for verdict in decision.verdicts.iter().chain(&decision.shadow) {
            if let Some(fault) = &verdict.fault {
                self.faults
                    .get_or_create(&vec![
                        ("plugin", verdict.plugin.clone()),
                        ("kind", fault.kind.as_str().to_string()),
                    ])
                    .inc();
            }
        }
    }

    /// Counts a breach the SLA clock acted on, or a lease it expired.
    pub fn observe_sla(&self, event: &SlaEvent) {
        let labels = match event {
            SlaEvent::LeaseExpired { .. } => {
                self.lease_expirations.inc();
                return;
            }
            SlaEvent::Escalated { breach, from, .. } => vec![
                ("deadline", label(breach)),
                ("tier", from.as_str().to_string()),
                ("action", "escalated".to_string()),
            ],
            SlaEvent::Alert { breach, .. } => vec![
                ("deadline", label(breach)),
                ("tier", "executive".to_string()),
                ("action", "alert".to_string()),
            ],
        };
        self.sla_breaches.get_or_create(&labels).inc();
    }

    /// Counts a reload that applied or was refused.
    pub fn observe_lifecycle(&self, event: &LifecycleEvent) {
        let outcome = match event {
            LifecycleEvent::Loaded { .. }
            | LifecycleEvent::Swapped { .. }
            | LifecycleEvent::Unloaded { .. } => "applied",
            LifecycleEvent::Rejected { .. } => "rejected",
            LifecycleEvent::Fault { .. }
            | LifecycleEvent::Generation { .. }
            | LifecycleEvent::CacheRecompiled { .. }
            | LifecycleEvent::Promoted { .. }
            | LifecycleEvent::CalibrationProposed { .. }
            | LifecycleEvent::CalibrationApproved { .. } => return,
        };
        self.reloads
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// The text exposition, with queue depth as of `depth` and the size of
    /// the evaluator pool.
    pub fn render(
        &self,
        depth: &[QueueDepth],
        evaluators: usize,
    ) -> Result<String, std::fmt::Error> {
        self.evaluators
            .set(i64::try_from(evaluators).unwrap_or(i64::MAX));
        self.queue_depth.clear();
        for queue in depth {
            self.queue_depth
                .get_or_create(&vec![
                    ("tier", queue.tier.as_str().to_string()),
                    ("role", queue.role.clone()),
                    ("state", queue.state.as_str().to_string()),
                ])
                .set(i64::try_from(queue.count).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A serde enum's name, as a label value.
fn label(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_string(),
    }
}
