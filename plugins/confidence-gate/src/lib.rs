//! `confidence-gate`: the probabilistic reference policy.
//!
//! - The agent's confidence falls into one of three bands: below
//!   `escalate-below` an operator must look; below `self-correct-below` the
//!   agent retries with guidance; otherwise it proceeds.
//! - Anomalies escalate to an operator whatever the confidence: an amount
//!   more than `anomaly-factor` times the typical amount for its kind and
//!   currency, or a kind of work the deployment does not know.

use handoff_sdk::prelude::*;

/// The configured policy.
#[derive(Debug, Clone)]
pub struct ConfidenceGate {
    bands: ConfidenceBands,
    known_kinds: Vec<String>,
    /// Typical amount in minor units, by (kind, currency).
    typical: Vec<(String, String, u64)>,
    anomaly_factor: f64,
    operator_role: String,
    guidance: String,
}

const DEFAULT_BANDS: ConfidenceBands = ConfidenceBands {
    escalate_below: 0.6,
    self_correct_below: 0.75,
};

const LABEL_UNKNOWN_KIND: &str = "anomaly.unknown-kind";
const LABEL_AMOUNT: &str = "anomaly.amount";

impl Policy for ConfidenceGate {
    fn info() -> PolicyInfo {
        PolicyInfo {
            name: "confidence-gate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Probabilistic gate on the agent's confidence, with anomaly signals for \
                          unusual amounts and unknown kinds of work."
                .into(),
            triggers: vec![
                TriggerInfo::new(
                    "confidence",
                    TriggerKind::Probabilistic,
                    "Agent confidence below `escalate-below` escalates to an operator; below \
                     `self-correct-below` the agent retries with guidance.",
                ),
                TriggerInfo::new(
                    "anomaly",
                    TriggerKind::Probabilistic,
                    "An amount over `anomaly-factor` times the typical amount for its kind and \
                     currency, or a kind of work not in `known-kinds`.",
                ),
            ],
        }
    }

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let bands = ConfidenceBands::from_config(
            config,
            "escalate-below",
            "self-correct-below",
            DEFAULT_BANDS,
        )?;
        let anomaly_factor: f64 = config.parse_or("anomaly-factor", 8.0)?;
        if !(anomaly_factor.is_finite() && anomaly_factor > 1.0) {
            return Err(ConfigError::new(
                "anomaly-factor",
                format!("expected a number above 1, got {anomaly_factor}"),
            ));
        }
        let mut typical = Vec::new();
        for kind in config.children("typical") {
            for currency in config.children(&format!("typical.{kind}")) {
                let key = format!("typical.{kind}.{currency}");
                let amount: u64 = config.parse(&key)?.unwrap_or(0);
                if amount == 0 {
                    return Err(ConfigError::new(key, "a typical amount must be above zero"));
                }
                typical.push((kind.to_string(), currency.to_string(), amount));
            }
        }
        Ok(ConfidenceGate {
            bands,
            known_kinds: config
                .list("known-kinds")
                .into_iter()
                .map(str::to_string)
                .collect(),
            typical,
            anomaly_factor,
            operator_role: config.string_or("operator-role", "operator"),
            guidance: config.string_or(
                "guidance",
                "Check the answer against your sources and resubmit with higher confidence.",
            ),
        })
    }

    fn classify(&self, item: &WorkItem) -> Classification {
        let band = match self.bands.band(item.confidence) {
            Band::Escalate => "confidence.low",
            Band::SelfCorrect => "confidence.marginal",
            Band::Proceed => "confidence.high",
        };
        // Room for every label this stage can attach: no regrowth.
        let mut labels = Vec::with_capacity(3);
        labels.push(band.to_string());
        if self.unknown_kind(item) {
            labels.push(LABEL_UNKNOWN_KIND.into());
        }
        if self
            .amount_ratio(item)
            .is_some_and(|ratio| ratio > self.anomaly_factor)
        {
            labels.push(LABEL_AMOUNT.into());
        }
        // Probabilistic triggers never count as mandated rules.
        Classification {
            labels,
            rules_fired: Vec::new(),
        }
    }

    fn score(&self, item: &WorkItem, classification: &Classification) -> Assessment {
        let confidence = if item.confidence.is_nan() {
            0.0
        } else {
            item.confidence.clamp(0.0, 1.0)
        };
        // Room for every signal this stage can add: no regrowth.
        let mut signals = Vec::with_capacity(3);
        signals.push(Signal::new(
            "confidence.shortfall",
            1.0 - confidence,
            Line::new()
                .text("agent confidence ")
                .fixed(item.confidence, 2),
        ));
        if classification.has_label(LABEL_UNKNOWN_KIND) {
            signals.push(Signal::new(
                LABEL_UNKNOWN_KIND,
                0.8,
                Line::new()
                    .text("kind `")
                    .text(&item.kind)
                    .text("` is not one this deployment expects"),
            ));
        }
        if let (Some(ratio), Some(amount)) = (self.amount_ratio(item), &item.amount) {
            // Weight grows with how far past the anomaly factor the amount is.
            let weight = (ratio / (2.0 * self.anomaly_factor)).min(1.0);
            signals.push(Signal::new(
                "amount.ratio",
                weight,
                Line::new()
                    .money(amount)
                    .text(" is ")
                    .fixed(ratio, 1)
                    .text("x the typical amount"),
            ));
        }
        signals.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let risk = signals.first().map_or(0.0, |s| s.weight);
        // Confident when the agent's confidence sits well inside a band,
        // unsure on a boundary.
        let own_confidence = (0.5 + 2.0 * self.bands.margin(confidence)).min(1.0);
        Assessment {
            risk,
            confidence: own_confidence,
            signals,
        }
    }

    fn escalate(
        &self,
        item: &WorkItem,
        classification: &Classification,
        _assessment: &Assessment,
    ) -> Verdict {
        let to_operator = |code: &str, reason: Line| {
            Verdict::escalate(Tier::Operator, code, reason, TriggerKind::Probabilistic)
                .with_role(self.operator_role.clone())
        };
        if classification.has_label(LABEL_AMOUNT)
            && let (Some(ratio), Some(amount)) = (self.amount_ratio(item), &item.amount)
        {
            return to_operator(
                "anomaly.amount",
                Line::new()
                    .text(&item.kind)
                    .text(" ")
                    .money(amount)
                    .text(" is ")
                    .fixed(ratio, 1)
                    .text("x the typical amount, beyond the anomaly factor of ")
                    .display(self.anomaly_factor)
                    .text("."),
            );
        }
        if classification.has_label(LABEL_UNKNOWN_KIND) {
            return to_operator(
                "anomaly.unknown-kind",
                Line::new()
                    .text("Kind of work `")
                    .text(&item.kind)
                    .text("` is not one this deployment expects."),
            );
        }
        match self.bands.band(item.confidence) {
            Band::Escalate => to_operator(
                "confidence.low",
                Line::new()
                    .text("Agent confidence ")
                    .fixed(item.confidence, 2)
                    .text(" is below the escalation threshold ")
                    .fixed(self.bands.escalate_below, 2)
                    .text("."),
            ),
            Band::SelfCorrect => Verdict::self_correct(
                "confidence.marginal",
                Line::new()
                    .text("Agent confidence ")
                    .fixed(item.confidence, 2)
                    .text(" is below ")
                    .fixed(self.bands.self_correct_below, 2)
                    .text("; the agent should retry."),
                self.guidance.clone(),
                TriggerKind::Probabilistic,
            ),
            Band::Proceed => Verdict::proceed(
                "confidence.ok",
                Line::new()
                    .text("Agent confidence ")
                    .fixed(item.confidence, 2)
                    .text(" is within policy."),
                TriggerKind::Probabilistic,
            ),
        }
    }
}

