//! Deterministic text rules for regulatory and safety triggers.
//!
//! Real requests rarely use the exact phrase a rule author thought of:
//! "Under GDPR I demand that you delete all of my personal data immediately"
//! contains no `delete my data`. Rules here match normalised words (see
//! [`Words`]) with phrases, prefixes, alternatives, proximity and boolean
//! groups (see [`Rule`] for the syntax), and still never backtrack, so a
//! compliance trigger stays fast and predictable on hostile text.

mod index;
mod normalize;
mod rule;

pub(crate) use index::{Index, Vocabulary};
pub use normalize::Words;
pub(crate) use rule::Compiled;
pub use rule::{MAX_NEAR, MIN_PREFIX, Rule, RuleError};
