//! `handoff serve`: the real binary on a loopback port, driven by a real
//! HTTP client.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use handoff_model::Named;
use handoff_server::{OPENAPI, ROUTES, Role};
use serde_json::{Value, json};

pub(crate) const AGENT: &str = "agent-token-1f0c";
pub(crate) const OPERATOR: &str = "operator-token-77ab";
pub(crate) const COMPLIANCE: &str = "compliance-token-c3d2";

/// A running `handoff serve`, stopped (killed if need be) when dropped.
pub(crate) struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
    http: ureq::Agent,
}

impl Server {
    /// Starts a server on a free loopback port over `data`, with `extra`
    /// arguments, and waits until it listens.
    pub(crate) fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(data, extra, |_| {})
    }

    /// [`Server::start`], with the command adjusted first (limits, the
    /// environment).
    pub(crate) fn start_with(
        data: &Path,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--debounce-ms", "30"])
            .arg("--data")
            .arg(data)
            .args(extra)
            .env_remove("HANDOFF_AGENT_TOKENS")
            .env_remove("HANDOFF_OPERATOR_TOKENS")
            .env_remove("HANDOFF_COMPLIANCE_TOKENS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut command);
        let mut child = command.spawn().expect("the server starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr is piped");
        let lines = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Kept before the address is announced, so that whoever
                // waited for the address also finds the line in stderr.
                let address = line
                    .strip_prefix("handoff: listening on ")
                    .map(str::to_string);
                lines.lock().unwrap().push(line);
                if let Some(address) = address {
                    let _ = address_tx.send(address);
                }
            }
        });
        let base = match address_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not listen; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Server {
            child,
            base,
            stderr,
            http,
        }
    }

    /// Sends a request; answers the status and the body as JSON (or as a
    /// JSON string when it is not JSON).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let url = format!("{}{}", self.base, path);
        let result = match (method, body) {
            ("GET", _) => {
                let mut request = self.http.get(&url);
                if let Some(token) = token {
                    request = request.header("Authorization", &format!("Bearer {token}"));
                }
                request.call()
            }
            (_, body) => {
                let mut request = self.http.post(&url).content_type("application/json");
                if let Some(token) = token {
                    request = request.header("Authorization", &format!("Bearer {token}"));
                }
                request.send(body.unwrap_or(b""))
            }
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// POSTs `body` as `content_type`.
    pub(crate) fn post_as(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let url = format!("{}{}", self.base, path);
        let mut response = self
            .http
            .post(&url)
            .content_type(content_type)
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call("GET", path, token, None)
    }

    /// The base URL it printed, `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The address it listens on, `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub(crate) fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.call("POST", path, token, Some(body.to_string().as_bytes()))
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits for a line of stderr containing `needle`.
    pub(crate) fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, with no chance to flush or close anything.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the pipe.
                thread::sleep(Duration::from_millis(100));
                return (status, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within a minute of SIGTERM; its threads:\n{}\nits log:\n{}",
                thread_states(&pid),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Each thread of process `pid` with where the kernel has it waiting: what
/// a hung server was doing, for the failure message.
fn thread_states(pid: &str) -> String {
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "(gone)".into();
    };
    tasks
        .filter_map(Result::ok)
        .map(|task| {
            let dir = task.path();
            let state = read(dir.join("stat"));
            let state = state
                .rsplit(") ")
                .next()
                .and_then(|rest| rest.split(' ').next());
            format!(
                "  {} {} {}",
                read(dir.join("comm")).trim(),
                state.unwrap_or("?"),
                read(dir.join("wchan")).trim()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn item(id: &str, kind: &str, confidence: f64, amount_minor: Option<i64>) -> Value {
    let mut item = json!({
        "id": id, "kind": kind, "agent": "support-bot",
        "text": "Customer asks about order 4411", "confidence": confidence,
    });
    if let Some(minor) = amount_minor {
        item["amount"] = json!({"minor": minor, "currency": "USD"});
    }
    item
}

/// The reference policies in `data/policies`, the safety rule's acknowledge
/// deadline cut to one second (so an SLA clock sees it pass within a test),
/// `prefix` put before compliance-limits' manifest.
pub(crate) fn urgent_policies(data: &Path, prefix: &str) {
    let policies = data.join("policies");
    handoff_pipeline::reference::write_to(&policies).unwrap();
    let manifest = policies.join("compliance-limits.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("ack-sla-secs = 300"));
    let text = text.replacen("ack-sla-secs = 300", "ack-sla-secs = 1", 1);
    std::fs::write(&manifest, format!("{prefix}{text}")).unwrap();
}

pub(crate) fn config_with_tokens(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("serve.toml");
    std::fs::write(
        &path,
        format!(
            "{extra}\n[tokens]\nagent = [\"{AGENT}\"]\noperator = [\"{OPERATOR}\"]\ncompliance = [\"{COMPLIANCE}\"]\n"
        ),
    )
    .unwrap();
    path
}

/// Decision records in the audit log, by item id.
fn audited_items(data: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            if record["type"] == "decision" {
                ids.push(record["decision"]["id"].as_str().unwrap().to_string());
            }
        }
    }
    ids
}

/// `handoff audit verify` on the server's log: whether it passed, and what
/// it said.
pub(crate) fn audit_verify(data: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["audit", "verify"])
        .arg(data.join("audit"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[test]
fn an_item_goes_from_evaluation_to_resolution_and_the_agent_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(dir.path(), &[]));

    // Over the operator limit: a compliance rule hands it to finance.
    let (status, decided) = server.post(
        "/v1/evaluate",
        None,
        &item("r-1", "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["tier"], "operator");
    assert_eq!(decided["reason_code"], "auth-limit.exceeded");
    assert_eq!(decided["dispatch"]["action"], "handoff");
    let id = decided["handoff_id"].as_str().unwrap().to_string();
    assert_eq!(decided["dispatch"]["id"], id.as_str());

    // A routine reply proceeds, and gets no handoff.
    let (status, proceed) = server.post("/v1/evaluate", None, &item("m-1", "reply", 0.95, None));
    assert_eq!(status, 200);
    assert_eq!(proceed["dispatch"]["action"], "proceed");
    assert!(proceed["handoff_id"].is_null());

    // The agent waits for the outcome while an operator works it.
    let waiting = {
        let server = server.clone();
        let id = id.clone();
        thread::spawn(move || server.get(&format!("/v1/handoffs/{id}?wait=30"), None))
    };
    let (status, claimed) = server.post(
        "/v1/queue/claim",
        None,
        &json!({"role": "finance-operator", "worker": "alice"}),
    );
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["handoff"]["id"], id.as_str());
    assert_eq!(claimed["handoff"]["payload"]["item"]["id"], "r-1");
    assert_eq!(
        claimed["handoff"]["payload"]["decision"]["verdicts"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "every plugin's view travels with the handoff"
    );
    let (status, _) = server.post(
        &format!("/v1/handoffs/{id}/ack"),
        None,
        &json!({"worker": "bob"}),
    );
    assert_eq!(status, 409, "only the claimant acknowledges");
    let (status, acked) = server.post(
        &format!("/v1/handoffs/{id}/ack"),
        None,
        &json!({"worker": "alice"}),
    );
    assert_eq!(status, 200);
    assert_eq!(acked["state"], "acknowledged");
    // Long work: alice keeps her lease; bob cannot take it over.
    let (status, _) = server.post(
        &format!("/v1/handoffs/{id}/renew"),
        None,
        &json!({"worker": "bob"}),
    );
    assert_eq!(status, 409, "only the holder renews");
    let (status, renewed) = server.post(
        &format!("/v1/handoffs/{id}/renew"),
        None,
        &json!({"worker": "alice"}),
    );
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["lease_owner"], "alice");
    let (status, resolved) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        None,
        &json!({"worker": "alice", "outcome": "corrected", "correction": "refund 500.00 USD",
                "note": "within policy after review", "warranted": true}),
    );
    assert_eq!(status, 200, "{resolved}");

    let (status, seen) = waiting.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        seen["state"], "resolved",
        "the long poll answers with the outcome"
    );
    assert_eq!(seen["resolution"]["outcome"], "corrected");
    assert_eq!(seen["resolution"]["correction"], "refund 500.00 USD");

    let (status, again) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        None,
        &json!({"worker": "alice", "outcome": "approved", "warranted": true}),
    );
    assert_eq!(status, 409, "{again}");

    let (_, metrics) = server.get("/metrics", None);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("handoff_evaluations_total{tier=\"operator\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("handoff_evaluations_total{tier=\"none\"} 1"));
    assert!(metrics.contains("handoff_plugin_seconds_count{plugin=\"compliance-limits\"} 2"));
    assert!(metrics.contains("handoff_plugin_fuel_total{plugin=\"confidence-gate\"}"));
    assert!(metrics.contains("handoff_reloads_total{outcome=\"applied\"} 2"));
    assert!(
        metrics.contains("handoff_lease_expirations_total 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("handoff_queue_depth{"),
        "nothing is left in the queue"
    );

    // The serving component as a candidate changes nothing it replays.
    let candidate = std::fs::read(dir.path().join("policies/confidence-gate.wasm")).unwrap();
    let (status, replayed) = server.call(
        "POST",
        "/v1/replay?plugin=confidence-gate",
        None,
        Some(&candidate),
    );
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["report"]["replayed"], 2, "{replayed}");
    assert_eq!(replayed["report"]["changed"].as_array().unwrap().len(), 0);
    assert_eq!(replayed["candidate"]["name"], "confidence-gate");
    assert!(
        replayed["candidate"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|import| import["grant"]["grant"] != "refused")
    );
    let (_, policies) = server.get("/v1/policies", None);
    assert_eq!(policies["generation"], 1, "a replay activates nothing");

    let (status, report) = server.get("/v1/report?cost-per-human-minute=2", None);
    assert_eq!(status, 200);
    let overall = &report["overall"];
    assert_eq!(overall["decisions"], 2, "{report}");
    assert_eq!(
        (overall["work"].clone(), overall["autonomous"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(overall["finished_with_people"], 1);
    assert_eq!(overall["first_contact_resolution"], 1.0);
    assert_eq!(report["costs"]["cost_per_human_minute"], 2.0);
    // The calibration key comes from the policies serving now.
    let gate = &report["calibration"]["triggers"][0];
    assert_eq!(
        (gate["plugin"].as_str(), gate["config_key"].as_str()),
        (Some("confidence-gate"), Some("escalate-below"))
    );
    assert_eq!(gate["current"], 0.6);
    let (status, refused) = server.get("/v1/report?cost-per-agent-attempt=-1", None);
    assert_eq!(status, 400);
    assert_eq!(
        refused["error"]["field"], "cost-per-agent-attempt",
        "{refused}"
    );
    let (status, verified) = server.get("/v1/audit/verify", None);
    assert_eq!(status, 200);
    assert_eq!(verified["intact"], true);
    assert_eq!(
        verified["records"], 10,
        "two loads and their generation, two decisions and five handoff events: {verified}"
    );
}

#[test]
fn tokens_admit_each_role_to_its_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_tokens(dir.path(), "");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let body = item("t-1", "reply", 0.95, None);

    let (status, error) = server.post("/v1/evaluate", None, &body);
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "unauthorized");
    assert_eq!(
        server.post("/v1/evaluate", Some("not-a-token"), &body).0,
        401
    );
    let (status, error) = server.post("/v1/evaluate", Some(OPERATOR), &body);
    assert_eq!(status, 403);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent")
    );
    assert_eq!(server.post("/v1/evaluate", Some(AGENT), &body).0, 200);

    assert_eq!(server.get("/v1/queue", Some(AGENT)).0, 403);
    assert_eq!(server.get("/v1/queue", Some(OPERATOR)).0, 200);
    assert_eq!(server.get("/v1/audit/verify", Some(OPERATOR)).0, 403);
    assert_eq!(server.get("/v1/audit/verify", Some(COMPLIANCE)).0, 200);
    assert_eq!(server.get("/v1/policies", Some(AGENT)).0, 403);
    assert_eq!(server.get("/v1/policies", Some(COMPLIANCE)).0, 200);
    assert_eq!(
        server
            .post(
                "/v1/queue/claim",
                Some(COMPLIANCE),
                &json!({"role": "r", "worker": "w"})
            )
            .0,
        403
    );
    assert_eq!(server.get("/healthz", None).0, 200);
    assert_eq!(server.get("/readyz", None).0, 200);

    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    for token in [AGENT, OPERATOR, COMPLIANCE] {
        assert!(
            !stderr.contains(token),
            "a token reached the log:\n{stderr}"
        );
    }

    // With no token configured, only loopback.
    let open = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path().join("open"))
        .env_remove("HANDOFF_AGENT_TOKENS")
        .env_remove("HANDOFF_OPERATOR_TOKENS")
        .env_remove("HANDOFF_COMPLIANCE_TOKENS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!open.status.success());
    let said = String::from_utf8_lossy(&open.stderr);
    assert!(said.contains("refusing to listen on 0.0.0.0:0"), "{said}");
}

#[test]
fn bad_input_gets_a_clear_error_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "body-limit-bytes = 2048\nmax-batch = 3\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let error_of = |status: u16, body: &Value, expected: u16| {
        assert_eq!(status, expected, "{body}");
        body["error"].clone()
    };

    let (status, body) = server.call("POST", "/v1/evaluate", None, Some(b"{\"id\": "));
    let error = error_of(status, &body, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    let mut wrong_type = item("b-1", "reply", 0.9, None);
    wrong_type["confidence"] = json!("very");
    let (status, body) = server.post("/v1/evaluate", None, &wrong_type);
    assert_eq!(error_of(status, &body, 400)["field"], "confidence");

    let mut missing = item("b-2", "reply", 0.9, None);
    missing.as_object_mut().unwrap().remove("agent");
    let (status, body) = server.post(
        "/v1/evaluate",
        None,
        &json!([item("ok", "reply", 0.9, None), missing]),
    );
    assert_eq!(error_of(status, &body, 400)["field"], "[1].agent");

    let (status, body) = server.post("/v1/evaluate", None, &item("b-3", "reply", 1.5, None));
    assert_eq!(error_of(status, &body, 400)["field"], "confidence");

    let mut unknown = item("b-4", "reply", 0.9, None);
    unknown["confidnce"] = json!(0.9);
    let (status, body) = server.post("/v1/evaluate", None, &unknown);
    let error = error_of(status, &body, 400);
    assert!(
        error["message"].as_str().unwrap().contains("confidnce"),
        "{error}"
    );

    let (status, body) = server.call("POST", "/v1/evaluate", None, Some(&[0xff, 0xfe, 0x00]));
    error_of(status, &body, 400);
    let (status, body) = server.post("/v1/evaluate", None, &json!(42));
    error_of(status, &body, 400);
    let (status, body) = server.post("/v1/evaluate", None, &json!([]));
    error_of(status, &body, 400);

    let mut big = item("b-5", "reply", 0.9, None);
    big["text"] = json!("x".repeat(4096));
    let (status, body) = server.post("/v1/evaluate", None, &big);
    assert_eq!(error_of(status, &body, 413)["code"], "body-too-large");
    let batch: Vec<Value> = (0..4)
        .map(|i| item(&format!("n-{i}"), "reply", 0.9, None))
        .collect();
    let (status, body) = server.post("/v1/evaluate", None, &json!(batch));
    assert_eq!(error_of(status, &body, 413)["code"], "batch-too-large");
    // Refused for its size before the items past the bound are read.
    let mut oversized = batch.clone();
    oversized[3] = json!("not a work item");
    let (status, body) = server.post("/v1/evaluate", None, &json!(oversized));
    assert_eq!(error_of(status, &body, 413)["code"], "batch-too-large");
    let mut repeated = item("b-6", "reply", 0.9, None).to_string();
    repeated.insert_str(1, "\"kind\": \"refund\", ");
    let (status, body) = server.call("POST", "/v1/evaluate", None, Some(repeated.as_bytes()));
    let error = error_of(status, &body, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field `kind`"),
        "a field given twice is refused, not read as its last value: {error}"
    );

    let (status, body) = server.get("/v1/nothing-here", None);
    assert_eq!(error_of(status, &body, 404)["code"], "no-route");
    let (status, body) = server.get("/v1/handoffs/h-missing", None);
    let missing = error_of(status, &body, 404);
    assert_eq!(missing["code"], "not-found");
    assert_eq!(
        missing["field"], "id",
        "the path parameter at fault: {missing}"
    );
    let (status, body) = server.get("/v1/nothing-here", None);
    let no_route = error_of(status, &body, 404);
    assert!(
        no_route.as_object().unwrap().contains_key("field") && no_route["field"].is_null(),
        "`field` is always there, null when no field is at fault: {no_route}"
    );
    let (status, body) = server.get("/v1/handoffs/h-missing?wait=soon", None);
    error_of(status, &body, 400);
    let (status, body) = server.post(
        "/v1/handoffs/h-missing/resolve",
        None,
        &json!({"worker": "w", "outcome": "maybe", "warranted": true}),
    );
    assert_eq!(error_of(status, &body, 400)["field"], "outcome");
    let (status, body) = server.post(
        "/v1/handoffs/h-missing/resolve",
        None,
        &json!({"worker": "w", "outcome": "corrected", "warranted": true}),
    );
    assert_eq!(error_of(status, &body, 400)["field"], "correction");
    let (status, body) = server.post("/v1/queue/claim", None, &json!({"role": "r"}));
    assert_eq!(error_of(status, &body, 400)["field"], "worker");
    let (status, body) = server.get("/v1/report?target-error=2", None);
    assert_eq!(error_of(status, &body, 400)["field"], "target-error");
    let (status, body) = server.call(
        "POST",
        "/v1/replay?plugin=confidence-gate",
        None,
        Some(b"not wasm"),
    );
    assert_eq!(error_of(status, &body, 422)["code"], "candidate-rejected");
    let (status, body) = server.call("POST", "/v1/replay?plugin=../x", None, Some(b"\0asm"));
    assert_eq!(error_of(status, &body, 400)["field"], "plugin");

    // Mangled bodies on every POST route: each gets an answer, never a 5xx.
    let valid = item("m-0", "refund", 0.9, Some(70_000))
        .to_string()
        .into_bytes();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let posts: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect();
    for round in 0..120 {
        let mut body = valid.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % body.len();
            match next() % 3 {
                0 => body[at] = (next() % 256) as u8,
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, b"{}[]\",:0-e\\"[(next() % 11) as usize]),
            }
        }
        let path = posts[round % posts.len()].replace("{id}", "h-x");
        let (status, answer) = server.call("POST", &path, None, Some(&body));
        assert!(
            status < 500,
            "{path} answered {status} to {:?}: {answer}",
            String::from_utf8_lossy(&body)
        );
    }

    // Nothing above hurt it.
    assert_eq!(server.get("/healthz", None).0, 200);
    let (status, ok) = server.post("/v1/evaluate", None, &item("fine", "reply", 0.95, None));
    assert_eq!(status, 200);
    assert_eq!(ok["tier"], "none");
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

#[test]
fn a_hot_reload_while_requests_flow_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(dir.path(), &[]));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let flow = {
        let (server, stop, answered) = (server.clone(), stop.clone(), answered.clone());
        thread::spawn(move || {
            // Confidence 0.8 proceeds under `self-correct-below = 0.75` and
            // self-corrects under 0.85.
            let mut seen = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (status, decided) = server.post(
                    "/v1/evaluate",
                    None,
                    &item(&format!("f-{n}"), "reply", 0.8, None),
                );
                assert_eq!(status, 200, "{decided}");
                seen.push((
                    decided["generation"].as_u64().unwrap(),
                    decided["tier"].as_str().unwrap().to_string(),
                ));
                answered.fetch_add(1, Ordering::SeqCst);
            }
            seen
        })
    };
    while answered.load(Ordering::SeqCst) < 20 {
        thread::sleep(Duration::from_millis(5));
    }
    let manifest = dir.path().join("policies/confidence-gate.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("self-correct-below = 0.75"));
    let staged = dir.path().join("policies/.confidence-gate.toml.new");
    std::fs::write(
        &staged,
        text.replace("self-correct-below = 0.75", "self-correct-below = 0.85"),
    )
    .unwrap();
    std::fs::rename(&staged, &manifest).unwrap();
    server.wait_stderr("swapped confidence-gate");
    let after = answered.load(Ordering::SeqCst);
    while answered.load(Ordering::SeqCst) < after + 20 {
        thread::sleep(Duration::from_millis(5));
    }
    // A broken version is refused and the good one keeps serving.
    std::fs::write(&staged, "enabled = maybe\n").unwrap();
    std::fs::rename(&staged, &manifest).unwrap();
    server.wait_stderr("rejected");
    let after = answered.load(Ordering::SeqCst);
    while answered.load(Ordering::SeqCst) < after + 10 {
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let seen = flow.join().unwrap();

    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "generations never go back"
    );
    let first = &seen[0];
    let last = &seen[seen.len() - 1];
    assert_eq!((first.0, first.1.as_str()), (1, "none"));
    assert_eq!((last.0, last.1.as_str()), (2, "self-correct"));
    assert!(
        seen.iter().all(|(g, tier)| (*g == 1) == (tier == "none")),
        "each decision is its generation's"
    );

    let (_, policies) = server.get("/v1/policies", None);
    assert_eq!(policies["generation"], 2);
    let gate = policies["status"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["plugin"] == "confidence-gate")
        .unwrap();
    assert_eq!(gate["serving"]["since_generation"], 2);
    assert!(
        gate["last_error"]["reason"]
            .as_str()
            .unwrap()
            .contains("enabled"),
        "{gate}"
    );
    let (_, metrics) = server.get("/metrics", None);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("handoff_reloads_total{outcome=\"applied\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("handoff_reloads_total{outcome=\"rejected\"} 1"));
}

