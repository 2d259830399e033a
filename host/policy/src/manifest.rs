//! Plugin manifests: the operator's sidecar `NAME.toml` beside `NAME.wasm`.
//!
//! The manifest is where an operator turns a generic policy into their
//! policy: whether it runs, in which order, and its configuration values.
//! Unknown keys are refused so that a typo never silently changes nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

use handoff_model::{FailureMode, Tier, WorkItem};

use crate::limits::Limits;

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Whether the plugin is evaluated. A disabled plugin is still validated
    /// at load, so enabling it later cannot surprise anyone.
    pub enabled: bool,
    /// Evaluation order, lowest first; ties break by plugin name. Order
    /// decides which plugin drives a decision when tiers are equal.
    pub order: i32,
    /// Configuration values, flattened to dotted keys, as the plugin reads
    /// them through the host's `config-get`.
    pub config: BTreeMap<String, String>,
    /// What a fault of this plugin turns into.
    pub failure_mode: FailureMode,
    /// What one evaluation may consume.
    pub limits: Limits,
    /// Whether evaluations reuse a warm instance or get a fresh one.
    pub instance_reuse: InstanceReuse,
    /// With warm reuse, how many evaluations an instance serves before it
    /// is replaced, bounding what a slow leak inside a plugin can build up.
    pub recycle_after: u64,
    /// With warm reuse, the share of evaluations also run on a fresh
    /// instance: a different answer is a `nondeterministic` fault.
    pub fresh_sample: f64,
    /// Self-tests run at every load: a version whose cases fail never serves.
    pub fixtures: Vec<Fixture>,
    /// Where a missed deadline of a handoff this plugin drove escalates to
    /// (`escalation-role`): its own specialist at the executive tier, for
    /// example `privacy-executive`. None: the host's executive role.
    pub escalation_role: Option<String>,
    /// Which configuration key holds the confidence threshold of each
    /// probabilistic trigger (`[calibrate]`, trigger code = config key): what
    /// the feedback report names when it suggests a new value, so that a
    /// suggestion is a change someone can make, not a number to interpret.
    pub calibrate: BTreeMap<String, String>,
    /// The policy this file is a deliberate instance of (`policy`): the
    /// same component under a second file name with its own configuration.
    /// It must match the component's own name, and it exempts the file
    /// from the one-policy-one-file rule.
    pub policy: Option<String>,
    /// Whether the plugin's verdicts decide (`enforce`) or are only
    /// recorded beside the decision for a pilot (`shadow`).
    pub mode: Mode,
}

/// Whether a plugin decides or is piloted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Its verdicts take part in every decision.
    #[default]
    Enforce,
    /// It runs on live traffic beside the enforcing set: its verdicts are
    /// recorded in each decision, marked as shadow, and never drive it; its
    /// faults never touch the item; its cost is metered apart.
    Shadow,
}

/// One self-test case: an item and the verdict this plugin must give it.
///
/// Written in the manifest as `[[fixture]]` with `name`, `expect` (a tier),
/// an optional `expect-reason-code`, and an `item` table. The item's `id`
/// defaults to the fixture name, `agent` to `fixture` and `text` to empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    /// Names the case in every failure message.
    pub name: String,
    /// The item.
    pub item: WorkItem,
    /// The tier this plugin must return.
    pub expect: Tier,
    /// The reason code this plugin must return, when the author pinned it.
    pub expect_reason_code: Option<String>,
}

/// How instances are reused across evaluations of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceReuse {
    /// One instance per worker thread serves many evaluations (up to
    /// `recycle-after`). The fast default for trusted, pure policies.
    #[default]
    Warm,
    /// A new instance for every evaluation: nothing a plugin keeps in memory
    /// can influence the next item. Costs an instantiation per item.
    Fresh,
}

/// Default for `recycle-after`.
pub const DEFAULT_RECYCLE_AFTER: u64 = 10_000;

/// Default for `fresh-sample`: one warm evaluation in a thousand.
pub const DEFAULT_FRESH_SAMPLE: f64 = 0.001;

