//! The audit trail: a real log on disk, tampered with, torn, rotated,
//! masked, written in every durability mode, killed mid-run and replayed.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use handoff_audit::{
    AuditError, AuditHealth, AuditLog, AuditOptions, Body, BreakKind, Durability, Masking, Record,
    VerifyError, log_files, query, verify, verify_segment,
};
use handoff_model::{LifecycleEvent, Tier};
use handoff_pipeline::audit_sink;
use handoff_policy::reload::LivePolicies;
use handoff_policy::{Evaluator, PluginSource, Runtime};
use handoff_policy::{LiveEvaluator, sha256};
use handoff_test_fixtures::{HOSTILE, rebuilt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn options(durability: Durability) -> AuditOptions {
    AuditOptions {
        durability,
        ..AuditOptions::default()
    }
}

/// Writes a log of `n` decisions (cycling through the sample) into `dir`
/// and returns its single file.
fn write_log(dir: &Path, n: usize) -> PathBuf {
    let log = AuditLog::open(dir, options(Durability::Batch)).unwrap();
    let mut evaluator = Evaluator::new(set_of(embedded_sources()));
    for item in sample_items().into_iter().cycle().take(n) {
        let decision = decide(&mut evaluator, &item);
        log.record_decision(&item, &decision, None).unwrap();
    }
    drop(log);
    let files = log_files(dir).unwrap();
    assert_eq!(files.len(), 1);
    files[0].clone()
}

fn embedded_sources() -> Vec<PluginSource> {
    handoff_pipeline::reference::sources()
}

fn lines(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(file: &Path, lines: &[String]) {
    fs::write(file, lines.join("\n") + "\n").unwrap();
}

/// The chain break `verify` reports for `file`.
fn broken(file: &Path) -> handoff_audit::Break {
    match verify(&[file.to_path_buf()]) {
        Err(VerifyError::Broken(b)) => b,
        other => panic!("expected a break, got {other:?}"),
    }
}

/// Writes a log of ten decisions, lets `tamper` change its lines, and
/// returns the break `verify` reports, and the lines as tampered.
fn tampered(tamper: impl FnOnce(&mut Vec<String>)) -> (handoff_audit::Break, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_log(dir.path(), 10);
    let mut stored = lines(&file);
    tamper(&mut stored);
    write_lines(&file, &stored);
    (broken(&file), stored)
}

/// Recomputes a line's hash after editing it, as a careful forger would.
fn rehash(line: &str) -> String {
    let cut = line.find(",\"hash\":\"").unwrap();
    let mut hashed = line.as_bytes()[..cut].to_vec();
    hashed.push(b'}');
    let hash = format!("{:x}", Sha256::digest(&hashed));
    format!("{},\"hash\":\"{hash}\"}}", &line[..cut])
}

#[test]
fn an_untouched_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_log(dir.path(), 12);
    let verified = verify(&[file]).unwrap();
    assert_eq!(verified.records, 12);
    assert_eq!(verified.first_seq, Some(1));
    assert_eq!(verified.last_seq, Some(12));
}

#[test]
fn an_edited_field_is_reported_at_its_record() {
    // Record 5 decides r-1005, a refund over the executive limit: make it
    // look as if the agent had been allowed to proceed.
    let from = "\"tier\":\"executive\"";
    let (b, _) = tampered(|lines| {
        assert!(lines[4].contains(from), "{}", lines[4]);
        lines[4] = lines[4].replacen(from, "\"tier\":\"none\"", 1);
    });
    assert_eq!((b.seq, b.kind, b.line), (5, BreakKind::Edited, 5), "{b}");

    // Forging the edited record's hash moves the evidence to the link from
    // the next record, which still names the old hash.
    let (b, forged) = tampered(|lines| {
        lines[4] = rehash(&lines[4].replacen(from, "\"tier\":\"none\"", 1));
    });
    assert!(handoff_audit::record::decode(&forged[4]).is_ok());
    assert_eq!((b.seq, b.kind), (5, BreakKind::Edited), "{b}");
}

#[test]
fn a_deleted_record_is_reported_at_its_sequence_number() {
    let (b, _) = tampered(|lines| {
        lines.remove(6);
    });
    assert_eq!((b.seq, b.kind), (7, BreakKind::Deleted), "{b}");
    assert!(b.detail.contains("record 7 is missing"), "{b}");
}

#[test]
fn swapped_records_are_reported_as_reordered() {
    let (b, _) = tampered(|lines| lines.swap(3, 4));
    assert_eq!((b.seq, b.kind), (4, BreakKind::Reordered), "{b}");
}

#[test]
fn a_record_cut_mid_line_is_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_log(dir.path(), 10);
    let bytes = fs::read(&file).unwrap();
    let last_start = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    fs::write(&file, &bytes[..last_start + 40]).unwrap();
    let b = broken(&file);
    assert_eq!(
        (b.seq, b.kind, b.line),
        (10, BreakKind::Truncated, 10),
        "{b}"
    );
}

