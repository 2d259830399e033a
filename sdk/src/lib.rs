//! The Rust SDK for Handoff routing policies.
//!
//! A policy is a plain Rust type implementing [`Policy`]; one
//! [`export_policy!`] line turns it into a `wasm32-wasip2` component of the
//! `handoff:policy` world. Because the trait methods take plain Rust values,
//! the same logic is unit-tested natively with `cargo test` and benchmarked
//! natively as the baseline the sandbox is measured against.
//!
//! ```
//! use handoff_sdk::prelude::*;
//!
//! /// Sends every refund to an operator.
//! struct RefundsNeedHumans {
//!     role: String,
//! }
//!
//! impl Policy for RefundsNeedHumans {
//!     fn info() -> PolicyInfo {
//!         PolicyInfo {
//!             name: "refunds-need-humans".into(),
//!             version: "1.0.0".into(),
//!             description: "Every refund is approved by a person.".into(),
//!             triggers: vec![TriggerInfo::new("refund", TriggerKind::Rule, "Any refund.")],
//!         }
//!     }
//!
//!     fn configure(config: &Config) -> Result<Self, ConfigError> {
//!         Ok(RefundsNeedHumans { role: config.string_or("role", "refunds") })
//!     }
//!
//!     fn classify(&self, item: &WorkItem) -> Classification {
//!         let refund = item.kind == "refund";
//!         Classification {
//!             labels: vec![format!("kind.{}", item.kind)],
//!             rules_fired: if refund { vec!["refund".into()] } else { vec![] },
//!         }
//!     }
//!
//!     fn score(&self, _item: &WorkItem, c: &Classification) -> Assessment {
//!         let risk = if c.rule_fired() { 1.0 } else { 0.0 };
//!         Assessment { risk, confidence: 1.0, signals: vec![] }
//!     }
//!
//!     fn escalate(&self, _item: &WorkItem, c: &Classification, _a: &Assessment) -> Verdict {
//!         if c.rule_fired() {
//!             Verdict::escalate(Tier::Operator, "refund.review", "Refunds need a person.", TriggerKind::Rule)
//!                 .with_role(self.role.clone())
//!         } else {
//!             Verdict::proceed("refund.none", "Not a refund.", TriggerKind::Rule)
//!         }
//!     }
//! }
//!
//! handoff_sdk::export_policy!(RefundsNeedHumans);
//!
//! // The same logic runs natively, with no WebAssembly involved:
//! let policy = RefundsNeedHumans::configure(&Config::from_pairs([("role", "finance")])).unwrap();
//! # let item = WorkItem { id: "1".into(), kind: "refund".into(), agent: "a".into(), text: String::new(),
//! #     confidence: 0.9, amount: None, segment: None, attempts: 0, attributes: vec![] };
//! let (_, _, verdict) = policy.evaluate(&item);
//! assert_eq!(verdict.tier, Tier::Operator);
//! assert_eq!(verdict.role.as_deref(), Some("finance"));
//! ```

// The generated bindings name this crate by its public path, as policy crates see it.
extern crate self as handoff_sdk;

pub mod confidence;
mod config;
pub mod line;
pub mod log;
pub mod money;
pub mod phrases;
mod policy;
pub mod scratch;
pub mod text;
mod types;

pub use config::{Config, ConfigError};
pub use line::Line;
pub use policy::Policy;
pub use types::{
    Assessment, Classification, Money, PolicyInfo, Signal, Tier, TriggerInfo, TriggerKind, Verdict,
    WorkItem,
};

/// Everything a policy author usually needs, in one import.
pub mod prelude {
    pub use crate::confidence::{Band, ConfidenceBands};
    pub use crate::money::{LimitBreach, TierLimits};
    pub use crate::phrases::{PhraseError, PhraseSet};
    pub use crate::{
        Assessment, Classification, Config, ConfigError, Line, Money, Policy, PolicyInfo, Signal,
        Tier, TriggerInfo, TriggerKind, Verdict, WorkItem,
    };
}

/// Generated bindings for the `handoff:policy` world. Public only so that
/// [`export_policy!`] can reach it from the policy's crate.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/0.2.0",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "handoff_sdk::bindings",
        additional_derives: [PartialEq],
        runtime_path: "handoff_sdk::__private::wit_bindgen::rt",
    });
}

/// Support for [`export_policy!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::__export_policy_world as export_world;
    pub use crate::bindings::Guest;
    pub use crate::bindings::handoff::policy::types::Evaluation;
    pub use crate::bindings::handoff::policy::types::WorkItem as WireItem;
    pub use crate::policy::exports;
    pub use wit_bindgen;
}