impl ConfidenceGate {
    fn unknown_kind(&self, item: &WorkItem) -> bool {
        !self.known_kinds.is_empty() && !self.known_kinds.contains(&item.kind)
    }

    /// The amount as a multiple of the typical amount for its kind and currency.
    fn amount_ratio(&self, item: &WorkItem) -> Option<f64> {
        let amount = item.amount.as_ref()?;
        let (_, _, typical) = self
            .typical
            .iter()
            .find(|(kind, currency, _)| *kind == item.kind && *currency == amount.currency)?;
        Some(amount.minor.unsigned_abs() as f64 / *typical as f64)
    }
}

handoff_sdk::export_policy!(ConfidenceGate);
// Stages keep nothing they allocate (no lazy state), so every evaluation's
// memory is reclaimed at once: see `handoff_sdk::scratch`.
handoff_sdk::scratch_allocator!();

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ConfidenceGate {
        ConfidenceGate::configure(&Config::from_pairs([
            ("known-kinds.0", "refund"),
            ("typical.refund.USD", "100"),
            ("anomaly-factor", "4"),
        ]))
        .unwrap()
    }

    fn item(kind: &str, confidence: f64, minor: Option<i64>) -> WorkItem {
        WorkItem {
            id: "1".into(),
            kind: kind.into(),
            agent: "a".into(),
            text: "t".into(),
            confidence,
            amount: minor.map(|minor| Money {
                minor,
                currency: "USD".into(),
            }),
            segment: None,
            attempts: 0,
            attributes: vec![],
        }
    }

    #[test]
    fn bands_and_anomalies_natively() {
        let p = policy();
        assert_eq!(
            p.evaluate(&item("refund", 0.5, None)).2.tier,
            Tier::Operator
        );
        let marginal = p.evaluate(&item("refund", 0.7, None)).2;
        assert_eq!(marginal.tier, Tier::SelfCorrect);
        assert!(marginal.guidance.is_some());
        assert_eq!(
            p.evaluate(&item("refund", 0.9, Some(400))).2.tier,
            Tier::None
        );
        assert_eq!(
            p.evaluate(&item("refund", 0.9, Some(401))).2.reason_code,
            "anomaly.amount"
        );
        assert_eq!(
            p.evaluate(&item("payout", 0.9, None)).2.reason_code,
            "anomaly.unknown-kind"
        );
    }

    #[test]
    fn own_confidence_is_lowest_on_a_boundary() {
        let p = policy();
        let on_edge = p.evaluate(&item("refund", 0.6, None)).1.confidence;
        let clear = p.evaluate(&item("refund", 0.95, None)).1.confidence;
        assert!(on_edge < clear, "{on_edge} vs {clear}");
        assert_eq!(on_edge, 0.5);
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let err = ConfidenceGate::configure(&Config::from_pairs([("anomaly-factor", "0.5")]))
            .unwrap_err();
        assert_eq!(err.key, "anomaly-factor");
        let err = ConfidenceGate::configure(&Config::from_pairs([("typical.refund.USD", "0")]))
            .unwrap_err();
        assert_eq!(err.key, "typical.refund.USD");
    }
}