#[test]
fn a_torn_tail_is_cut_at_open_and_a_recovery_record_says_what() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_log(dir.path(), 5);
    let before = fs::read(&file).unwrap();
    // A crash mid-write: half a record and no newline.
    let torn = b"{\"seq\":6,\"ts\":\"2026-11-24T10:00:00Z\",\"prev\":\"ab";
    let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(torn).unwrap();
    drop(f);

    let log = AuditLog::open(dir.path(), options(Durability::Sync)).unwrap();
    assert_eq!(log.next_seq(), 7, "the recovery record took seq 6");
    drop(log);
    let after = fs::read(&file).unwrap();
    assert!(after.starts_with(&before), "sound records are untouched");
    let verified = verify(std::slice::from_ref(&file)).unwrap();
    assert_eq!(verified.records, 6);
    let entries = query::read(&[file]).unwrap();
    let Body::Recovery {
        cut_bytes,
        cut_preview,
        ..
    } = &entries[5].record.body
    else {
        panic!("record 6 is not a recovery: {}", entries[5].line)
    };
    assert_eq!(*cut_bytes, torn.len() as u64);
    assert!(cut_preview.starts_with("{\"seq\":6"), "{cut_preview}");
}

#[test]
fn an_edited_complete_last_record_is_damage_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_log(dir.path(), 5);
    let mut lines = lines(&file);
    // Complete, newline-terminated, and altered: not what a crash leaves.
    lines[4] = lines[4].replace("\"seq\":5", "\"seq\":5,\"forged\":true");
    write_lines(&file, &lines);
    let before = fs::read(&file).unwrap();
    let error = AuditLog::open(dir.path(), options(Durability::Batch))
        .err()
        .expect("an edited last record does not open");
    assert!(
        matches!(error, AuditError::Damaged { line: 5, .. }),
        "{error}"
    );
    assert_eq!(fs::read(&file).unwrap(), before, "nothing was cut");
}

#[test]
fn a_damaged_middle_record_refuses_to_open_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_log(dir.path(), 5);
    let mut lines = lines(&file);
    lines[2] = "{not json".into();
    write_lines(&file, &lines);
    let before = fs::read(&file).unwrap();
    let error = AuditLog::open(dir.path(), options(Durability::Batch))
        .err()
        .expect("a damaged log does not open");
    assert!(
        matches!(error, AuditError::Damaged { line: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("audit-000001.jsonl"), "{error}");
    assert_eq!(
        fs::read(&file).unwrap(),
        before,
        "nothing was repaired away"
    );
}

#[test]
fn rotation_continues_one_chain_across_files_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let small = AuditOptions {
        max_file_bytes: 8 * 1024,
        ..options(Durability::Batch)
    };
    let mut evaluator = Evaluator::new(set_of(embedded_sources()));
    let items = sample_items();
    for round in 0..2 {
        // The second round is a restart: the chain picks up where it ended.
        let log = AuditLog::open(dir.path(), small.clone()).unwrap();
        assert_eq!(log.next_seq(), 1 + round as u64 * 60);
        for item in items.iter().cycle().take(60) {
            let decision = decide(&mut evaluator, item);
            log.record_decision(item, &decision, None).unwrap();
        }
    }
    let files = log_files(dir.path()).unwrap();
    assert!(files.len() >= 4, "{} files", files.len());
    for file in &files {
        assert!(fs::metadata(file).unwrap().len() <= 8 * 1024);
    }
    let verified = verify(&files).unwrap();
    assert_eq!((verified.records, verified.files), (120, files.len()));

    // A later file on its own verifies as a segment, from where it starts,
    // but not as the whole log: its head is missing.
    let tail = verify_segment(&files[2..]).unwrap();
    assert!(tail.first_seq.unwrap() > 1);
    assert_eq!(tail.last_seq, Some(120));
    let Err(VerifyError::Broken(head)) = verify(&files[2..]) else {
        panic!("a log without its first files must not verify")
    };
    assert_eq!(head.kind, BreakKind::Deleted, "{head}");

    // A missing middle file is a deletion at its first record.
    let first_of_second = query::read(&files[1..2]).unwrap()[0].record.seq;
    let without: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, f)| f.clone())
        .collect();
    let Err(VerifyError::Broken(b)) = verify(&without) else {
        panic!("a missing file must break the chain")
    };
    assert_eq!(
        (b.seq, b.kind),
        (first_of_second, BreakKind::Deleted),
        "{b}"
    );
}

