//! The intervention dashboard in a real browser: Debian's Chromium, headless,
//! driven over WebDriver by `chromedriver`, against the real `handoff serve`
//! on a loopback port. Screenshots of each page land in
//! `target/tmp/dashboard/` (the README's come from there).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::reference;
use crate::serve::{AGENT, COMPLIANCE, OPERATOR, Server, config_with_tokens};

/// How long any one thing may take to show up in the page: generous, for
/// a loaded machine; nothing waits longer than it must.
const PATIENCE: Duration = Duration::from_secs(60);

/// A headless Chromium under `chromedriver`, both ended when dropped.
struct Browser {
    client: Client,
    driver: Child,
    runtime: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_string())
}

impl Browser {
    fn start() -> Browser {
        let chromedriver = tool("HANDOFF_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("HANDOFF_CHROMIUM", "/usr/bin/chromium");
        assert!(
            Path::new(&chromedriver).exists() && Path::new(&chromium).exists(),
            "the browser tests need Chromium and ChromeDriver ({chromium}, {chromedriver}): \
             `apt-get install chromium chromium-driver` (.ci/run does), or set \
             HANDOFF_CHROMIUM and HANDOFF_CHROMEDRIVER"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session opens");
        Browser {
            client,
            driver,
            runtime,
            _profile: profile,
        }
    }

    fn run<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    fn goto(&self, url: &str) {
        self.run(self.client.goto(url)).unwrap();
    }

    /// The text of the first element `css` selects, once there is one. A
    /// page that is being replaced is read again.
    fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let read = self.run(async {
                let element = self.client.find(Locator::Css(css)).await?;
                element.text().await
            });
            match read {
                Ok(text) => return text,
                Err(error) if Instant::now() >= deadline => {
                    panic!("no `{css}` on the page: {error}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits until the text at `css` is `expected`.
    fn wait_for(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text(css);
            if text == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` says {text:?}, not {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the page is no longer at `path`.
    fn wait_to_leave(&self, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.run(self.client.current_url()).unwrap().path() == path {
            assert!(Instant::now() < deadline, "the browser stayed at {path}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The whole page's visible text.
    fn page_text(&self) -> String {
        self.text("body")
    }

    /// Waits until the page's text contains `needle`, reloading it each
    /// time when `reload` (for pages that are not live).
    fn wait_for_text(&self, needle: &str, reload: bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.page_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` never appeared; the page said:\n{text}"
            );
            if reload {
                self.run(self.client.refresh()).unwrap();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn fill(&self, css: &str, value: &str) {
        self.run(async {
            let field = self.client.find(Locator::Css(css)).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(value).await.unwrap();
        });
    }

    fn click(&self, css: &str) {
        self.run(async {
            self.client
                .wait()
                .at_most(PATIENCE)
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("nothing to click at `{css}`: {e}"))
                .click()
                .await
                .unwrap();
        });
    }

    fn select(&self, css: &str, value: &str) {
        self.run(async {
            let select = self.client.find(Locator::Css(css)).await.unwrap();
            select.select_by_value(value).await.unwrap();
        });
    }

    fn script(&self, code: &str) -> Value {
        self.run(self.client.execute(code, vec![])).unwrap()
    }

    /// Signs in with `token` and lands on the page the dashboard opens.
    fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/ui"));
        self.fill("#token", token);
        self.click("form[action='/ui/login'] button[type=submit]");
        self.wait_to_leave("/ui/login");
    }

    fn sign_out(&self) {
        self.click("form[action='/ui/logout'] button");
        self.wait_for("main h1", "Sign in");
    }

    /// Saves a screenshot of the page as `name.png`.
    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.run(self.client.screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.runtime.block_on(client.close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn refund() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(crate::common::examples_dir().join("refund.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn operators_and_compliance_work_from_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_tokens(dir.path(), "");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let base = server.base().to_string();
    let browser = Browser::start();

    // An operator signs in once; the queue is empty.
    browser.sign_in(&base, OPERATOR);
    assert_eq!(
        browser.text("main h1").split_whitespace().next(),
        Some("Queue")
    );
    browser.wait_for_text("Nothing is waiting.", false);
    browser.text("#live-status");
    browser.wait_for_text("live", false);
    // What a script on the page could read: no session cookie.
    assert_eq!(browser.script("return document.cookie"), json!(""));

    // An agent submits work over the API; it appears in the open page.
    browser.script("window.notReloaded = true");
    let (status, answer) = server.post("/v1/evaluate", Some(AGENT), &refund());
    assert_eq!(status, 200, "{answer}");
    let id = answer["handoff_id"].as_str().unwrap().to_string();
    let row = browser.text(&format!("tr[data-handoff='{id}']"));
    assert!(
        row.contains("r-1001") && row.contains("finance-operator"),
        "{row}"
    );
    assert!(row.contains("auth-limit"), "{row}");
    assert_eq!(
        browser.script("return window.notReloaded === true"),
        json!(true),
        "the row arrived without a reload"
    );
    browser.screenshot("queue");

    // The agent waits for the outcome.
    let (polled_tx, polled) = mpsc::channel();
    let waiter = {
        let base = base.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            let http: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(300)))
                .build()
                .into();
            let mut response = http
                .get(format!("{base}/v1/handoffs/{id}?wait=240"))
                .header("Authorization", &format!("Bearer {AGENT}"))
                .call()
                .unwrap();
            let body: Value =
                serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
            let _ = polled_tx.send(body);
        })
    };

    // The operator opens it, claims, acknowledges, and resolves it.
    browser.click(&format!("tr[data-handoff='{id}'] a"));
    let page = browser.wait_for_text("Customer asks for a refund of order 4411", false);
    assert!(
        page.contains("compliance-limits") && page.contains("confidence-gate"),
        "{page}"
    );
    browser.click("form[action='/ui/queue/claim'] button");
    browser.wait_for("#state", "claimed");
    browser.click("form[action$='/ack'] button");
    browser.wait_for("#state", "acknowledged");

    // Bad input: the API's own message, on the page, and nothing changes.
    browser.select("#outcome", "corrected");
    browser.click("input[name=warranted][value=yes]");
    browser.click("form[aria-label=Resolve] button[type=submit]");
    let error = browser.text(".error");
    assert!(
        error.contains("outcome `corrected` needs a correction saying what went out instead"),
        "{error}"
    );
    assert_eq!(browser.text("#state"), "acknowledged");
    let (status, api) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        Some(OPERATOR),
        &json!({"outcome": "corrected", "warranted": true}),
    );
    assert_eq!(status, 400);
    assert!(
        error.ends_with(api["error"]["message"].as_str().unwrap()),
        "{error} / {api}"
    );

    browser.fill("#correction", "refund 500.00 USD");
    browser.fill("#note", "capped at the limit");
    browser.click("form[aria-label=Resolve] button[type=submit]");
    browser.wait_for_text("Resolved: nothing left to do.", false);
    assert_eq!(browser.text("#resolved-outcome"), "corrected");
    browser.screenshot("handoff");
    let outcome = polled
        .recv_timeout(Duration::from_secs(240))
        .expect("the long poll answers");
    waiter.join().unwrap();
    assert_eq!(outcome["state"], "resolved", "{outcome}");
    assert_eq!(outcome["resolution"]["outcome"], "corrected", "{outcome}");
    assert_eq!(
        outcome["resolution"]["correction"], "refund 500.00 USD",
        "{outcome}"
    );
    assert_eq!(
        outcome["resolution"]["note"], "capped at the limit",
        "{outcome}"
    );

    // The operator may not read the audit trail: no link, and a 403 page.
    assert!(!browser.text("header nav").contains("Decisions"));
    browser.goto(&format!("{base}/ui/decisions"));
    let denied = browser.text("main");
    assert!(
        denied.contains("Not for your role") && denied.contains("it needs one of: compliance"),
        "{denied}"
    );
    browser.sign_out();

    // Compliance finds the decision, its explanation, and the whole story.
    browser.sign_in(&base, COMPLIANCE);
    browser.goto(&format!("{base}/ui/decisions"));
    assert!(
        browser.text("#chain").starts_with("Chain intact"),
        "{}",
        browser.text("#chain")
    );
    browser.fill("input[name=item]", "r-1001");
    browser.select("select[name=tier]", "operator");
    browser.click("form[aria-label='Search the audit log'] button");
    let results = browser.wait_for_text("1 record(s)", false);
    assert!(results.contains("compliance-limits"), "{results}");
    browser.screenshot("decisions");
    browser.click("main tbody tr td a");
    let explained = browser.wait_for_text("Every plugin's verdict", false);
    let (_, policies) = server.get("/v1/policies", Some(COMPLIANCE));
    for plugin in policies["plugins"].as_array().unwrap() {
        let digest = plugin["digest"].as_str().unwrap();
        assert!(
            explained.contains(digest),
            "the explanation names {digest}:\n{explained}"
        );
    }
    assert!(
        explained.contains("fuel") && explained.contains("auth-limit"),
        "{explained}"
    );
    browser.screenshot("explanation");
    browser.click("a[href='/ui/work/r-1001']");
    browser.wait_for("main h1", "The story of r-1001");
    let story = browser.page_text();
    for step in [
        "decided",
        "enqueued",
        "claimed",
        "acknowledged",
        "corrected",
    ] {
        assert!(story.contains(step), "the story tells `{step}`:\n{story}");
    }

    // A hot-reloaded version shows on the policies page.
    browser.goto(&format!("{base}/ui/policies"));
    assert_eq!(browser.text("#generation"), "1");
    let rebuilt = handoff_test_fixtures::rebuilt(&reference("confidence-gate").wasm, 19);
    let digest = handoff_policy::digest_of(&rebuilt);
    let target = data.join("policies").join("confidence-gate.wasm");
    let staging = data.join("policies").join(".confidence-gate.wasm.part");
    std::fs::write(&staging, &rebuilt).unwrap();
    std::fs::rename(&staging, &target).unwrap();
    let page = browser.wait_for_text(&digest, true);
    assert_eq!(browser.text("#generation"), "2");
    assert!(
        page.contains("swapped"),
        "the reload history records the swap:\n{page}"
    );
    browser.screenshot("policies");

    // The report's gates as pictures, over the sample workload too.
    let sample: Vec<Value> =
        std::fs::read_to_string(crate::common::examples_dir().join("sample.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    let (status, answer) = server.post("/v1/evaluate", Some(AGENT), &Value::Array(sample));
    assert_eq!(status, 200, "{answer}");
    browser.goto(&format!("{base}/ui/performance"));
    for chart in ["escalation", "sla", "fcr", "ttv", "workload", "cost"] {
        let count = browser.script(&format!(
            "return document.querySelectorAll('#{chart} svg').length"
        ));
        assert_eq!(count, json!(1), "chart {chart}");
    }
    // The chart's own numbers (its table for screen readers) add up to
    // the handoffs the API lists for the role.
    let charted = browser.script(
        "const t = document.querySelector('#workload table');
         const col = [...t.querySelectorAll('thead th')].findIndex(th => th.textContent === 'finance-operator');
         return [...t.querySelectorAll('tbody tr')]
           .map(tr => parseInt(tr.children[col].textContent, 10) || 0)
           .reduce((a, b) => a + b, 0);",
    );
    let (_, listed) = server.get("/v1/queue?role=finance-operator", Some(COMPLIANCE));
    let finance = listed.as_array().unwrap().len();
    assert!(finance > 1, "the sample sends more to finance: {listed}");
    assert_eq!(charted, json!(finance));
    browser.screenshot("performance");
    // Compliance reads the queue but cannot work it.
    browser.goto(&format!("{base}/ui/queue"));
    let claimable = browser
        .script("return document.querySelectorAll(\"form[action='/ui/queue/claim']\").length");
    assert_eq!(claimable, json!(0));
}

/// An HTTP client that does not follow redirects and keeps no cookies.
fn raw_client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn sign_in_raw(http: &ureq::Agent, base: &str, token: &str) -> (u16, String, String) {
    let mut response = http
        .post(format!("{base}/ui/login"))
        .header("Origin", base)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={token}&next=%2Fui%2Fqueue"))
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), cookie, body)
}

#[test]
fn sessions_are_cookies_scripts_cannot_read_and_forms_cannot_be_forged() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_tokens(dir.path(), "");
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let base = server.base().to_string();
    let http = raw_client();

    let (status, _, body) = sign_in_raw(&http, &base, "not-a-token");
    assert_eq!(status, 401);
    assert!(body.contains("the bearer token is not valid"), "{body}");
    let (status, _, body) = sign_in_raw(&http, &base, AGENT);
    assert_eq!(status, 403);
    assert!(body.contains("agents use the API"), "{body}");

    let (status, cookie, _) = sign_in_raw(&http, &base, OPERATOR);
    assert_eq!(status, 303);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    assert!(!session.contains(OPERATOR), "the cookie is not the token");

    let page = |path: &str| {
        let mut response = http
            .get(format!("{base}{path}"))
            .header("Cookie", &session)
            .call()
            .unwrap();
        let headers = response.headers().clone();
        (
            response.status().as_u16(),
            headers,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (status, headers, queue) = page("/ui/queue");
    assert_eq!(status, 200);
    let csp = headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    let csrf = queue
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's forms carry the token")
        .to_string();

    let post = |origin: Option<&str>, body: String| {
        let mut request = http
            .post(format!("{base}/ui/queue/claim"))
            .header("Cookie", &session)
            .content_type("application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let mut response = request.send(body).unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    // No token, a wrong token, another site: refused, each saying why.
    let (status, body) = post(Some(&base), "role=finance-operator".into());
    assert_eq!(status, 403);
    assert!(
        body.contains("anti-forgery token is missing or stale"),
        "{body}"
    );
    let (status, _) = post(Some(&base), "role=finance-operator&csrf=forged".into());
    assert_eq!(status, 403);
    let (status, body) = post(
        Some("http://evil.example"),
        format!("role=finance-operator&csrf={csrf}"),
    );
    assert_eq!(status, 403);
    assert!(body.contains("sent from another site"), "{body}");
    // With its token, from its page: the claim is made (nothing waits).
    let (status, body) = post(Some(&base), format!("role=finance-operator&csrf={csrf}"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Nothing is waiting for finance-operator."),
        "{body}"
    );
    // An empty role gets the API's message.
    let (status, body) = post(Some(&base), format!("role=+&csrf={csrf}"));
    assert_eq!(status, 400);
    assert!(body.contains("`role` must not be empty"), "{body}");

    // Hostile text reaches the page escaped.
    let mut hostile = refund();
    hostile["id"] = json!("r-<script>alert(1)</script>");
    hostile["text"] = json!("<img src=x onerror=alert(1)> refund");
    let (status, answer) = server.post("/v1/evaluate", Some(AGENT), &hostile);
    assert_eq!(status, 200, "{answer}");
    let (_, _, queue) = page("/ui/queue");
    assert!(!queue.contains("<script>alert(1)"), "{queue}");
    assert!(
        queue.contains("r-&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{queue}"
    );
    let id = answer["handoff_id"].as_str().unwrap();
    let (_, _, detail) = page(&format!("/ui/handoffs/{id}"));
    assert!(!detail.contains("<img src=x"), "{detail}");

    // Signed out, the session is gone for good.
    let response = http
        .post(format!("{base}/ui/logout"))
        .header("Cookie", &session)
        .header("Origin", &base)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}"))
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let (status, headers, _) = page("/ui/queue");
    assert_eq!(status, 303);
    assert!(
        headers
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("/ui/login")
    );

    // The live feed says `changed` when work arrives, and ends with the
    // server instead of holding up its drain.
    let (_, cookie, _) = sign_in_raw(&http, &base, COMPLIANCE);
    let session = cookie.split(';').next().unwrap().to_string();
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET /ui/events HTTP/1.1\r\nHost: {}\r\nCookie: {session}\r\nAccept: text/event-stream\r\n\r\n",
        server.address()
    )
    .unwrap();
    let mut feed = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    feed.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut reply = refund();
    reply["id"] = json!("r-live");
    assert_eq!(server.post("/v1/evaluate", Some(AGENT), &reply).0, 200);
    let mut seen = Vec::new();
    loop {
        line.clear();
        let read = feed.read_line(&mut line).unwrap();
        assert!(
            read > 0,
            "the feed ended before saying anything changed: {seen:?}"
        );
        seen.push(line.trim_end().to_string());
        if line.trim_end() == "event: changed" {
            break;
        }
    }
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("still open at the shutdown deadline"),
        "{stderr}"
    );
}

#[test]
fn the_readme_shows_screenshots_that_exist() {
    let root = crate::common::examples_dir()
        .parent()
        .unwrap()
        .to_path_buf();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let shots: Vec<&str> = readme
        .split("](docs/screenshots/")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    assert!(
        shots.len() >= 3,
        "the README shows the dashboard: {shots:?}"
    );
    for shot in shots {
        let png = std::fs::read(root.join("docs/screenshots").join(shot)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
}

#[test]
fn an_open_server_signs_in_by_name_and_search_errors_match_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let base = server.base().to_string();
    let http = raw_client();
    let sign_in = |form: &str| {
        let mut response = http
            .post(format!("{base}/ui/login"))
            .header("Origin", &base)
            .content_type("application/x-www-form-urlencoded")
            .send(form.to_string())
            .unwrap();
        let cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), cookie, body)
    };
    let (status, cookie, body) = sign_in("name=al%0Aice");
    assert_eq!(status, 400);
    assert!(cookie.is_none());
    assert!(body.contains("no line breaks"), "{body}");
    let (status, cookie, _) = sign_in("name=alice&next=https%3A%2F%2Fevil.example");
    assert_eq!(status, 303);
    let session = cookie.unwrap().split(';').next().unwrap().to_string();

    let get = |path: &str| {
        let mut response = http
            .get(format!("{base}{path}"))
            .header("Cookie", &session)
            .call()
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    // Every section opens; the name given is who acts.
    for section in ["queue", "decisions", "policies", "performance"] {
        let (status, page) = get(&format!("/ui/{section}"));
        assert_eq!(status, 200, "{section}: {page}");
        assert!(page.contains("alice") && page.contains("every role (open server)"));
    }
    // A bad search gets the API's message for the same query.
    let (status, page) = get("/ui/decisions?tier=urgent&item=");
    assert_eq!(status, 400);
    let (api_status, api) = server.get("/v1/audit?tier=urgent", None);
    assert_eq!(api_status, 400);
    let message = api["error"]["message"].as_str().unwrap();
    let escaped = message.replace('"', "&quot;");
    assert!(
        page.contains(&escaped),
        "the page says the API's {message:?}:\n{page}"
    );
}