#[test]
fn a_restart_keeps_the_queue_and_the_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, decided) = server.post(
        "/v1/evaluate",
        None,
        &item("r-9", "refund", 0.9, Some(90_000)),
    );
    let id = decided["handoff_id"].as_str().unwrap().to_string();
    let (status, claimed) = server.post(
        "/v1/queue/claim",
        None,
        &json!({"role": "finance-operator", "worker": "carol"}),
    );
    assert_eq!(status, 200);
    assert_eq!(claimed["handoff"]["id"], id.as_str());
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("audit log flushed"), "{stderr}");

    let server = Server::start(dir.path(), &[]);
    let (status, kept) = server.get(&format!("/v1/handoffs/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(kept["state"], "claimed");
    assert_eq!(kept["lease_owner"], "carol");
    let (status, _) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        None,
        &json!({"worker": "carol", "outcome": "approved", "warranted": false}),
    );
    assert_eq!(status, 200);
    let (_, queue) = server.get("/v1/queue?state=resolved", None);
    assert_eq!(queue.as_array().unwrap().len(), 1);
    let (_, verified) = server.get("/v1/audit/verify", None);
    assert_eq!(verified["intact"], true, "{verified}");
    // Two loads and their generation, a decision and its handoff's enqueue
    // and claim, then two loads and a generation again (from the cache) and
    // the resolution.
    assert_eq!(verified["records"], 10, "{verified}");
    assert!(
        server.stderr().contains("from cache"),
        "{}",
        server.stderr()
    );
}

