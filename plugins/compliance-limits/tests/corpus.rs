//! The reference phrase rules measured on a corpus of realistic phrasings.
//!
//! `corpus/<class>.txt` holds texts that must fire the class (`+`) and
//! near-misses that must not (`-`). The rules are read from the shipped
//! `policy.toml` through the host's own manifest parser, so what is measured
//! is what serves. Run with `--nocapture` to see the table:
//! `cargo test -p compliance-limits --test corpus -- --nocapture`.

use std::path::Path;

use compliance_limits::{ComplianceLimits, Rule};
use handoff_sdk::prelude::*;

/// On phrasings nobody tuned against, below this recall a class misses too
/// many real requests, and above this false-positive rate operators learn
/// to ignore it.
const MIN_HELD_OUT_RECALL: f64 = 0.70;
const MAX_HELD_OUT_FALSE_POSITIVES: f64 = 0.25;

struct Figures {
    class: String,
    positives: usize,
    caught: usize,
    near_misses: usize,
    fired: usize,
    missed: Vec<String>,
    false_alarms: Vec<String>,
}

fn policy() -> ComplianceLimits {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("policy.toml is readable");
    let manifest = handoff_policy::manifest::Manifest::parse(&text).expect("policy.toml parses");
    ComplianceLimits::configure(&Config::from_pairs(manifest.config)).expect("policy configures")
}

fn fires(policy: &ComplianceLimits, class: &str, text: &str) -> bool {
    let item = WorkItem {
        id: "corpus".into(),
        kind: "reply".into(),
        agent: "corpus".into(),
        text: text.into(),
        confidence: 0.9,
        amount: None,
        segment: None,
        attempts: 0,
        attributes: vec![],
    };
    policy
        .rules(&item)
        .iter()
        .any(|rule| matches!(rule, Rule::Phrase(r) if r.class == class))
}

fn measure(policy: &ComplianceLimits, class: &str, corpus: &str) -> Figures {
    let mut figures = Figures {
        class: class.to_string(),
        positives: 0,
        caught: 0,
        near_misses: 0,
        fired: 0,
        missed: Vec::new(),
        false_alarms: Vec::new(),
    };
    for line in corpus.lines() {
        if let Some(text) = line.strip_prefix("+ ") {
            figures.positives += 1;
            if fires(policy, class, text) {
                figures.caught += 1;
            } else {
                figures.missed.push(text.to_string());
            }
        } else if let Some(text) = line.strip_prefix("- ") {
            figures.near_misses += 1;
            if fires(policy, class, text) {
                figures.fired += 1;
                figures.false_alarms.push(text.to_string());
            }
        } else {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "corpus/{class}.txt: a line starts with `+ `, `- ` or `#`: {line:?}"
            );
        }
    }
    figures
}

/// What a corpus directory must show.
struct Bar {
    min_cases: usize,
    min_recall: f64,
    max_false_positives: f64,
}

fn check_corpus(dir: &Path, bar: Bar) {
    let policy = policy();
    let mut classes: Vec<_> = std::fs::read_dir(dir)
        .expect("the corpus directory exists")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    classes.sort();
    assert_eq!(classes.len(), 4, "one corpus per phrase class: {classes:?}");
    let mut failures = Vec::new();
    println!("{}", dir.display());
    println!("class                 recall            false positives");
    for path in classes {
        let class = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let corpus = std::fs::read_to_string(&path).expect("corpus is readable");
        let f = measure(&policy, class, &corpus);
        assert!(
            f.positives >= bar.min_cases && f.near_misses >= bar.min_cases,
            "{}: needs at least {} of each kind, has {} and {}",
            path.display(),
            bar.min_cases,
            f.positives,
            f.near_misses
        );
        let recall = f.caught as f64 / f.positives as f64;
        let false_positives = f.fired as f64 / f.near_misses as f64;
        println!(
            "{:<21} {:>3}/{:<3} = {:>5.1}%   {:>3}/{:<3} = {:>4.1}%",
            f.class,
            f.caught,
            f.positives,
            recall * 100.0,
            f.fired,
            f.near_misses,
            false_positives * 100.0
        );
        for text in &f.missed {
            println!("    missed: {text}");
        }
        for text in &f.false_alarms {
            println!("    fired:  {text}");
        }
        if recall < bar.min_recall || false_positives > bar.max_false_positives {
            failures.push(format!(
                "{class}: recall {:.1}% (min {:.0}%), false positives {:.1}% (max {:.0}%); \
                 missed {:?}; fired on {:?}",
                recall * 100.0,
                bar.min_recall * 100.0,
                false_positives * 100.0,
                bar.max_false_positives * 100.0,
                f.missed,
                f.false_alarms
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The corpus the rules were written against: they must keep what they catch.
#[test]
fn reference_rules_catch_real_phrasings_and_leave_near_misses() {
    check_corpus(
        &corpus_dir(),
        Bar {
            min_cases: 100,
            min_recall: 0.95,
            max_false_positives: 0.05,
        },
    );
}

/// Phrasings written after the rules were frozen: how the rules generalise.
/// The bar is lower because nobody tuned against these; a rule change that
/// fits one of them must move it to the main corpus and add a new one here.
#[test]
fn reference_rules_generalise_to_held_out_phrasings() {
    check_corpus(
        &corpus_dir().join("held-out"),
        Bar {
            min_cases: 20,
            min_recall: MIN_HELD_OUT_RECALL,
            max_false_positives: MAX_HELD_OUT_FALSE_POSITIVES,
        },
    );
}
