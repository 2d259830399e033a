//! Tiers and trigger kinds, as they appear in JSON.

crate::named_enum! {
    /// Who must act on a unit of work. Ordered: a higher tier wins.
    #[derive(PartialOrd, Ord)]
    pub enum Tier ("tier") {
        /// The agent proceeds.
        None,
        /// Level 1: automated retry with guidance.
        SelfCorrect,
        /// Level 2: a specialised human operator with full context.
        Operator,
        /// Level 3: executive oversight for systemic risk.
        Executive,
    }
}

impl Tier {
    /// The escalation level, 0 to 3.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// Whether a human must act: `operator` or `executive`.
    pub fn needs_human(self) -> bool {
        self >= Tier::Operator
    }
}

crate::named_enum! {
    /// Whether a mandated rule or a probabilistic judgement drove a verdict.
    pub enum TriggerKind ("trigger kind") {
        /// A compliance-mandated rule.
        Rule,
        /// A judgement from confidence and anomaly signals.
        Probabilistic,
    }
}
