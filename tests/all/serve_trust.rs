//! What `handoff serve` can be trusted with: who acted (principals, token
//! digests, JWTs), whether it is ready (a full disk, a damaged store), an
//! audit chain that a forger with write access cannot rewrite unseen, and
//! an API description whose bounds are the server's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{Tmpfs, fill};
use crate::serve::{Server, audit_verify, item};

const BOT: &str = "bot-token-5d1e";
const ALICE: &str = "alice-token-0a9f";
const BOB: &str = "bob-token-77c3";

fn hex_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key_pem(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/all/keys")
        .join(name);
    std::fs::read(path).unwrap()
}

fn encoding_key(name: &str, algorithm: Algorithm) -> EncodingKey {
    let pem = key_pem(name);
    match algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

fn jwt(key: &str, algorithm: Algorithm, kid: &str, claims: &Value) -> String {
    let header = Header {
        kid: Some(kid.into()),
        ..Header::new(algorithm)
    };
    jsonwebtoken::encode(&header, claims, &encoding_key(key, algorithm)).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(name: &str, roles: &[&str], exp: u64) -> Value {
    json!({"sub": name, "roles": roles, "iss": "https://id.test", "aud": "handoff", "exp": exp})
}

/// A config with three named principals and a JWT key set (Ed25519 `ed`,
/// RSA `rsa`).
fn trust_config(dir: &Path) -> String {
    let mut keys = Vec::new();
    for (file, algorithm, kid) in [
        ("jwt-ed25519.pem", Algorithm::EdDSA, "ed"),
        ("jwt-rsa.pem", Algorithm::RS256, "rsa"),
    ] {
        let mut jwk = Jwk::from_encoding_key(&encoding_key(file, algorithm), algorithm).unwrap();
        jwk.common.key_id = Some(kid.into());
        keys.push(jwk);
    }
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, serde_json::to_vec(&JwkSet { keys }).unwrap()).unwrap();
    let config = dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[[principals]]\nname = \"bot\"\nroles = [\"agent\"]\ntoken-sha256 = [\"{}\"]\n\
             [[principals]]\nname = \"alice\"\nroles = [\"operator\"]\ntoken-sha256 = [\"{}\"]\n\
             [[principals]]\nname = \"bob\"\nroles = [\"operator\", \"compliance\"]\ntoken-sha256 = [\"{}\"]\n\
             [jwt]\njwks-file = \"{}\"\nissuer = \"https://id.test\"\naudience = \"handoff\"\nleeway-secs = 0\n",
            hex_digest(BOT),
            hex_digest(ALICE),
            hex_digest(BOB),
            jwks.display()
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_string()
}

fn refund(server: &Server, id: &str) -> String {
    let (status, decided) = server.post(
        "/v1/evaluate",
        Some(BOT),
        &item(id, "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
    decided["handoff_id"].as_str().unwrap().to_string()
}

#[test]
fn a_principal_cannot_act_under_anothers_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = trust_config(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", &config]);
    let id = refund(&server, "p-1");

    let (status, claimed) = server.post(
        "/v1/queue/claim",
        Some(ALICE),
        &json!({"role": "finance-operator"}),
    );
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["handoff"]["lease_owner"], "alice");

    // Bob names Alice: refused, and nothing changes.
    let (status, refused) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        Some(BOB),
        &json!({"worker": "alice", "outcome": "approved", "warranted": true}),
    );
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "not-your-identity");
    assert_eq!(refused["error"]["field"], "worker");
    // As himself, he does not hold the lease.
    let (status, refused) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        Some(BOB),
        &json!({"outcome": "approved", "warranted": true}),
    );
    assert_eq!(status, 409, "{refused}");
    let (status, acked) = server.call("POST", &format!("/v1/handoffs/{id}/ack"), Some(ALICE), None);
    assert_eq!(status, 200, "{acked}");
    let (status, resolved) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        Some(ALICE),
        &json!({"worker": "alice", "outcome": "approved", "warranted": true}),
    );
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["state"], "resolved");

    // The scheme is case-insensitive (RFC 7235).
    let url = format!("http://{}/v1/queue", server.address());
    let lower = ureq::get(&url)
        .header("Authorization", &format!("bearer {ALICE}"))
        .call()
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);

    // JWTs: EdDSA and RS256, checked for issuer, audience and expiry.
    let dana = jwt(
        "jwt-ed25519.pem",
        Algorithm::EdDSA,
        "ed",
        &claims("dana", &["operator"], now() + 600),
    );
    let erin = jwt(
        "jwt-rsa.pem",
        Algorithm::RS256,
        "rsa",
        &claims("erin", &["compliance"], now() + 600),
    );
    let second = refund(&server, "p-2");
    let (status, claimed) = server.post(
        "/v1/queue/claim",
        Some(&dana),
        &json!({"role": "finance-operator"}),
    );
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["handoff"]["id"], second.as_str());
    assert_eq!(claimed["handoff"]["lease_owner"], "dana");
    assert_eq!(server.get("/v1/audit/verify", Some(&erin)).0, 200);
    assert_eq!(
        server
            .post("/v1/queue/claim", Some(&erin), &json!({"role": "r"}))
            .0,
        403,
        "a compliance JWT opens no operator route"
    );
    for (label, token) in [
        (
            "expired",
            jwt(
                "jwt-ed25519.pem",
                Algorithm::EdDSA,
                "ed",
                &claims("dana", &["operator"], now() - 3600),
            ),
        ),
        (
            "another audience",
            jwt(
                "jwt-ed25519.pem",
                Algorithm::EdDSA,
                "ed",
                &json!({"sub": "dana", "roles": ["operator"], "iss": "https://id.test", "aud": "other", "exp": now() + 600}),
            ),
        ),
        (
            "another issuer",
            jwt(
                "jwt-ed25519.pem",
                Algorithm::EdDSA,
                "ed",
                &json!({"sub": "dana", "roles": ["operator"], "iss": "https://evil.test", "aud": "handoff", "exp": now() + 600}),
            ),
        ),
        (
            "a key not in the set",
            jwt(
                "jwt-ed25519-other.pem",
                Algorithm::EdDSA,
                "ed",
                &claims("dana", &["operator"], now() + 600),
            ),
        ),
    ] {
        let (status, error) = server.get("/v1/queue", Some(&token));
        assert_eq!(status, 401, "{label}: {error}");
        assert!(!error.to_string().contains(&token), "the token is echoed");
    }

    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    for secret in [BOT, ALICE, BOB, dana.as_str()] {
        assert!(!stderr.contains(secret), "a credential reached the log");
    }
    // The audit trail names the submitter of each decision.
    let principals: Vec<String> = audit_records(&data.join("audit"))
        .iter()
        .filter(|r| r["type"] == "decision")
        .map(|r| r["principal"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(principals, ["bot", "bot"]);
    // The store's events name who really acted.
    let shown = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["queue", "show", &id, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("alice"), "{shown}");
    assert!(!shown.contains("bob"), "{shown}");
}

pub(crate) fn audit_records(dir: &Path) -> Vec<Value> {
    handoff_audit::log_files(dir)
        .unwrap()
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[test]
fn readiness_follows_a_full_disk_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mounted = Tmpfs::mount(&data, "16m");
    let server = Server::start(&data, &["--no-cache"]);
    let (status, _) = server.post("/v1/evaluate", None, &item("d-0", "reply", 0.95, None));
    assert_eq!(status, 200);
    assert_eq!(server.get("/readyz", None).0, 200);

    let filler = fill(&data);
    let mut refused = None;
    for n in 1..=400 {
        let (status, body) = server.post(
            "/v1/evaluate",
            None,
            &item(&format!("d-{n}"), "refund", 0.9, Some(125_000)),
        );
        if status != 200 {
            refused = Some((status, body, format!("d-{n}")));
            break;
        }
    }
    let (status, body, refused_id) = refused.expect("a full disk refuses evaluations");
    assert_eq!(status, 503, "{body}");
    // A retry may still fit a short record into the tail of a page the log
    // already has, and so resume for a moment; the next decisions use up
    // that room.
    let mut not_ready = None;
    for n in 0..400 {
        let (status, ready) = server.get("/readyz", None);
        if status == 503 {
            not_ready = Some(ready);
            break;
        }
        server.post(
            "/v1/evaluate",
            None,
            &item(&format!("e-{n}"), "refund", 0.9, Some(125_000)),
        );
    }
    let ready = not_ready.expect("readiness turns 503 while the disk is full");
    let reasons = ready["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r == "audit-stopped" || r == "store-unavailable"),
        "{ready}"
    );
    let text = ready.to_string();
    assert!(
        !text.contains("os error") && !text.contains("No space"),
        "readiness shows no raw error: {text}"
    );

    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ready) = server.get("/readyz", None);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {ready}");
        thread::sleep(Duration::from_millis(200));
    }
    let (status, decided) = server.post(
        "/v1/evaluate",
        None,
        &item("d-after", "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
    assert!(decided["handoff_id"].is_string());
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    let (intact, said) = audit_verify(&data);
    assert!(intact, "{said}");
    let records = audit_records(&data.join("audit"));
    assert!(
        records.iter().any(|r| r["type"] == "outage"),
        "the outage is in the chain"
    );
    // Every decision in the log was answered: none refused with a 503
    // reached it later (at recovery or at shutdown).
    let logged: Vec<&str> = records
        .iter()
        .filter(|r| r["type"] == "decision")
        .filter_map(|r| r["decision"]["id"].as_str())
        .collect();
    assert!(logged.contains(&"d-after"), "{logged:?}");
    if body["error"]["code"] == "audit-unavailable" {
        assert!(
            !logged.contains(&refused_id.as_str()),
            "{refused_id} was refused by the audit log but is in it"
        );
    }
    drop(mounted);
}

/// Runs `handoff serve` expecting it to refuse to start: its stderr.
fn refused_start(data: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a damaged store was served");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    stderr
}

#[test]
fn a_damaged_store_is_refused_at_start_with_the_way_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    for n in 0..40 {
        refund_open(&server, &format!("s-{n}"));
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    let db = data.join("handoffs.db");
    for side in ["handoffs.db-wal", "handoffs.db-shm"] {
        let _ = std::fs::remove_file(data.join(side));
    }
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 3 * 4096, "the store has pages to damage");
    // Keep the header page; scribble over every other page.
    for (i, byte) in bytes.iter_mut().enumerate().skip(4096) {
        if (i / 97) % 3 == 0 {
            *byte = 0xA5;
        }
    }
    std::fs::write(&db, &bytes).unwrap();
    let said = refused_start(&data);
    assert!(said.contains("damaged"), "{said}");
    assert!(
        said.contains(".recover") && said.contains("backup"),
        "{said}"
    );
    assert_eq!(said.matches("is damaged").count(), 1, "said once: {said}");

    std::fs::write(&db, "this is not a database ".repeat(400)).unwrap();
    let said = refused_start(&data);
    assert!(said.contains("damaged"), "{said}");
    assert_eq!(said.matches("is damaged").count(), 1, "said once: {said}");
}