#[test]
fn shutdown_drains_requests_and_loses_no_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let answered = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (http, url) = (server.http.clone(), format!("{}/v1/evaluate", server.base));
            let answered = answered.clone();
            thread::spawn(move || {
                for n in 0.. {
                    let id = format!("s-{client}-{n}");
                    let body = json!([
                        item(&id, "reply", 0.95, None),
                        item(&format!("{id}-b"), "refund", 0.9, Some(2_000))
                    ]);
                    let response = http
                        .post(&url)
                        .content_type("application/json")
                        .send(body.to_string().as_bytes());
                    match response {
                        Ok(mut response) if response.status() == 200 => {
                            let text = response.body_mut().read_to_string().unwrap();
                            let decided: Value = serde_json::from_str(&text).unwrap();
                            let mut answered = answered.lock().unwrap();
                            for result in decided["results"].as_array().unwrap() {
                                answered.push(result["id"].as_str().unwrap().to_string());
                            }
                        }
                        // The server stopped taking connections.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    while answered.lock().unwrap().len() < 200 {
        thread::sleep(Duration::from_millis(5));
    }
    let (status, stderr) = server.stop();
    for client in clients {
        client.join().unwrap();
    }
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("draining"), "{stderr}");
    assert!(stderr.contains("audit log flushed"), "{stderr}");
    let audited: BTreeSet<String> = audited_items(dir.path()).into_iter().collect();
    let answered = answered.lock().unwrap();
    assert!(answered.len() >= 200);
    for id in answered.iter() {
        assert!(
            audited.contains(id),
            "{id} was answered but is not in the audit log"
        );
    }
    let (verified, said) = audit_verify(dir.path());
    assert!(verified, "the log verifies after shutdown: {said}");
}

#[test]
fn the_servers_sla_clock_escalates_a_missed_deadline_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    // The plugin names its own specialist for missed deadlines.
    urgent_policies(dir.path(), "escalation-role = \"safety-lead\"\n");
    let server = Server::start(dir.path(), &[]);

    let mut urgent = item("sh-1", "reply", 0.9, None);
    urgent["text"] = json!("I want to end my life");
    let (status, decided) = server.post("/v1/evaluate", None, &urgent);
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["dispatch"]["role"], "safety-specialist");
    let id = decided["handoff_id"].as_str().unwrap().to_string();

    // Nobody acknowledges within the second: the clock moves it up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let escalated = loop {
        let (_, handoff) = server.get(&format!("/v1/handoffs/{id}"), None);
        if handoff["tier"] == "executive" {
            break handoff;
        }
        assert!(Instant::now() < deadline, "no escalation: {handoff}");
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(escalated["escalations"], 1);
    assert_eq!(escalated["state"], "queued");
    assert_eq!(
        escalated["role"], "safety-lead",
        "the plugin's escalation role, not the generic executive"
    );
    let (_, metrics) = server.get("/metrics", None);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(
            "handoff_sla_breaches_total{deadline=\"acknowledge\",tier=\"operator\",action=\"escalated\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("handoff_queue_depth{tier=\"executive\""),
        "{metrics}"
    );
    assert!(
        server.stderr().contains("handoff: sla {"),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_burst_of_slow_evaluations_waits_for_the_configured_evaluators() {
    // A plugin that spins until its 50 ms deadline: every evaluation is
    // slow, so a burst overlaps for real. The server holds at most
    // `evaluators` of them (each with warm instances from a finite pool)
    // and queues the rest, instead of growing without bound.
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("hostile.wasm"),
        handoff_test_fixtures::HOSTILE,
    )
    .unwrap();
    std::fs::write(
        policies.join("hostile.toml"),
        "[limits]\ndeadline-ms = 50\nfuel = 10_000_000_000\n[config]\nmode = \"loop\"\n",
    )
    .unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "evaluators = 3\n").unwrap();
    let server = Arc::new(Server::start(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ],
    ));
    let start = Arc::new(std::sync::Barrier::new(24));
    let clients: Vec<_> = (0..24)
        .map(|n| {
            let (server, start) = (server.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                server.post(
                    "/v1/evaluate",
                    None,
                    &item(&format!("slow-{n}"), "reply", 0.95, None),
                )
            })
        })
        .collect();
    assert_eq!(
        server.get("/healthz", None).0,
        200,
        "the server answers meanwhile"
    );
    for client in clients {
        let (status, decided) = client.join().unwrap();
        assert_eq!(status, 200, "{decided}");
        // The fault fails to a human, as its failure mode says.
        assert_eq!(
            decided["reason_code"], "plugin-fault.deadline-exceeded",
            "{decided}"
        );
    }
    let (_, metrics) = server.get("/metrics", None);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(
            "handoff_plugin_faults_total{plugin=\"hostile\",kind=\"deadline-exceeded\"} 24"
        ),
        "{metrics}"
    );
    let evaluators = metrics
        .lines()
        .find_map(|line| line.strip_prefix("handoff_evaluators "))
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert!((1..=3).contains(&evaluators), "{evaluators} evaluators");
}