impl Default for Manifest {
    /// A plugin without a manifest: enabled, order 0, no configuration.
    fn default() -> Self {
        Manifest {
            enabled: true,
            order: 0,
            config: BTreeMap::new(),
            failure_mode: FailureMode::default(),
            limits: Limits::default(),
            instance_reuse: InstanceReuse::default(),
            recycle_after: DEFAULT_RECYCLE_AFTER,
            fresh_sample: DEFAULT_FRESH_SAMPLE,
            fixtures: Vec::new(),
            escalation_role: None,
            calibrate: BTreeMap::new(),
            policy: None,
            mode: Mode::Enforce,
        }
    }
}

/// Why a manifest was refused. The message is shown with the file name.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML, or a key of the wrong type or unknown.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A value TOML accepts but the host cannot use.
    #[error("key `{key}`: {reason}")]
    Config {
        /// The dotted key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    #[serde(default = "default_enabled")]
    enabled: bool,
    #[serde(default)]
    order: i32,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    failure_mode: FailureMode,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    instance_reuse: InstanceReuse,
    #[serde(default = "default_recycle_after")]
    recycle_after: u64,
    #[serde(default = "default_fresh_sample")]
    fresh_sample: f64,
    #[serde(default)]
    fixture: Vec<RawFixture>,
    #[serde(default)]
    escalation_role: Option<String>,
    #[serde(default)]
    calibrate: BTreeMap<String, String>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    mode: Mode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFixture {
    name: String,
    expect: Tier,
    #[serde(default)]
    expect_reason_code: Option<String>,
    item: toml::Table,
}

impl RawFixture {
    fn into_fixture(self, index: usize) -> Result<Fixture, ManifestError> {
        let invalid = |reason: String| ManifestError::Config {
            key: format!("fixture.{index}.item"),
            reason: format!("fixture `{}`: {reason}", self.name),
        };
        let mut fields = serde_json::Map::new();
        for (key, value) in &self.item {
            let value = serde_json::to_value(value).map_err(|e| invalid(e.to_string()))?;
            fields.insert(key.clone(), value);
        }
        let item = case_item(&self.name, fields).map_err(invalid)?;
        Ok(Fixture {
            item,
            expect: self.expect,
            expect_reason_code: self.expect_reason_code,
            name: self.name,
        })
    }
}

/// A case's item: `id` defaults to the case name, `agent` to `fixture`,
/// `text` to empty.
fn case_item(
    name: &str,
    given: serde_json::Map<String, serde_json::Value>,
) -> Result<WorkItem, String> {
    let mut fields = serde_json::Map::new();
    fields.insert("id".into(), name.into());
    fields.insert("agent".into(), "fixture".into());
    fields.insert("text".into(), "".into());
    fields.extend(given);
    WorkItem::from_json(&serde_json::Value::Object(fields).to_string()).map_err(|e| e.to_string())
}

/// One line of a side file of cases, `NAME.cases.jsonl`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCase {
    name: String,
    expect: Tier,
    #[serde(default)]
    expect_reason_code: Option<String>,
    item: serde_json::Map<String, serde_json::Value>,
}

/// The most cases one side file may hold.
pub const MAX_SIDE_CASES: usize = 100_000;

/// Parses a side file of cases: one JSON object per line with `name`,
/// `expect`, an optional `expect-reason-code` and an `item`, as a
/// `[[fixture]]` has. `handoff test` runs them with the manifest's fixtures;
/// a load does not, so a large corpus never slows a reload. A bad line is
/// named by its number.
pub fn parse_cases(text: &str) -> Result<Vec<Fixture>, String> {
    let mut cases = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = |reason: String| format!("line {}: {reason}", index + 1);
        if cases.len() == MAX_SIDE_CASES {
            return Err(at(format!("more than {MAX_SIDE_CASES} cases")));
        }
        let raw: RawCase = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        if !names.insert(raw.name.clone()) {
            return Err(at(format!("two cases are called `{}`", raw.name)));
        }
        let item =
            case_item(&raw.name, raw.item).map_err(|e| at(format!("case `{}`: {e}", raw.name)))?;
        cases.push(Fixture {
            item,
            expect: raw.expect,
            expect_reason_code: raw.expect_reason_code,
            name: raw.name,
        });
    }
    Ok(cases)
}

