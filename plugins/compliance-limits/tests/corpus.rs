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

/// Every corpus line, main and held-out, with the `+ `/`- ` mark removed,
/// plus texts that take the normaliser's other paths.
fn every_corpus_text() -> Vec<String> {
    let mut texts = Vec::new();
    for dir in [corpus_dir(), corpus_dir().join("held-out")] {
        for entry in std::fs::read_dir(&dir).expect("the corpus directory exists") {
            let path = entry.expect("corpus entry").path();
            if path.extension().is_some_and(|e| e == "txt") {
                let corpus = std::fs::read_to_string(&path).expect("corpus is readable");
                texts.extend(corpus.lines().filter_map(|line| {
                    line.strip_prefix("+ ")
                        .or_else(|| line.strip_prefix("- "))
                        .map(str::to_string)
                }));
            }
        }
    }
    texts.extend(
        [
            "I’LL SUE YOU — ﬁnal warning",
            "je vais porter plainte auprès de la CNIL, supprimez mes données",
            "su\u{200b}icide",
            "don`t delete my data",
            "DELETE\u{00ad}MY\u{00ad}DATA",
            "",
        ]
        .map(str::to_string),
    );
    texts
}

/// Runs an SDK's rule matcher in another language on `request` and returns
/// the classes it found per text.
fn other_language(program: &str, script: &str, request: &str) -> Vec<Vec<String>> {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut child = std::process::Command::new(program)
        .arg(root.join("tests/conformance").join(script))
        .env("PYTHONPATH", root.join("sdk/python"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (install it; .ci/run does): {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(request.as_bytes())
        .expect("request is written");
    drop(stdin);
    let out = child.wait_with_output().expect("the matcher finishes");
    assert!(out.status.success(), "{program} {script} failed");
    serde_json::from_slice(&out.stdout).expect("the matcher prints JSON")
}

/// The Python and JavaScript SDKs read the reference rules as the Rust SDK
/// does: the same classes for every corpus text, main and held-out.
#[test]
fn python_and_javascript_match_the_rules_as_rust_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("policy.toml is readable");
    let manifest = handoff_policy::manifest::Manifest::parse(&text).expect("policy.toml parses");
    let config = Config::from_pairs(manifest.config);
    let classes: Vec<(String, Vec<String>)> = config
        .children("phrases")
        .into_iter()
        .map(|class| {
            let rules = config.list(&format!("phrases.{class}.match"));
            (
                class.to_string(),
                rules.into_iter().map(str::to_string).collect(),
            )
        })
        .collect();
    let phrases = handoff_sdk::phrases::PhraseSet::new(
        classes
            .iter()
            .map(|(c, rules)| (c.as_str(), rules.iter().map(String::as_str))),
    )
    .expect("the reference rules parse");
    let texts = every_corpus_text();
    assert!(texts.len() > 1000, "{} texts", texts.len());
    let rust: Vec<Vec<String>> = texts
        .iter()
        .map(|t| {
            phrases
                .matching_classes(t)
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    assert!(rust.iter().filter(|found| !found.is_empty()).count() > 500);
    let request = serde_json::json!({
        "classes": classes
            .iter()
            .map(|(c, rules)| (c.clone(), serde_json::json!(rules)))
            .collect::<serde_json::Map<_, _>>(),
        "texts": texts,
    })
    .to_string();
    for (program, script) in [("python3", "rules.py"), ("node", "rules.mjs")] {
        let theirs = other_language(program, script, &request);
        assert_eq!(theirs.len(), texts.len(), "{script}");
        let differ: Vec<_> = (0..texts.len())
            .filter(|&i| theirs[i] != rust[i])
            .map(|i| {
                format!(
                    "{:?}: rust {:?}, {script} {:?}",
                    texts[i], rust[i], theirs[i]
                )
            })
            .collect();
        assert!(
            differ.is_empty(),
            "{} differ:\n{}",
            differ.len(),
            differ.join("\n")
        );
    }
}