fn refund_open(server: &Server, id: &str) {
    let (status, decided) = server.post(
        "/v1/evaluate",
        None,
        &item(id, "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
}

/// `handoff audit verify` with `args`: exit success and stdout.
fn verify_cli(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["audit", "verify"])
        .args(args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Rewrites the log from record `from` on: `edit` changes the record's
/// body, and every hash from there on is recomputed, as a forger with write
/// access would.
fn rewrite_and_rehash(dir: &Path, from: u64, edit: impl Fn(&mut serde_json::Map<String, Value>)) {
    let mut prev: Option<String> = None;
    for file in handoff_audit::log_files(dir).unwrap() {
        let mut out = String::new();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let mut record: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            let seq = record["seq"].as_u64().unwrap();
            if seq < from {
                prev = record["hash"].as_str().map(str::to_string);
                out.push_str(line);
                out.push('\n');
                continue;
            }
            let ts: chrono::DateTime<chrono::Utc> = record["ts"].as_str().unwrap().parse().unwrap();
            for field in ["seq", "ts", "prev", "hash"] {
                record.remove(field);
            }
            if seq == from {
                edit(&mut record);
            }
            let body = serde_json::to_string(&record).unwrap();
            let (line, hash) =
                handoff_audit::record::encode(seq, ts, prev.as_deref().unwrap(), &body);
            out.push_str(&line);
            out.push('\n');
            prev = Some(hash);
        }
        std::fs::write(&file, out).unwrap();
    }
}

#[test]
fn signed_checkpoints_expose_a_rewritten_or_shortened_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--audit-max-file-bytes", "8192"]);
    let batch: Vec<Value> = (0..30)
        .map(|n| item(&format!("a-{n}"), "refund", 0.9, Some(125_000 + n)))
        .collect();
    let (status, _) = server.post("/v1/evaluate", None, &Value::Array(batch));
    assert_eq!(status, 200);
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    let audit = data.join("audit");
    let witness = data.join("witness/audit-checkpoints.jsonl");
    let key = data.join("keys/audit-checkpoint.key.pub");
    let store = data.join("handoffs.db");
    assert!(
        handoff_audit::log_files(&audit).unwrap().len() > 2,
        "the log rotated"
    );
    let anchored = |log: &Path, checkpoints: &Path| {
        verify_cli(&[
            log.as_os_str(),
            "--checkpoints".as_ref(),
            checkpoints.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
    };
    for checkpoints in [&witness, &store] {
        let (ok, said) = anchored(&audit, checkpoints);
        assert!(ok, "{said}");
        assert!(said.contains("anchored: records 1..="), "{said}");
        assert!(
            !said.contains("unanchored"),
            "the closing checkpoint covers all: {said}"
        );
    }

    // Rewriting a record and re-hashing everything after it fools the
    // chain, but not the checkpoint.
    let forged = dir.path().join("forged");
    copy_dir(&audit, &forged);
    rewrite_and_rehash(&forged, 5, |record| {
        record["decision"]["tier"] = json!("none");
    });
    let (ok, said) = verify_cli(&[forged.as_os_str()]);
    assert!(ok, "without a checkpoint, a re-hashed log verifies: {said}");
    let (ok, said) = anchored(&forged, &witness);
    assert!(!ok && said.contains("signed checkpoint"), "{said}");

    // Cutting records off the end: the same.
    let cut = dir.path().join("cut");
    copy_dir(&audit, &cut);
    let files = handoff_audit::log_files(&cut).unwrap();
    let last = files.last().unwrap();
    let text = std::fs::read_to_string(last).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    if kept.len() == 1 {
        std::fs::remove_file(last).unwrap();
    } else {
        std::fs::write(last, kept[..kept.len() - 1].join("\n") + "\n").unwrap();
    }
    let (ok, said) = verify_cli(&[cut.as_os_str()]);
    assert!(ok, "without a checkpoint, a shortened log verifies: {said}");
    let (ok, said) = anchored(&cut, &store);
    assert!(!ok && said.contains("cut off the end"), "{said}");

    // Records appended after the last checkpoint are named unanchored.
    let extended = dir.path().join("extended");
    copy_dir(&audit, &extended);
    let files = handoff_audit::log_files(&extended).unwrap();
    let last = files.last().unwrap();
    let text = std::fs::read_to_string(last).unwrap();
    let tail: serde_json::Map<String, Value> =
        serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let seq = tail["seq"].as_u64().unwrap();
    let mut body = tail.clone();
    for field in ["seq", "ts", "prev", "hash"] {
        body.remove(field);
    }
    let (line, _) = handoff_audit::record::encode(
        seq + 1,
        chrono::Utc::now(),
        tail["hash"].as_str().unwrap(),
        &serde_json::to_string(&body).unwrap(),
    );
    std::fs::write(last, format!("{text}{line}\n")).unwrap();
    let (ok, said) = anchored(&extended, &witness);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("unanchored: records {}..={}", seq + 1, seq + 1)),
        "{said}"
    );

    // A forged checkpoint is evidence, not noise.
    let forged_witness = dir.path().join("forged-checkpoints.jsonl");
    let witness_text = std::fs::read_to_string(&witness).unwrap();
    std::fs::write(
        &forged_witness,
        witness_text.replace("\"seq\":", "\"seq\":1"),
    )
    .unwrap();
    let (ok, said) = anchored(&audit, &forged_witness);
    assert!(!ok && said.contains("untrusted"), "{said}");

    // Deleting the head of the log, or its whole first file, is a break.
    let headless = dir.path().join("headless");
    copy_dir(&audit, &headless);
    let first = headless.join("audit-000001.jsonl");
    let text = std::fs::read_to_string(&first).unwrap();
    let rest: Vec<&str> = text.lines().skip(2).collect();
    std::fs::write(&first, rest.join("\n") + "\n").unwrap();
    let (ok, said) = verify_cli(&[headless.as_os_str()]);
    assert!(!ok && said.contains("missing from the head"), "{said}");
    let no_first = dir.path().join("no-first");
    copy_dir(&audit, &no_first);
    std::fs::remove_file(no_first.join("audit-000001.jsonl")).unwrap();
    let (ok, said) = verify_cli(&[no_first.as_os_str()]);
    assert!(!ok && said.contains("broken"), "{said}");
}

/// Every numeric bound and every minimum length the API description states
/// is the server's: the bound itself is taken, one past it is refused.
#[test]
fn the_openapi_bounds_are_the_servers_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let document: Value = serde_json::from_str(handoff_server::OPENAPI).unwrap();
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let concrete = path.replace("{id}", "h-none");
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] != "query" {
                    continue;
                }
                let name = parameter["name"].as_str().unwrap();
                let schema = &parameter["schema"];
                let mut cases: Vec<(String, bool)> = Vec::new();
                if let Some(max) = schema["maximum"].as_u64() {
                    cases.push((max.to_string(), true));
                    cases.push(((max as u128 + 1).to_string(), false));
                }
                if let (Some(low), Some(high)) = (
                    schema["exclusiveMinimum"].as_f64(),
                    schema["exclusiveMaximum"].as_f64(),
                ) {
                    cases.push((low.to_string(), false));
                    cases.push((high.to_string(), false));
                    cases.push((((low + high) / 2.0).to_string(), true));
                }
                for (value, accepted) in cases {
                    let mut url = format!("{concrete}?{name}={value}");
                    if concrete == "/v1/replay" && name != "plugin" {
                        url.push_str("&plugin=confidence-gate");
                    }
                    let (status, body) =
                        server.call(method.to_uppercase().as_str(), &url, None, Some(b""));
                    let invalid = status == 400
                        && (body["error"]["code"] == "invalid-query"
                            || body["error"]["field"] == name);
                    assert_eq!(!invalid, accepted, "{method} {url}: {status} {body}");
                    checked += 1;
                }
            }
            let body_schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            let properties = body_schema["properties"].as_object();
            // A complete, valid body of the fields the operation takes.
            let valid =
                json!({"role": "r", "worker": "w", "outcome": "approved", "warranted": true});
            let base: serde_json::Map<String, Value> = valid
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| properties.is_some_and(|p| p.contains_key(*k)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (field, schema) in properties.into_iter().flatten() {
                if schema["minLength"].as_u64() == Some(1) {
                    let (status, answer) =
                        server.post(&concrete, None, &Value::Object(base.clone()));
                    assert_ne!(status, 400, "{method} {concrete} with {base:?}: {answer}");
                    let mut body = base.clone();
                    body.insert(field.clone(), json!(""));
                    let (status, answer) = server.post(&concrete, None, &Value::Object(body));
                    assert_eq!(
                        status, 400,
                        "{method} {concrete} with empty {field}: {answer}"
                    );
                    assert_eq!(answer["error"]["field"], field.as_str(), "{answer}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 12, "{checked} bounds checked");
}

#[test]
fn a_human_action_while_the_audit_log_is_stopped_reaches_it_once_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let audit = dir.path().join("audit");
    // Only the audit log is on the small disk: the store keeps working.
    let mounted = Tmpfs::mount(&audit, "4m");
    let server = Server::start(&data, &["--audit", audit.to_str().unwrap()]);
    let (status, decided) = server.post(
        "/v1/evaluate",
        None,
        &item("o-1", "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
    let id = decided["handoff_id"].as_str().unwrap().to_string();

    let filler = fill(&audit);
    // Use up whatever room the log's last page still has.
    let mut stopped = false;
    for n in 0..400 {
        let (status, _) = server.post(
            "/v1/evaluate",
            None,
            &item(&format!("o-f{n}"), "reply", 0.95, None),
        );
        let (ready, _) = server.get("/readyz", None);
        if status == 503 && ready == 503 {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the audit log stopped on the full disk");

    // The store takes the claim; its audit record waits for the log.
    let (status, claimed) = server.post(
        "/v1/queue/claim",
        None,
        &json!({"role": "finance-operator", "worker": "fay"}),
    );
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["handoff"]["id"], id.as_str());

    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Until the log resumes, a failed write's remains may sit at its
        // end (they are cut when it does): read it only once it is ready.
        if server.get("/readyz", None).0 != 200 {
            assert!(Instant::now() < deadline, "the audit log never resumed");
            thread::sleep(Duration::from_millis(200));
            continue;
        }
        let claims: Vec<Value> = audit_records(&audit)
            .into_iter()
            .filter(|r| r["type"] == "handoff" && r["event"]["kind"] == "claimed")
            .collect();
        if !claims.is_empty() {
            assert_eq!(claims.len(), 1);
            assert_eq!(claims[0]["event"]["actor"], "fay");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the claim never reached the audit log"
        );
        // Readiness retries the log; the SLA tick forwards the backlog.
        server.get("/readyz", None);
        thread::sleep(Duration::from_millis(200));
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    let verified = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    drop(mounted);
}
