//! Commands that change a running server's policies: `handoff promote` and
//! `handoff calibrate`. They go through the server's API, never the files,
//! because only the serving host can make the change one atomic, validated
//! generation and record who made it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use super::output::terminal;

/// The largest answer read from the server.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// Which server, and as whom.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The environment variable holding the bearer token to call with (so
    /// the token never appears in a process listing).
    #[arg(long, value_name = "VAR", default_value = "HANDOFF_TOKEN")]
    token_env: String,
    /// Who is acting, on a server without credentials (with credentials,
    /// the token says who).
    #[arg(long = "as", value_name = "NAME")]
    acting: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The shadow version to promote, `NAME@LABEL`. Promoting it again
    /// rolls back.
    shadow: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum CalibrateCommand {
    /// Propose the threshold the evidence supports for one probabilistic
    /// trigger; nothing changes until a second person approves.
    Propose {
        /// The plugin.
        #[arg(long)]
        plugin: String,
        /// The trigger's code, for example `confidence`.
        #[arg(long)]
        trigger: String,
        /// α, the error rate to stay under.
        #[arg(long)]
        target_error: Option<f64>,
        /// δ, the chance the bound is wrong.
        #[arg(long)]
        delta: Option<f64>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve a proposal (never your own): it is applied as a new policy
    /// version through the validated reload.
    Approve {
        /// The proposal id.
        id: String,
        /// Apply it as the shadow version `PLUGIN@calibrated` first.
        #[arg(long)]
        shadow: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every proposal, with its approval.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub fn promote(args: PromoteArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/policies/{}/promote", encode(&args.shadow));
    let body = acting(&args.server, json!({}));
    call(&args.server, "POST", &path, Some(body))
}

pub fn calibrate(command: CalibrateCommand) -> anyhow::Result<ExitCode> {
    match command {
        CalibrateCommand::Propose {
            plugin,
            trigger,
            target_error,
            delta,
            server,
        } => {
            let mut body = json!({"plugin": plugin, "trigger": trigger});
            if let Some(alpha) = target_error {
                body["target-error"] = json!(alpha);
            }
            if let Some(delta) = delta {
                body["delta"] = json!(delta);
            }
            let body = acting(&server, body);
            call(&server, "POST", "/v1/calibration/proposals", Some(body))
        }
        CalibrateCommand::Approve { id, shadow, server } => {
            let path = format!("/v1/calibration/proposals/{}/approve", encode(&id));
            let body = acting(&server, json!({"shadow": shadow}));
            call(&server, "POST", &path, Some(body))
        }
        CalibrateCommand::List { server } => {
            call(&server, "GET", "/v1/calibration/proposals", None)
        }
    }
}

fn acting(server: &ServerArgs, mut body: Value) -> Value {
    if let Some(name) = &server.acting {
        body["by"] = json!(name);
    }
    body
}

/// A path segment with everything but unreserved characters and `@`
/// percent-encoded.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Calls the server, prints the answer as JSON on success (exit 0) or its
/// error message on stderr (exit 1).
fn call(
    server: &ServerArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<ExitCode> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let token = std::env::var(&server.token_env)
        .ok()
        .filter(|t| !t.is_empty());
    let response = match body {
        None => {
            let mut request = agent.get(&url);
            if let Some(token) = &token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            request.call()
        }
        Some(body) => {
            let mut request = agent.post(&url).content_type("application/json");
            if let Some(token) = &token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            request.send(body.to_string().as_bytes())
        }
    };
    let mut response = response.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .with_context(|| format!("cannot read the answer of {url}"))?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).context("cannot print the answer")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let message = answer["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| answer.to_string());
    eprintln!(
        "handoff: {method} {path}: {} {}",
        status.as_u16(),
        terminal(&message)
    );
    Ok(ExitCode::from(1))
}
