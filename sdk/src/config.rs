//! The operator's configuration for one plugin, as the policy sees it.
//!
//! The host hands every value over as a string under a dotted key (nested
//! manifest tables become `a.b.c`, array elements `list.0`, `list.1`...).
//! `Config` turns those into typed values and reports a bad one by key, so an
//! operator reading the load error knows exactly which line to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A bad or missing configuration value. Displayed as
/// ``config key `limits.refund.USD.operator`: expected an integer, got "5O0"``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The dotted key at fault.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config key `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// A snapshot of one plugin's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// A configuration from explicit pairs: how unit tests and native
    /// benchmarks configure a policy without a host.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Config {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Reads every key the host set for this plugin.
    #[cfg(target_family = "wasm")]
    pub(crate) fn from_host() -> Self {
        use crate::bindings::handoff::policy::host;
        Config {
            values: host::config_keys()
                .into_iter()
                .filter_map(|key| host::config_get(&key).map(|value| (key, value)))
                .collect(),
        }
    }

    /// The raw string value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// `key` parsed as `T`, or `None` when it is not set.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
    {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw.trim().parse::<T>().map(Some).map_err(|_| {
                ConfigError::new(
                    key,
                    format!("expected {}, got {raw:?}", type_description::<T>()),
                )
            }),
        }
    }

    /// `key` parsed as `T`, or `default` when it is not set.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// `key` as a probability or confidence in [0, 1], or `default`.
    pub fn unit_interval_or(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        let value: f64 = self.parse_or(key, default)?;
        if (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                key,
                format!("expected a number between 0 and 1, got {value}"),
            ))
        }
    }

    /// `key` as a string, or `default`.
    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    /// The elements of the array at `key` (`key.0`, `key.1`, ... in order).
    /// A plain string value at `key` counts as a one-element list.
    pub fn list(&self, key: &str) -> Vec<&str> {
        if let Some(single) = self.get(key) {
            return vec![single];
        }
        (0..)
            .map_while(|index| self.get(&format!("{key}.{index}")))
            .collect()
    }

    /// The distinct next key segments under `prefix`: for keys
    /// `limits.refund.USD.operator` and `limits.payout.EUR.operator`,
    /// `children("limits")` is `["payout", "refund"]`.
    pub fn children(&self, prefix: &str) -> Vec<&str> {
        let lead = format!("{prefix}.");
        let mut names: Vec<&str> = self
            .values
            .range(lead.clone()..)
            .take_while(|(key, _)| key.starts_with(&lead))
            .filter_map(|(key, _)| key[lead.len()..].split('.').next())
            .collect();
        names.dedup();
        names
    }

    /// Every key, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

fn type_description<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    match name {
        "f64" | "f32" => "a number",
        "bool" => "true or false",
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        _ => "a valid value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        Config::from_pairs([
            ("limits.refund.USD.operator", "50000"),
            ("limits.refund.EUR.operator", "40000"),
            ("limits.payout.USD.operator", "1000"),
            ("phrases.legal.match.0", "lawyer"),
            ("phrases.legal.match.1", "sue"),
            ("threshold", "0.6"),
            ("bad", "1.5"),
        ])
    }

    #[test]
    fn parses_typed_values_and_names_the_key_on_error() {
        let config = sample();
        assert_eq!(
            config.parse::<i64>("limits.refund.USD.operator"),
            Ok(Some(50000))
        );
        assert_eq!(config.parse::<i64>("missing"), Ok(None));
        let err = config.parse::<i64>("threshold").unwrap_err();
        assert_eq!(err.key, "threshold");
        assert!(err.to_string().contains("expected an integer"), "{err}");
    }

    #[test]
    fn unit_interval_rejects_out_of_range() {
        let config = sample();
        assert_eq!(config.unit_interval_or("threshold", 0.1), Ok(0.6));
        assert_eq!(config.unit_interval_or("unset", 0.1), Ok(0.1));
        assert!(config.unit_interval_or("bad", 0.1).is_err());
    }

    #[test]
    fn lists_and_children_follow_the_flattening_rules() {
        let config = sample();
        assert_eq!(config.list("phrases.legal.match"), vec!["lawyer", "sue"]);
        assert_eq!(config.list("threshold"), vec!["0.6"]);
        assert!(config.list("nothing").is_empty());
        assert_eq!(config.children("limits"), vec!["payout", "refund"]);
        assert_eq!(config.children("limits.refund"), vec!["EUR", "USD"]);
        assert!(config.children("none").is_empty());
    }
}
