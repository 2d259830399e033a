//! Confidence bands: the core of every probabilistic trigger.

use crate::{Config, ConfigError};

/// Where an agent's confidence falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// Below `escalate_below`: a human must look.
    Escalate,
    /// In `[escalate_below, self_correct_below)`: the agent retries with guidance.
    SelfCorrect,
    /// At or above `self_correct_below`: the agent proceeds.
    Proceed,
}

/// Two thresholds splitting [0, 1] into three bands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceBands {
    /// Confidence below this escalates to a human.
    pub escalate_below: f64,
    /// Confidence below this (and not below `escalate_below`) self-corrects.
    pub self_correct_below: f64,
}

impl ConfidenceBands {
    /// Reads the two thresholds from `escalate_key` and `self_correct_key`,
    /// with defaults, and checks they are ordered within [0, 1].
    pub fn from_config(
        config: &Config,
        escalate_key: &str,
        self_correct_key: &str,
        defaults: ConfidenceBands,
    ) -> Result<Self, ConfigError> {
        let escalate_below = config.unit_interval_or(escalate_key, defaults.escalate_below)?;
        let self_correct_below =
            config.unit_interval_or(self_correct_key, defaults.self_correct_below)?;
        if self_correct_below < escalate_below {
            return Err(ConfigError::new(
                self_correct_key,
                format!(
                    "must be at least `{escalate_key}` ({escalate_below}), got {self_correct_below}"
                ),
            ));
        }
        Ok(ConfidenceBands {
            escalate_below,
            self_correct_below,
        })
    }

    /// The band of `confidence`. A NaN confidence escalates: it is never
    /// evidence that the agent may proceed.
    pub fn band(&self, confidence: f64) -> Band {
        if confidence.is_nan() || confidence < self.escalate_below {
            Band::Escalate
        } else if confidence < self.self_correct_below {
            Band::SelfCorrect
        } else {
            Band::Proceed
        }
    }

    /// Distance from `confidence` to the nearest threshold: how clear-cut the
    /// band is. Zero on a boundary.
    pub fn margin(&self, confidence: f64) -> f64 {
        if confidence.is_nan() {
            return 0.0;
        }
        (confidence - self.escalate_below)
            .abs()
            .min((confidence - self.self_correct_below).abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANDS: ConfidenceBands = ConfidenceBands {
        escalate_below: 0.6,
        self_correct_below: 0.75,
    };

    #[test]
    fn bands_split_at_the_thresholds() {
        assert_eq!(BANDS.band(0.59), Band::Escalate);
        assert_eq!(BANDS.band(0.6), Band::SelfCorrect);
        assert_eq!(BANDS.band(0.74), Band::SelfCorrect);
        assert_eq!(BANDS.band(0.75), Band::Proceed);
        assert_eq!(BANDS.band(f64::NAN), Band::Escalate);
    }

    #[test]
    fn misordered_thresholds_are_refused() {
        let config = Config::from_pairs([("low", "0.8"), ("high", "0.7")]);
        let err = ConfidenceBands::from_config(&config, "low", "high", BANDS).unwrap_err();
        assert_eq!(err.key, "high");
    }
}
