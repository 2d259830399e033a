//! A policy that misbehaves in the way its `mode` configuration asks for.
//! Everything happens in `score`, after a normal `classify`, so the tests
//! also see that completed stages are recorded.

use handoff_sdk::prelude::*;

/// The configured misbehaviour.
pub struct Hostile {
    mode: String,
}

impl Policy for Hostile {
    fn info() -> PolicyInfo {
        PolicyInfo {
            name: "hostile".into(),
            version: "6.6.6".into(),
            description: "Misbehaves on purpose, for sandbox tests.".into(),
            triggers: vec![],
        }
    }

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        Ok(Hostile {
            mode: config.string_or("mode", "healthy"),
        })
    }

    fn classify(&self, _item: &WorkItem) -> Classification {
        Classification {
            labels: vec![format!("mode.{}", self.mode)],
            rules_fired: vec![],
        }
    }

    fn score(&self, item: &WorkItem, _classification: &Classification) -> Assessment {
        let mut risk = 0.1;
        let mut confidence = 1.0;
        match self.mode.as_str() {
            // Never returns: only the deadline (or fuel) can stop it.
            "loop" => loop {
                std::hint::black_box(&mut risk);
            },
            // Finite but expensive: about 10^9 iterations, far past any fuel
            // budget, yet well under a generous deadline if fuel stops it.
            "burn" => {
                let mut acc = 0u64;
                for i in 0..1_000_000_000u64 {
                    acc = std::hint::black_box(acc.wrapping_mul(31).wrapping_add(i));
                }
                risk = (acc % 2) as f64 * 0.0;
            }
            // Allocates and touches 64 KiB at a time until refused.
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 64 * 1024]));
                }
            }
            "recurse" => risk = recurse(std::hint::black_box(1)) as f64,
            "panic" => panic!("hostile plugin panicked on item {}", item.id),
            "bad-score" => risk = 1.5,
            "nan-confidence" => confidence = f64::NAN,
            "chatty" => {
                let line = "x".repeat(1023);
                for _ in 0..4096 {
                    println!("{line}");
                }
            }
            _ => {}
        }
        Assessment {
            risk,
            confidence,
            signals: vec![],
        }
    }

    fn escalate(&self, _item: &WorkItem, _c: &Classification, _a: &Assessment) -> Verdict {
        let verdict = Verdict::proceed("hostile.ok", "Nothing to see.", TriggerKind::Rule);
        match self.mode.as_str() {
            "huge-reason" => Verdict {
                reason: "A".repeat(8 * 1024 * 1024),
                ..verdict
            },
            "zero-sla" => Verdict::escalate(
                Tier::Operator,
                "hostile.sla",
                "SLA of zero.",
                TriggerKind::Rule,
            )
            .with_sla(Some(0), Some(0)),
            _ => verdict,
        }
    }
}

/// Recursion the optimiser cannot turn into a loop. Unbounded on purpose.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    recurse(depth + 1).wrapping_add(frame[(depth % 32) as usize])
}

handoff_sdk::export_policy!(Hostile);
