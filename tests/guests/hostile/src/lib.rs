//! A policy that misbehaves in the way its `mode` configuration asks for.
//!
//! Most modes act in `score`, after a normal `classify`, so the tests also
//! see that completed stages are recorded; `classify`, `escalate`,
//! `configure` and `metadata` have modes of their own. Every mode is one
//! attack the sandbox must hold against; see `tests/all/sandbox.rs` and
//! `tests/all/hardening.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use handoff_sdk::prelude::*;

/// The configured misbehaviour.
pub struct Hostile {
    mode: String,
}

/// Evaluations this instance has made: what a plugin that drifts keeps.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// The `mode` configuration value, read straight from the host: `metadata`
/// has no configuration argument, and some modes misbehave there.
fn mode() -> String {
    handoff_sdk::bindings::handoff::policy::host::config_get("mode").unwrap_or_default()
}

/// Sleeps long enough that a host which let it would visibly hang.
fn sleep_for_an_hour() {
    std::thread::sleep(Duration::from_secs(3600));
}

impl Policy for Hostile {
    fn info() -> PolicyInfo {
        let mut info = PolicyInfo {
            name: "hostile".into(),
            version: "6.6.6".into(),
            description: "Misbehaves on purpose, for sandbox tests.".into(),
            triggers: vec![],
        };
        match mode().as_str() {
            "meta-sleep" => sleep_for_an_hour(),
            "meta-huge-description" => info.description = "d".repeat(10 << 20),
            "meta-many-triggers" => {
                info.triggers = (0..100_000)
                    .map(|i| TriggerInfo::new(&format!("t{i}"), TriggerKind::Rule, "x"))
                    .collect()
            }
            "meta-forged-version" => {
                info.version = "6.6.6\r\n2026-11-30T00:00:00Z INFO handoff: forged".into()
            }
            "meta-bad-name" => info.name = "Hostile Policy!".into(),
            _ => {}
        }
        info
    }

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let mode = config.string_or("mode", "healthy");
        if mode == "configure-sleep" {
            sleep_for_an_hour();
        }
        Ok(Hostile { mode })
    }

    fn classify(&self, _item: &WorkItem) -> Classification {
        let labels = match self.mode.as_str() {
            "many-labels" => vec![String::new(); 2_000_000],
            "label-escape" => vec!["\u{1b}[2Jowned".into()],
            mode => vec![format!("mode.{mode}")],
        };
        Classification {
            labels,
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
            // A blocking WASI call: a timer, then a poll.
            "sleep" => sleep_for_an_hour(),
            // Prints what a panicking Rust program prints, then carries on.
            "fake-panic" => {
                println!("thread 'main' panicked at src/lib.rs:1:1:\n\u{1b}[31mforged");
                eprintln!("thread 'main' panicked at src/lib.rs:1:1:\nforged");
            }
            // One log line of 64 MiB through the host interface.
            "huge-log" => handoff_sdk::log::info(&"L".repeat(64 << 20)),
            _ => {}
        }
        Assessment {
            risk,
            confidence,
            signals: vec![],
        }
    }

    fn escalate(&self, item: &WorkItem, _c: &Classification, _a: &Assessment) -> Verdict {
        let verdict = Verdict::proceed("hostile.ok", "Nothing to see.", TriggerKind::Rule);
        let operator = || {
            Verdict::escalate(
                Tier::Operator,
                "hostile.route",
                "Routed.",
                TriggerKind::Rule,
            )
        };
        match self.mode.as_str() {
            "escalate" => operator(),
            // Says every field of the item as the guest received it.
            "echo" => Verdict {
                reason: echo(item),
                ..verdict
            },
            "huge-reason" => Verdict {
                reason: "A".repeat(8 * 1024 * 1024),
                ..verdict
            },
            "zero-sla" => operator().with_sla(Some(0), Some(0)),
            "max-sla" => operator().with_sla(Some(60), Some(u32::MAX)),
            "role-newline" => operator().with_role("finance\noperator"),
            "role-escape" => operator().with_role("\u{1b}[31mops"),
            "role-nul" => operator().with_role("ops\0"),
            "role-empty" => operator().with_role(""),
            // Reaches for the network every way std offers; the verdict
            // reports what each attempt got.
            "network" => Verdict {
                reason: network_attempts(),
                ..operator()
            },
            "reason-escape" => Verdict {
                reason: "Approved by \u{1b}[32mthe CFO\u{1b}[0m".into(),
                ..operator()
            },
            "guidance-on-operator" => Verdict {
                guidance: Some("Try again.".into()),
                ..operator()
            },
            // The answer depends on how many items this instance decided.
            "drift" => {
                if CALLS.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
                    operator()
                } else {
                    verdict
                }
            }
            // The answer depends on a random draw: the host's seeded
            // sequence must make it depend on the item alone.
            "random" => {
                let mut draw = [0u8; 1];
                getrandom(&mut draw);
                if draw[0] % 2 == 1 {
                    operator()
                } else {
                    verdict
                }
            }
            _ => verdict,
        }
    }
}

/// Draws bytes from `wasi:random`, as any guest's randomness does.
fn getrandom(buf: &mut [u8]) {
    let bytes = wasi::random::random::get_random_bytes(buf.len() as u64);
    buf.copy_from_slice(&bytes[..buf.len()]);
}

/// Recursion the optimiser cannot turn into a loop. Unbounded on purpose.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    recurse(depth + 1).wrapping_add(frame[(depth % 32) as usize])
}

handoff_sdk::export_policy!(Hostile);

/// Tries a TCP connection, a TCP listener, a UDP socket and a name lookup,
/// and says how each failed (or that it did not).
fn network_attempts() -> String {
    use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
    let outcome = |result: std::io::Result<()>| match result {
        Ok(()) => "CONNECTED".to_string(),
        Err(e) => format!("{:?}", e.kind()),
    };
    [
        (
            "tcp-connect",
            outcome(TcpStream::connect("127.0.0.1:5432").map(drop)),
        ),
        (
            "tcp-listen",
            outcome(TcpListener::bind("127.0.0.1:0").map(drop)),
        ),
        (
            "udp-bind",
            outcome(UdpSocket::bind("127.0.0.1:0").map(drop)),
        ),
        (
            "name-lookup",
            outcome("localhost:80".to_socket_addrs().map(drop)),
        ),
    ]
    .map(|(what, how)| format!("{what}={how}"))
    .join(" ")
}

/// Every field of `item`, `|` between fields, `key=value` for the attributes:
/// what the `echo` mode answers, so a test can hold what the guest
/// received to what the host sent.
fn echo(item: &WorkItem) -> String {
    let amount = item.amount.as_ref().map_or("none".to_string(), |m| {
        format!("{} {}", m.minor, m.currency)
    });
    let attributes: Vec<String> = item
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "id {} | kind {} | agent {} | text {} | confidence {} | amount {amount} | segment {} | attempts {} | attributes {}",
        item.id,
        item.kind,
        item.agent,
        item.text,
        item.confidence,
        item.segment.as_deref().unwrap_or("none"),
        item.attempts,
        attributes.join(";")
    )
}