#[test]
fn every_durability_mode_writes_a_sound_chain_from_many_threads() {
    for durability in [Durability::Sync, Durability::Batch, Durability::Off] {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(dir.path(), options(durability)).unwrap());
        let set = set_of(embedded_sources());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                let set = set.clone();
                std::thread::spawn(move || {
                    let mut evaluator = Evaluator::new(set);
                    let mut seqs = Vec::new();
                    for (i, mut item) in sample_items().into_iter().cycle().take(25).enumerate() {
                        item.id = format!("t{t}-{i}");
                        let decision = evaluator.evaluate(&item).unwrap();
                        seqs.push(log.record_decision(&item, &decision, None).unwrap());
                    }
                    seqs
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        drop(log);
        seqs.sort();
        let files = log_files(dir.path()).unwrap();
        let verified = verify(&files).unwrap();
        assert_eq!(verified.records, 100, "{durability:?}");
        let entries = query::read(&files).unwrap();
        let recorded: Vec<u64> = entries.iter().map(|e| e.record.seq).collect();
        assert_eq!(
            recorded, seqs,
            "{durability:?}: every acknowledged seq is there"
        );
    }
}

#[test]
fn with_off_durability_a_write_a_full_disk_refused_leaves_nothing_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let _mounted = Tmpfs::mount(&audit, "2m");
    let log = AuditLog::open(
        &audit,
        AuditOptions {
            durability: Durability::Off,
            // Only appends hand records to the OS, never the background.
            batch_interval: Duration::from_secs(3600),
            retry_interval: Duration::from_millis(10),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    let mut evaluator = Evaluator::new(set_of(embedded_sources()));
    let filler = fill(&audit);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for (n, mut item) in sample_items().into_iter().cycle().take(20_000).enumerate() {
        item.id = format!("full-{n}");
        let decision = decide(&mut evaluator, &item);
        match log.record_decision(&item, &decision, None) {
            Ok(seq) => acknowledged.push((seq, item.id)),
            Err(error) => {
                assert!(matches!(error, AuditError::Io { .. }), "{error}");
                refused = Some(item.id);
                break;
            }
        }
    }
    let refused = refused.expect("the full disk refused a write");
    assert!(acknowledged.len() > 1, "records were written before it");

    fs::remove_file(filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !matches!(log.health(), AuditHealth::Writing) {
        assert!(
            std::time::Instant::now() < deadline,
            "the log never resumed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(log);

    let files = log_files(&audit).unwrap();
    let verified = verify(&files).unwrap();
    let entries = query::read(&files).unwrap();
    let decisions: Vec<(u64, String)> = entries
        .iter()
        .filter_map(|e| match &e.record.body {
            Body::Decision(d) => Some((e.record.seq, d.decision.id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(decisions, acknowledged, "every acknowledged record, once");
    assert!(!decisions.iter().any(|(_, id)| *id == refused));
    let last = entries.last().unwrap();
    assert!(
        matches!(last.record.body, Body::Outage { refused: 1, .. }),
        "{}",
        last.line
    );
    assert_eq!(last.record.seq, acknowledged.len() as u64 + 1);
    assert_eq!(verified.records, acknowledged.len() as u64 + 1);
}

#[test]
fn decisions_recorded_together_chain_rotate_and_read_back_as_if_recorded_alone() {
    let mut evaluator = Evaluator::new(set_of(embedded_sources()));
    let decided: Vec<_> = sample_items()
        .into_iter()
        .map(|item| {
            let decision = decide(&mut evaluator, &item);
            (item, decision)
        })
        .collect();
    let refs: Vec<_> = decided.iter().map(|(i, d)| (i, d)).collect();
    for durability in [Durability::Sync, Durability::Batch, Durability::Off] {
        // Alone, then together, in two logs: the bodies must not differ.
        let alone = tempfile::tempdir().unwrap();
        let log = AuditLog::open(alone.path(), options(durability)).unwrap();
        for (item, decision) in &refs {
            log.record_decision(item, decision, Some("agent-7"))
                .unwrap();
        }
        drop(log);
        // Small files, so that groups are cut by rotations mid-way; groups
        // of one, of a few and of the whole sample, from two threads.
        let together = tempfile::tempdir().unwrap();
        let small = AuditOptions {
            max_file_bytes: 8 * 1024,
            ..options(durability)
        };
        let log = Arc::new(AuditLog::open(together.path(), small).unwrap());
        let writers: Vec<_> = [1usize, 7]
            .into_iter()
            .map(|size| {
                let (log, decided) = (log.clone(), decided.clone());
                std::thread::spawn(move || {
                    let refs: Vec<_> = decided.iter().map(|(i, d)| (i, d)).collect();
                    let mut groups = Vec::new();
                    for chunk in refs.chunks(size) {
                        let seqs = log.record_decisions(chunk, Some("agent-7")).unwrap();
                        groups.push(seqs);
                    }
                    groups
                })
            })
            .collect();
        let whole = log.record_decisions(&refs, Some("agent-7")).unwrap();
        let mut groups: Vec<Vec<u64>> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        groups.push(whole);
        drop(log);

        let files = log_files(together.path()).unwrap();
        assert!(files.len() > 2, "{durability:?}: {} files", files.len());
        for file in &files {
            assert!(fs::metadata(file).unwrap().len() <= 8 * 1024, "{file:?}");
        }
        let n = decided.len() as u64;
        assert_eq!(verify(&files).unwrap().records, 3 * n, "{durability:?}");
        let entries = query::read(&files).unwrap();
        let by_seq = |seq: u64| &entries[(seq - 1) as usize];
        // A group's records are consecutive, in the order given.
        for seqs in &groups {
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        }
        let single = query::read(&log_files(alone.path()).unwrap()).unwrap();
        let body_of =
            |entry: &handoff_audit::Entry| serde_json::to_value(&entry.record.body).unwrap();
        let last = groups.last().unwrap();
        for (offset, seq) in last.iter().enumerate() {
            assert_eq!(by_seq(*seq).record.seq, *seq);
            assert_eq!(
                body_of(by_seq(*seq)),
                body_of(&single[offset]),
                "{durability:?}: record {seq} differs from the one recorded alone"
            );
        }
    }
}

#[test]
fn masked_fields_are_keyed_hashes_and_the_record_is_not_replayable() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys/mask.key");
    fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    let secret_text = "my card number is 4111 1111 1111 1111";
    let secret_mail = "jane@example.com";
    let mut item = item(json!({
        "id": "masked-1",
        "text": secret_text,
        "attributes": {"email": secret_mail, "channel": "chat"},
    }));
    let mut evaluator = Evaluator::new(set_of(embedded_sources()));
    for _ in 0..2 {
        // Twice, reopening: the key file keeps hashes stable.
        let masking = Masking::with_key_file(true, vec!["email".into()], &key_file).unwrap();
        let log = AuditLog::open(
            &dir.path().join("log"),
            AuditOptions {
                masking: Some(masking),
                ..options(Durability::Sync)
            },
        )
        .unwrap();
        let decision = decide(&mut evaluator, &item);
        log.record_decision(&item, &decision, None).unwrap();
        item.id = "masked-2".into();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
    }
    let files = log_files(&dir.path().join("log")).unwrap();
    let raw = fs::read_to_string(&files[0]).unwrap();
    assert!(!raw.contains(secret_text) && !raw.contains(secret_mail));
    let entries = query::read(&files).unwrap();
    let records: Vec<_> = entries
        .iter()
        .filter_map(|e| match &e.record.body {
            Body::Decision(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.masked, vec!["text", "attributes.email"]);
        assert!(!record.replayable);
        let text = record.item["text"].as_str().unwrap();
        assert!(text.starts_with("hmac-sha256:"), "{text}");
        assert_eq!(record.item["attributes"]["channel"], "chat", "unmasked");
    }
    assert_eq!(
        records[0].item["text"], records[1].item["text"],
        "the same value hashes the same under the same key"
    );

    // Replay refuses to pretend a hash is the original text.
    let mut candidate = Evaluator::new(set_of(embedded_sources()));
    let report = handoff_pipeline::replay::replay(&entries, &mut candidate);
    assert_eq!((report.replayed, report.skipped_masked), (0, 2));
}

/// A policy directory of the reference policies, with the confidence
/// gate's self-correct threshold set to `threshold`.
fn policies_with_gate_threshold(dir: &Path, threshold: &str) -> PathBuf {
    write_reference_policies(dir);
    let manifest = dir.join("confidence-gate.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let edited = text.replacen(
        "self-correct-below = 0.75",
        &format!("self-correct-below = {threshold}"),
        1,
    );
    assert!(edited.contains(&format!("self-correct-below = {threshold}\n")));
    fs::write(&manifest, edited).unwrap();
    dir.to_path_buf()
}

fn run_ok(args: &[&str], stdin: &str) -> String {
    let out = handoff(args, stdin);
    assert!(
        out.status.success(),
        "handoff {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn replay_under_a_stricter_policy_reports_exactly_the_changes() {
    let work = tempfile::tempdir().unwrap();
    let live = policies_with_gate_threshold(&work.path().join("live"), "0.75");
    let stricter = policies_with_gate_threshold(&work.path().join("candidate"), "0.85");
    let audit = work.path().join("audit");
    let items = [
        json!({"id": "a-marginal", "kind": "reply", "agent": "bot", "text": "Your order shipped.", "confidence": 0.80}),
        json!({"id": "b-confident", "kind": "reply", "agent": "bot", "text": "Your order shipped.", "confidence": 0.95}),
        json!({"id": "c-lawyer", "kind": "reply", "agent": "bot", "text": "My lawyer will be in touch.", "confidence": 0.78}),
        json!({"id": "d-big-refund", "kind": "refund", "agent": "bot", "text": "Refund please", "confidence": 0.80, "amount": {"minor": 60000, "currency": "USD"}}),
        json!({"id": "e-low", "kind": "reply", "agent": "bot", "text": "Maybe.", "confidence": 0.70}),
    ];
    let input: String = items.iter().map(|i| format!("{i}\n")).collect();
    let audit_arg = audit.to_str().unwrap();
    run_ok(
        &[
            "eval",
            "--policies",
            live.to_str().unwrap(),
            "--audit",
            audit_arg,
        ],
        &input,
    );
    let files = log_files(&audit).unwrap();
    let log_before = fs::read(&files[0]).unwrap();

    let replay = |policies: &Path, flag: &str| {
        let args = ["replay", "--audit", audit_arg, "--policies"];
        let mut args: Vec<&str> = args.to_vec();
        args.push(policies.to_str().unwrap());
        args.extend([flag].iter().filter(|f| !f.is_empty()));
        handoff(&args, "")
    };
    let json = replay(&stricter, "--json");
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["replayed"], 5);
    assert_eq!(report["skipped_masked"], 0);
    let changed = report["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    let change = &changed[0];
    assert_eq!(change["id"], "a-marginal");
    assert_eq!(change["old_tier"], "none");
    assert_eq!(change["new_tier"], "self-correct");
    assert_eq!(change["new_reason_code"], "confidence.marginal");
    assert!(change["new_reason"].as_str().unwrap().contains("0.85"));
    // Records 1 and 2 are the two plugins' `loaded` events.
    assert_eq!(change["seq"], 3);
    // Rows are the recorded tier, columns the candidate's (none,
    // self-correct, operator, executive).
    assert_eq!(
        report["matrix"],
        json!([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    );
    assert_eq!(
        fs::read(&files[0]).unwrap(),
        log_before,
        "replay only reads"
    );

    // The readable report shows both reasons, and the gate flag works.
    let text = String::from_utf8(replay(&stricter, "").stdout).unwrap();
    assert!(text.contains("a-marginal: none -> self-correct"), "{text}");
    assert!(text.contains("was proceed"), "{text}");
    let gate = replay(&stricter, "--fail-on-change");
    assert_eq!(gate.status.code(), Some(1));
    // Against the policies that decided, nothing changes.
    let same = replay(&live, "--fail-on-change");
    assert_eq!(same.status.code(), Some(0));
}

#[test]
fn audit_cli_verifies_shows_and_names_the_break() {
    let work = tempfile::tempdir().unwrap();
    let audit = work.path().join("audit");
    let audit_arg = audit.to_str().unwrap();
    let sample = fs::read_to_string(examples_dir().join("sample.jsonl")).unwrap();
    run_ok(
        &["eval", "--audit", audit_arg, "--durability", "sync"],
        &sample,
    );
    let items = sample.lines().filter(|l| !l.trim().is_empty()).count();

    let verified = run_ok(&["audit", "verify", audit_arg], "");
    assert!(
        verified.contains(&format!("verified {} records", items + 2)),
        "{verified}"
    );

    // Filters: each printed line is a stored record that matches.
    let show = |extra: &[&str]| -> Vec<Record> {
        let mut args = vec!["audit", "show", audit_arg];
        args.extend_from_slice(extra);
        run_ok(&args, "")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let operators = show(&["--tier", "operator"]);
    assert!(!operators.is_empty());
    assert!(operators.iter().all(|r| r.tier() == Some(Tier::Operator)));
    let limits = show(&["--reason-code", "auth-limit"]);
    assert!(!limits.is_empty());
    for record in &limits {
        let Body::Decision(d) = &record.body else {
            panic!("not a decision")
        };
        assert!(d.decision.reason_code().starts_with("auth-limit."));
    }
    let one = show(&["--item", "r-1001"]);
    assert_eq!(one.len(), 1);
    let gate_loaded = show(&[
        "--plugin",
        "confidence-gate",
        "--since",
        "2000-01-01T00:00:00Z",
    ]);
    assert!(
        gate_loaded
            .iter()
            .any(|r| matches!(&r.body, Body::Lifecycle { event } if event.name() == "loaded"))
    );
    assert!(show(&["--until", "2000-01-01T00:00:00Z"]).is_empty());
    let table = run_ok(
        &["audit", "show", audit_arg, "--table", "--item", "r-1001"],
        "",
    );
    assert!(table.lines().next().unwrap().contains("reason code"));
    assert!(table.contains("auth-limit.exceeded"), "{table}");

    let bad_tier = handoff(&["audit", "show", audit_arg, "--tier", "urgent"], "");
    assert_eq!(bad_tier.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_tier.stderr).contains("unknown tier `urgent`"));

    // Break it: delete record 8.
    let file = &log_files(&audit).unwrap()[0];
    let mut stored = lines(file);
    stored.remove(7);
    write_lines(file, &stored);
    let out = handoff(&["audit", "verify", file.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deleted at seq 8"), "{stdout}");
}

#[test]
fn every_lifecycle_event_reaches_the_log() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("policies");
    let cache = work.path().join("cache");
    write_reference_policies(&dir);
    let log =
        Arc::new(AuditLog::open(&work.path().join("audit"), options(Durability::Batch)).unwrap());
    let runtime = || Runtime::new().unwrap().with_cache(&cache).unwrap();
    let live = LivePolicies::open(runtime(), &dir, audit_sink(log.clone())).unwrap();

    let gate = dir.join("confidence-gate.wasm");
    let original = fs::read(&gate).unwrap();
    fs::write(&gate, rebuilt(&original, 1)).unwrap();
    live.reload(["confidence-gate"]); // swapped
    fs::write(&gate, b"not a component").unwrap();
    live.reload(["confidence-gate"]); // rejected, the rebuilt one keeps serving

    fs::write(dir.join("hostile.wasm"), HOSTILE).unwrap();
    fs::write(dir.join("hostile.toml"), "[config]\nmode = \"panic\"\n").unwrap();
    live.reload(["hostile"]); // loaded
    let mut evaluator = LiveEvaluator::new(live.clone());
    let item = item(json!({"id": "faulty-1"}));
    let decision = evaluator.evaluate(&item).unwrap();
    assert_eq!(decision.tier(), Tier::Operator, "a fault escalates");
    log.record_decision(&item, &decision, None).unwrap(); // decision + fault
    fs::remove_file(dir.join("hostile.wasm")).unwrap();
    fs::remove_file(dir.join("hostile.toml")).unwrap();
    live.reload(["hostile"]); // unloaded

    // A restart whose cached compliance artifact is corrupt.
    let sha = sha256(&fs::read(dir.join("compliance-limits.wasm")).unwrap());
    let entry = live.runtime().cache().unwrap().entry_path(&sha);
    let mut bytes = fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&entry, bytes).unwrap();
    fs::write(&gate, &original).unwrap();
    let _restarted = LivePolicies::open(runtime(), &dir, audit_sink(log.clone())).unwrap();
    drop(evaluator);
    drop(live);
    log.flush().unwrap();

    let files = log_files(&work.path().join("audit")).unwrap();
    verify(&files).unwrap();
    let events: Vec<String> = query::read(&files)
        .unwrap()
        .into_iter()
        .map(|e| match e.record.body {
            Body::Lifecycle {
                event:
                    LifecycleEvent::Generation {
                        generation,
                        plugins,
                        ..
                    },
            } => format!("generation {generation}: {} plugins", plugins.len()),
            Body::Lifecycle { event } => format!("{} {}", event.name(), event.plugin()),
            Body::Decision(d) => format!("decision {}", d.decision.id),
            Body::Recovery { .. } => "recovery".into(),
            Body::Outage { .. } => "outage".into(),
            Body::Handoff { event } => format!("handoff {}", event.kind),
        })
        .collect();
    assert_eq!(
        events,
        [
            "loaded compliance-limits",
            "loaded confidence-gate",
            "generation 1: 2 plugins",
            "swapped confidence-gate",
            "generation 2: 2 plugins",
            "rejected confidence-gate",
            "loaded hostile",
            "generation 3: 3 plugins",
            "decision faulty-1",
            "fault hostile",
            "unloaded hostile",
            "generation 4: 2 plugins",
            "cache-recompiled compliance-limits",
            "loaded compliance-limits",
            "loaded confidence-gate",
            "generation 1: 2 plugins",
        ]
    );
}

#[test]
fn acknowledged_sync_records_survive_kill_9() {
    let work = tempfile::tempdir().unwrap();
    let audit = work.path().join("audit");
    let policies = work.path().join("policies");
    write_reference_policies(&policies);
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args([
            "watch",
            "--no-cache",
            "--input",
            "-",
            "--durability",
            "sync",
        ])
        .arg("--policies")
        .arg(&policies)
        .arg("--data")
        .arg(work.path().join("data"))
        .arg("--audit")
        .arg(&audit)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut decisions = BufReader::new(child.stdout.take().unwrap());
    let mut acknowledged = Vec::new();
    for (i, item) in sample_items().iter().cycle().take(40).enumerate() {
        let mut item = serde_json::to_value(item).unwrap();
        item["id"] = json!(format!("k-{i}"));
        writeln!(stdin, "{item}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        decisions.read_line(&mut line).unwrap();
        let decision: Value = serde_json::from_str(&line).unwrap();
        acknowledged.push(decision["id"].as_str().unwrap().to_string());
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(10));

    // Reopening repairs whatever the kill left; then every acknowledged
    // decision is in a sound chain.
    drop(AuditLog::open(&audit, options(Durability::Sync)).unwrap());
    let files = log_files(&audit).unwrap();
    verify(&files).unwrap();
    let recorded: Vec<String> = query::read(&files)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.record.body {
            Body::Decision(d) => Some(d.decision.id),
            _ => None,
        })
        .collect();
    assert_eq!(recorded, acknowledged);
}
