//! Authorization limits per currency, the commonest compliance trigger.
//!
//! Limits are in minor units and compared as integers: no floating point ever
//! decides whether a refund needs a human.

use std::collections::BTreeMap;

use crate::{Config, ConfigError, Line, Money, Tier};

/// The limits for one currency. Amounts strictly above a limit breach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyLimits {
    /// Above this many minor units an operator must approve.
    pub operator: Option<u64>,
    /// Above this many minor units an executive must approve.
    pub executive: Option<u64>,
}

/// Operator and executive limits per currency for one kind of work, read
/// from configuration keys `<prefix>.<CURRENCY>.operator` and
/// `<prefix>.<CURRENCY>.executive`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierLimits {
    by_currency: BTreeMap<String, CurrencyLimits>,
}

/// The outcome of checking an amount against [`TierLimits`].
#[derive(Debug, Clone, PartialEq)]
pub enum LimitBreach {
    /// Within every limit. `share` is the amount as a fraction of the lowest
    /// limit (1.0 means exactly at it), for scoring how close it came.
    Within { share: f64 },
    /// Above the limit for `tier`.
    Exceeded { tier: Tier, limit: u64 },
    /// There are limits for this kind of work, but none in this currency, so
    /// the amount cannot be authorized automatically.
    UnknownCurrency,
}

impl TierLimits {
    /// Reads the limits under `prefix`, checking that each is a non-negative
    /// integer and that an executive limit is above its operator limit.
    pub fn from_config(config: &Config, prefix: &str) -> Result<Self, ConfigError> {
        let mut by_currency = BTreeMap::new();
        for currency in config.children(prefix) {
            let key = |tier: &str| format!("{prefix}.{currency}.{tier}");
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ConfigError::new(
                    format!("{prefix}.{currency}"),
                    "currency must be a three-letter upper-case ISO 4217 code",
                ));
            }
            let operator: Option<u64> = config.parse(&key("operator"))?;
            let executive: Option<u64> = config.parse(&key("executive"))?;
            if let (Some(op), Some(exec)) = (operator, executive)
                && exec <= op
            {
                return Err(ConfigError::new(
                    key("executive"),
                    format!("executive limit {exec} must be above the operator limit {op}"),
                ));
            }
            if operator.is_none() && executive.is_none() {
                return Err(ConfigError::new(
                    format!("{prefix}.{currency}"),
                    "expected an `operator` or `executive` limit",
                ));
            }
            by_currency.insert(
                currency.to_string(),
                CurrencyLimits {
                    operator,
                    executive,
                },
            );
        }
        Ok(TierLimits { by_currency })
    }

    /// Whether any limit is configured.
    pub fn is_empty(&self) -> bool {
        self.by_currency.is_empty()
    }

    /// The limits for `currency`, if configured.
    pub fn for_currency(&self, currency: &str) -> Option<CurrencyLimits> {
        self.by_currency.get(currency).copied()
    }

    /// Checks `amount` (its absolute value: money moving either way counts).
    pub fn check(&self, amount: &Money) -> LimitBreach {
        let Some(limits) = self.for_currency(&amount.currency) else {
            return LimitBreach::UnknownCurrency;
        };
        let value = amount.minor.unsigned_abs();
        if let Some(limit) = limits.executive.filter(|&limit| value > limit) {
            return LimitBreach::Exceeded {
                tier: Tier::Executive,
                limit,
            };
        }
        if let Some(limit) = limits.operator.filter(|&limit| value > limit) {
            return LimitBreach::Exceeded {
                tier: Tier::Operator,
                limit,
            };
        }
        let lowest = limits.operator.or(limits.executive).unwrap_or(u64::MAX);
        let share = if lowest == 0 {
            1.0
        } else {
            value as f64 / lowest as f64
        };
        LimitBreach::Within { share }
    }
}

/// Formats minor units for people: `125000` USD is `1250.00 USD`.
pub fn format_money(amount: &Money) -> String {
    Line::new().money(amount).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Money {
        Money {
            minor,
            currency: "USD".into(),
        }
    }

    fn limits() -> TierLimits {
        TierLimits::from_config(
            &Config::from_pairs([
                ("limits.refund.USD.operator", "50000"),
                ("limits.refund.USD.executive", "500000"),
            ]),
            "limits.refund",
        )
        .unwrap()
    }

    #[test]
    fn below_at_and_above_each_limit() {
        let limits = limits();
        assert!(matches!(
            limits.check(&usd(49_999)),
            LimitBreach::Within { .. }
        ));
        assert_eq!(
            limits.check(&usd(50_000)),
            LimitBreach::Within { share: 1.0 }
        );
        assert_eq!(
            limits.check(&usd(50_001)),
            LimitBreach::Exceeded {
                tier: Tier::Operator,
                limit: 50_000
            }
        );
        assert_eq!(
            limits.check(&usd(500_000)),
            LimitBreach::Exceeded {
                tier: Tier::Operator,
                limit: 50_000
            }
        );
        assert_eq!(
            limits.check(&usd(500_001)),
            LimitBreach::Exceeded {
                tier: Tier::Executive,
                limit: 500_000
            }
        );
        assert_eq!(
            limits.check(&usd(-500_001)),
            LimitBreach::Exceeded {
                tier: Tier::Executive,
                limit: 500_000
            }
        );
    }

    #[test]
    fn unknown_currency_cannot_be_authorized() {
        let amount = Money {
            minor: 1,
            currency: "JPY".into(),
        };
        assert_eq!(limits().check(&amount), LimitBreach::UnknownCurrency);
    }

    #[test]
    fn bad_limits_are_refused_by_key() {
        let inverted = Config::from_pairs([("l.USD.operator", "500"), ("l.USD.executive", "100")]);
        assert_eq!(
            TierLimits::from_config(&inverted, "l").unwrap_err().key,
            "l.USD.executive"
        );
        let lower = Config::from_pairs([("l.usd.operator", "500")]);
        assert_eq!(
            TierLimits::from_config(&lower, "l").unwrap_err().key,
            "l.usd"
        );
        let negative = Config::from_pairs([("l.USD.operator", "-5")]);
        assert_eq!(
            TierLimits::from_config(&negative, "l").unwrap_err().key,
            "l.USD.operator"
        );
    }

    #[test]
    fn formats_minor_units() {
        assert_eq!(format_money(&usd(125_000)), "1250.00 USD");
        assert_eq!(format_money(&usd(-5)), "-0.05 USD");
    }
}
