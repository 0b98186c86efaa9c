//! The dashboard in a real browser: headless Chromium, driven over the DevTools protocol on
//! `--remote-debugging-pipe` (NUL-delimited JSON on file descriptors 3 and 4, no websocket and
//! no driver crate), opens the page a gateway serves under a prefix, watches its breaker open
//! and close again as the test drives failures and recovery, takes a screenshot, and follows the
//! server through a restart.
//!
//! Chromium must be installed (`scripts/test` installs Debian's `chromium` when it is missing);
//! if it cannot start, this test fails. Set `CHROMIUM` to use another binary.
//!
//! A browser is involved, so the real clock: every wait is a condition polled with a deadline.

mod common;

use common::{eventually, Gateway, PREFIX};
use serde_json::{json, Value};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The viewport, and so the screenshot's size.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 800;

struct Browser {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    profile: tempfile::TempDir,
}

impl Browser {
    async fn launch() -> Browser {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        // bash hands our pipes to Chromium as its descriptors 3 (commands) and 4 (answers).
        let mut child = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(
                r#"exec "$0" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
                    --no-first-run --no-default-browser-check --mute-audio \
                    --user-data-dir="$1/profile" --remote-debugging-pipe about:blank \
                    3<&0 4>&1 </dev/null >/dev/null"#,
            )
            .arg(&chromium)
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run bash to start {chromium}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut browser = Browser {
            _child: child,
            stdin,
            stdout,
            next_id: 0,
            profile,
        };
        let version = tokio::time::timeout(
            Duration::from_secs(30),
            browser.try_call(None, "Browser.getVersion", json!({})),
        )
        .await;
        match version {
            Ok(Ok(v)) => eprintln!("browser: {}", v["product"]),
            _ => panic!(
                "Chromium ({chromium}) did not start (scripts/test installs Debian's `chromium`); \
                 its log:\n{}",
                std::fs::read_to_string(browser.profile.path().join("chromium.log"))
                    .unwrap_or_default()
            ),
        }
        browser
    }

    async fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            msg["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.stdin
            .write_all(&bytes)
            .await
            .map_err(|e| e.to_string())?;
        self.stdin.flush().await.map_err(|e| e.to_string())?;
        loop {
            let mut buf = Vec::new();
            let n = self
                .stdout
                .read_until(0, &mut buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("chromium closed its pipe".to_owned());
            }
            buf.pop();
            let answer: Value = serde_json::from_slice(&buf).map_err(|e| e.to_string())?;
            // Events (no id) and other answers are not ours.
            if answer["id"] != id {
                continue;
            }
            if let Some(error) = answer.get("error") {
                return Err(format!("{method}: {error}"));
            }
            return Ok(answer["result"].clone());
        }
    }

    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.try_call(session, method, params),
        )
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer from chromium"))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A new tab at `url`, of the test's viewport; its session id.
    async fn open(&mut self, url: &str) -> String {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let session = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        let nav = self
            .call(Some(&session), "Page.navigate", json!({ "url": url }))
            .await;
        assert!(nav.get("errorText").is_none(), "navigation failed: {nav}");
        session
    }

    /// Evaluates `expression` in the page; its value.
    async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let r = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it evaluates to `want` or `within` has passed; the last value.
    async fn wait_for(
        &mut self,
        session: &str,
        expression: &str,
        want: &Value,
        within: Duration,
    ) -> Result<(), Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.eval(session, expression).await;
            if &got == want {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(got);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The state the page shows for the breaker `name`: the card's `data-state` and the word on its
/// badge, or null without a card.
fn shown_state(name: &str) -> String {
    format!(
        r#"(() => {{
            const c = document.querySelector('[data-component="circuit_breaker/{name}"]');
            return c ? c.getAttribute("data-state") + "|" + c.querySelector(".state").textContent : null;
        }})()"#
    )
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_breaker_open_then_closed_and_follows_a_restart() {
    let gw = Gateway::start("127.0.0.1:0", "flaky", Duration::from_secs(1)).await;
    let mut browser = Browser::launch().await;
    // Under a prefix, without a trailing slash: the page finds its stream relative to itself.
    let tab = browser.open(&gw.url(PREFIX)).await;

    let state = shown_state("flaky");
    browser
        .wait_for(
            &tab,
            &state,
            &json!("closed|closed"),
            Duration::from_secs(10),
        )
        .await
        .expect("the page shows the breaker, closed");
    browser
        .wait_for(
            &tab,
            r#"document.getElementById("conn").getAttribute("data-conn")"#,
            &json!("live"),
            Duration::from_secs(5),
        )
        .await
        .expect("the event stream is live");

    // Failures until the breaker opens.
    gw.failing.store(true, Ordering::Relaxed);
    let mut sent = 0;
    while gw.breaker.state() != battlement_breaker::State::Open {
        assert!(sent < 100, "the breaker did not open");
        gw.hit().await;
        sent += 1;
    }
    browser
        .wait_for(&tab, &state, &json!("open|open"), Duration::from_secs(3))
        .await
        .expect("the page shows the breaker open within 3 s");
    // Its transition is listed.
    let listed = browser
        .eval(
            &tab,
            r#"[...document.querySelectorAll('#events li[data-what="transition"]')].map(li => li.textContent).join("\n")"#,
        )
        .await;
    assert!(
        listed.as_str().unwrap().contains("closed → open"),
        "{listed}"
    );

    // Recovery: after the open wait, trial calls succeed and the breaker closes.
    gw.failing.store(false, Ordering::Relaxed);
    let closed = eventually(Duration::from_secs(10), || async {
        gw.hit().await;
        gw.breaker.state() == battlement_breaker::State::Closed
    })
    .await;
    assert!(closed, "the breaker did not close again");
    browser
        .wait_for(
            &tab,
            &state,
            &json!("closed|closed"),
            Duration::from_secs(3),
        )
        .await
        .expect("the page shows the breaker closed again within 3 s");

    // A screenshot of the viewport.
    let shot = browser
        .call(
            Some(&tab),
            "Page.captureScreenshot",
            json!({ "format": "png" }),
        )
        .await;
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert!(png.len() > 10_000, "a screenshot of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (WIDTH, HEIGHT));
    let keep = std::env::temp_dir().join("battlement-dashboard-browser-test.png");
    std::fs::write(&keep, &png).unwrap();
    eprintln!("screenshot: {}", keep.display());

    // The server restarts (every connection dropped) with other components: the page's
    // EventSource reconnects on its own and shows them.
    let addr = gw.stop().await;
    let restarted =
        Gateway::start(&addr.to_string(), "after-restart", Duration::from_secs(1)).await;
    browser
        .wait_for(
            &tab,
            &shown_state("after-restart"),
            &json!("closed|closed"),
            Duration::from_secs(15),
        )
        .await
        .expect("the page reconnected to the restarted server");
    assert_eq!(browser.eval(&tab, &shown_state("flaky")).await, Value::Null);
    assert_eq!(restarted.dashboard.clients(), 1);

    let _ = browser.try_call(None, "Browser.close", json!({})).await;
}