#[test]
fn the_openapi_document_describes_exactly_the_served_routes() {
    let document: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut documented = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let roles: BTreeSet<String> = operation["x-handoff-roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            documented.insert((
                method.to_uppercase(),
                path.clone(),
                operation["operationId"].as_str().unwrap().to_string(),
                roles,
            ));
        }
    }
    let routed: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| {
            let roles = r
                .roles
                .iter()
                .map(|role: &Role| role.as_str().to_string())
                .collect();
            (
                r.method.to_string(),
                r.path.to_string(),
                r.operation.to_string(),
                roles,
            )
        })
        .collect();
    assert_eq!(documented, routed);

    // And the live server answers every one of them (with its own error,
    // never "no such route" or "method not allowed").
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for route in ROUTES {
        let path = route.path.replace("{id}", "h-none");
        let path = if route.operation == "replayCandidate" {
            format!("{path}?plugin=candidate")
        } else {
            path
        };
        let (status, body) = server.call(route.method, &path, None, Some(b"{}"));
        assert_ne!(status, 405, "{} {}", route.method, route.path);
        assert_ne!(
            body["error"]["code"], "no-route",
            "{} {}",
            route.method, route.path
        );
    }
    let (_, served) = server.get("/openapi.json", None);
    assert_eq!(served, document);
}
