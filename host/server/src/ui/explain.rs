//! A decision, explained: every plugin's classification, assessment with
//! its weighted signals, verdict or fault, the exact component it ran, and
//! what it cost. The queue's transfer payload and the audit's explanation
//! page show a decision the same way.

use handoff_model::Named;
use maud::{Markup, html};

use super::layout::{digest, tier_badge};
use handoff_model::{Decision, PluginMetering, PluginVerdict, WorkItem};

/// The driving verdict and every plugin's part in it.
pub fn decision(decision: &Decision) -> Markup {
    html! {
        dl.facts {
            dt { "Tier" } dd { (tier_badge(decision.tier())) }
            dt { "Driven by" } dd { (decision.driver.as_deref().unwrap_or("the host (no plugin escalated)")) }
            dt { "Reason" } dd { code { (decision.verdict.reason_code) } " — " (decision.verdict.reason) }
            @if let Some(guidance) = &decision.verdict.guidance {
                dt { "Guidance" } dd { (guidance) }
            }
            @if let Some(trigger) = decision.verdict.trigger {
                dt { "Trigger" } dd { (trigger.as_str()) }
            }
            dt { "Policy generation" } dd { (decision.generation) }
            dt { "Evaluation" } dd { (format!("{:.0} µs", decision.metering.elapsed_us)) }
        }
        h2 { "Every plugin's verdict" }
        @for verdict in &decision.verdicts {
            (plugin(verdict, &decision.metering.plugins))
        }
        @if !decision.shadow.is_empty() {
            h2 { "In shadow (piloted, not deciding)" }
            @for verdict in &decision.shadow {
                (plugin(verdict, &decision.metering.shadow))
            }
        }
    }
}

fn plugin(verdict: &PluginVerdict, costs: &[PluginMetering]) -> Markup {
    let metering = costs.iter().find(|m| m.plugin == verdict.plugin);
    html! {
        section.card aria-label={ "Plugin " (verdict.plugin) } {
            h3 { (verdict.plugin) " " span.muted { (verdict.version) } }
            dl.facts {
                dt { "Component" } dd { (digest(&verdict.digest)) }
                @if let Some(v) = &verdict.verdict {
                    dt { "Verdict" } dd { (tier_badge(v.tier)) " " code { (v.reason_code) } " — " (v.reason) }
                    @if let Some(role) = &v.role { dt { "Role" } dd { (role) } }
                }
                @if let Some(fault) = &verdict.fault {
                    dt { "Fault" } dd.bad { (fault.kind.as_str()) " in " (fault.stage) ": " (fault.detail) " (" (super::layout::kebab(&fault.failure_mode)) ")" }
                }
                @if let Some(c) = &verdict.classification {
                    dt { "Labels" } dd { (list(&c.labels)) }
                    dt { "Rules fired" } dd { (list(&c.rules_fired)) }
                }
                @if let Some(a) = &verdict.assessment {
                    dt { "Risk" } dd { meter min="0" max="1" value=(a.risk) {} " " (format!("{:.3}", a.risk)) }
                    dt { "Confidence" } dd { (format!("{:.3}", a.confidence)) }
                }
                @if let Some(m) = metering {
                    dt { "Metering" } dd { (m.fuel) " fuel · " (format!("{:.0} µs", m.wall_us)) " · " (m.memory_bytes / 1024) " KiB peak memory" }
                }
            }
            @if let Some(a) = &verdict.assessment {
                @if !a.signals.is_empty() {
                    table {
                        caption.visually-hidden { "Signals of " (verdict.plugin) }
                        thead { tr { th { "Signal" } th { "Weight" } th { "Detail" } } }
                        tbody {
                            @for signal in &a.signals {
                                tr {
                                    td { code { (signal.name) } }
                                    td { meter min="0" max="1" value=(signal.weight.abs().min(1.0)) {} " " (format!("{:.3}", signal.weight)) }
                                    td { (signal.detail) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn list(values: &[String]) -> Markup {
    html! {
        @if values.is_empty() { span.muted { "none" } }
        @for (i, value) in values.iter().enumerate() {
            @if i > 0 { ", " }
            code { (value) }
        }
    }
}

/// A work item as the agent submitted it.
pub fn item(item: &WorkItem) -> Markup {
    html! {
        dl.facts {
            dt { "Item" } dd { code { (item.id) } }
            dt { "Kind" } dd { (item.kind) }
            dt { "Agent" } dd { (item.agent) }
            dt { "Agent's confidence" } dd { (format!("{:.2}", item.confidence)) }
            @if let Some(amount) = &item.amount {
                dt { "Amount" } dd { (amount.minor) " minor units of " (amount.currency) }
            }
            @if let Some(segment) = &item.segment { dt { "Segment" } dd { (segment) } }
            dt { "Attempts" } dd { (item.attempts) }
            @for (key, value) in &item.attributes {
                dt { (key) } dd { (value) }
            }
        }
        h3 { "Text" }
        pre { (item.text) }
    }
}

/// A JSON value from the audit log (a masked or partial item), shown as
/// it is stored.
pub fn raw(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre { (text) } }
}