fn default_recycle_after() -> u64 {
    DEFAULT_RECYCLE_AFTER
}

fn default_fresh_sample() -> f64 {
    DEFAULT_FRESH_SAMPLE
}

fn default_enabled() -> bool {
    true
}

impl Manifest {
    /// Parses a manifest from TOML text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text)?;
        let mut config = BTreeMap::new();
        flatten("", &toml::Value::Table(raw.config), &mut config)?;
        raw.limits
            .validate()
            .map_err(|(key, reason)| ManifestError::Config { key, reason })?;
        if raw.recycle_after == 0 {
            return Err(ManifestError::Config {
                key: "recycle-after".into(),
                reason: "must be at least 1".into(),
            });
        }
        if !(0.0..=1.0).contains(&raw.fresh_sample) {
            return Err(ManifestError::Config {
                key: "fresh-sample".into(),
                reason: format!("must be between 0 and 1, got {}", raw.fresh_sample),
            });
        }
        if let Some(role) = &raw.escalation_role
            && !crate::output_check::is_code(role)
        {
            return Err(ManifestError::Config {
                key: "escalation-role".into(),
                reason: format!(
                    "a role is lower-case letters, digits, `-`, `_` and `.`, starting with a \
                     letter or digit, at most 128 bytes; got {role:?}"
                ),
            });
        }
        for (trigger, key) in &raw.calibrate {
            let threshold = config.get(key).and_then(|value| value.parse::<f64>().ok());
            if !threshold.is_some_and(|t| (0.0..=1.0).contains(&t)) {
                return Err(ManifestError::Config {
                    key: format!("calibrate.{trigger}"),
                    reason: format!(
                        "names config key `{key}`, which must be a confidence threshold in \
                         [config]: a number between 0 and 1"
                    ),
                });
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut fixtures = Vec::with_capacity(raw.fixture.len());
        for (index, fixture) in raw.fixture.into_iter().enumerate() {
            if !names.insert(fixture.name.clone()) {
                return Err(ManifestError::Config {
                    key: format!("fixture.{index}.name"),
                    reason: format!("two fixtures are called `{}`", fixture.name),
                });
            }
            fixtures.push(fixture.into_fixture(index)?);
        }
        Ok(Manifest {
            enabled: raw.enabled,
            order: raw.order,
            config,
            failure_mode: raw.failure_mode,
            limits: raw.limits,
            instance_reuse: raw.instance_reuse,
            recycle_after: raw.recycle_after,
            fresh_sample: raw.fresh_sample,
            fixtures,
            escalation_role: raw.escalation_role,
            calibrate: raw.calibrate,
            policy: raw.policy,
            mode: raw.mode,
        })
    }
}

/// Flattens nested tables to dotted keys and arrays to `key.0`, `key.1`...,
/// rendering every scalar as the string the plugin will parse.
fn flatten(
    prefix: &str,
    value: &toml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ManifestError> {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                if key.is_empty() || key.contains('.') {
                    return Err(ManifestError::Config {
                        key: join(key),
                        reason:
                            "keys must be non-empty and must not contain `.`; nest tables instead"
                                .into(),
                    });
                }
                flatten(&join(key), value, out)?;
            }
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten(&join(&index.to_string()), item, out)?;
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        toml::Value::Integer(i) => {
            out.insert(prefix.to_string(), i.to_string());
        }
        toml::Value::Float(f) => {
            out.insert(prefix.to_string(), f.to_string());
        }
        toml::Value::Boolean(b) => {
            out.insert(prefix.to_string(), b.to_string());
        }
        toml::Value::Datetime(d) => {
            out.insert(prefix.to_string(), d.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_tables_and_arrays() {
        let manifest = Manifest::parse(
            r#"
            order = 5
            [config]
            threshold = 0.5
            kinds = ["a", "b"]
            [config.limits.refund.USD]
            operator = 50_000
            "#,
        )
        .unwrap();
        assert!(manifest.enabled);
        assert_eq!(manifest.order, 5);
        let get = |k: &str| manifest.config.get(k).map(String::as_str);
        assert_eq!(get("threshold"), Some("0.5"));
        assert_eq!(get("kinds.1"), Some("b"));
        assert_eq!(get("limits.refund.USD.operator"), Some("50000"));
    }

    #[test]
    fn parses_fixtures_with_item_defaults() {
        let manifest = Manifest::parse(
            r#"
            [[fixture]]
            name = "big refund"
            expect = "operator"
            expect-reason-code = "auth-limit.exceeded"
            item = { kind = "refund", confidence = 0.9, amount = { minor = 90_000, currency = "USD" } }
            "#,
        )
        .unwrap();
        let fixture = &manifest.fixtures[0];
        assert_eq!(fixture.expect, Tier::Operator);
        assert_eq!(fixture.item.id, "big refund");
        assert_eq!(fixture.item.amount.as_ref().map(|m| m.minor), Some(90_000));
        assert_eq!(
            fixture.expect_reason_code.as_deref(),
            Some("auth-limit.exceeded")
        );
    }

    #[test]
    fn refuses_fixtures_with_bad_items_naming_them() {
        let missing = Manifest::parse(
            "[[fixture]]\nname = \"no kind\"\nexpect = \"none\"\nitem = { confidence = 0.9 }",
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("no kind") && missing.contains("kind"),
            "{missing}"
        );
        let range = Manifest::parse(
            "[[fixture]]\nname = \"sure\"\nexpect = \"none\"\nitem = { kind = \"reply\", confidence = 3.0 }",
        )
        .unwrap_err()
        .to_string();
        assert!(
            range.contains("sure") && range.contains("confidence"),
            "{range}"
        );
        let tier = Manifest::parse("[[fixture]]\nname = \"x\"\nexpect = \"boss\"\nitem = {}")
            .unwrap_err()
            .to_string();
        assert!(tier.contains("boss"), "{tier}");
    }

    #[test]
    fn a_calibrated_key_must_be_a_threshold_in_config() {
        let good = Manifest::parse(
            "[config]\nescalate-below = 0.6\n[calibrate]\nconfidence = \"escalate-below\"\n",
        )
        .unwrap();
        assert_eq!(good.calibrate["confidence"], "escalate-below");
        for bad in [
            "[calibrate]\nconfidence = \"escalate-below\"\n",
            "[config]\nescalate-below = \"low\"\n[calibrate]\nconfidence = \"escalate-below\"\n",
            "[config]\nescalate-below = 6\n[calibrate]\nconfidence = \"escalate-below\"\n",
        ] {
            let error = Manifest::parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("calibrate.confidence") && error.contains("escalate-below"),
                "{error}"
            );
        }
    }

    #[test]
    fn an_escalation_role_must_be_a_role() {
        let manifest = Manifest::parse("escalation-role = \"privacy-executive\"\n").unwrap();
        assert_eq!(
            manifest.escalation_role.as_deref(),
            Some("privacy-executive")
        );
        assert_eq!(Manifest::default().escalation_role, None);
        for bad in ["\"\"", "\"Privacy Exec\"", "\"a\\u001b[31m\""] {
            let error = Manifest::parse(&format!("escalation-role = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("escalation-role"), "{error}");
        }
    }

    #[test]
    fn refuses_unknown_keys_and_wrong_types() {
        let unknown = Manifest::parse("enabld = true").unwrap_err().to_string();
        assert!(unknown.contains("enabld"), "{unknown}");
        let wrong = Manifest::parse("order = \"first\"")
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("order"), "{wrong}");
        let dotted = Manifest::parse("[config]\n\"a.b\" = 1")
            .unwrap_err()
            .to_string();
        assert!(dotted.contains("a.b"), "{dotted}");
    }
}
