//! A real browser for the console tests: Debian's headless Chromium, driven through
//! chromedriver (WebDriver) with fantoccini. Each `Browser` has its own chromedriver
//! process on a free loopback port, its own Chromium and its own profile folder;
//! dropping it ends the session, kills what is left and removes the folder, even after
//! a panic. Methods are named after what a user does: `goto`, `fill`, `click`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";
/// How long chromedriver may take to listen and answer ready, and Chromium to start.
const START: Duration = Duration::from_secs(60);
/// How long `wait_for` waits for an element.
const ELEMENT: Duration = Duration::from_secs(10);
/// How long a page may take to follow a click (a post, then its redirect).
const PAGE: Duration = Duration::from_secs(20);

/// A headless Chromium session of its own (see the module docs).
pub struct Browser {
    client: Client,
    /// Held for its `Drop`: ends the session, kills what is left, removes the profile.
    _driver: Driver,
}

/// The chromedriver child, its session and the profile folder: cleaned up on drop.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium in it.
    pub async fn start() -> Browser {
        let chromedriver = tool("HOOKRELAY_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("HOOKRELAY_CHROMIUM", "/usr/bin/chromium");
        let profile =
            std::env::temp_dir().join(format!("hookrelay-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("creating the profile folder {}: {e}", profile.display()));

        // `--port=0`: chromedriver picks a free port and prints it, so no other test can
        // take it between choosing and listening.
        let mut child = Command::new(&chromedriver)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let stdout = child.stdout.take().expect("chromedriver's piped stdout");
        let mut driver = Driver {
            child,
            port: 0,
            session: None,
            profile,
        };
        driver.port = listening_port(stdout).await;

        let status = format!("http://127.0.0.1:{}/status", driver.port);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        crate::wait_until("chromedriver's /status says ready", START, || async {
            let Ok(response) = http.get(&status).send().await else {
                return false;
            };
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            body["value"]["ready"] == true
        })
        .await;

        let serde_json::Value::Object(capabilities) = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", driver.profile.display()),
                    "--window-size=1280,800",
                ],
            },
        }) else {
            unreachable!("a JSON object literal")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let webdriver = format!("http://127.0.0.1:{}", driver.port);
        let connect = builder.connect(&webdriver);
        let client = match tokio::time::timeout(START, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!("chromedriver could not start {}: {e}", chromium.display()),
            Err(_) => panic!(
                "chromedriver did not start {} within {START:?}",
                chromium.display()
            ),
        };
        driver.session = client.session_id().await.ok().flatten();
        Browser {
            client,
            _driver: driver,
        }
    }

    /// The WebDriver client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The address of the page now shown (after redirects and form posts).
    pub async fn current_url(&self) -> url::Url {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("reading the current URL: {e}"))
    }

    /// Waits (up to 10 s) until an element matches `css`, and returns it.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(ELEMENT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element matched {css:?} within {ELEMENT:?}: {e}"))
    }

    /// Replaces the value of the field matching `css` with `text`, typed as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clearing {css:?}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css:?}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css:?}: {e}"));
    }

    /// The visible text of the element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        self.wait_for(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading the text of {css:?}: {e}"))
    }

    /// Waits until the element matching `css` reads a text starting with `start`:
    /// after a click that posts a form, the old page's element (a notice) may still
    /// be there, or go stale while it is read.
    pub async fn wait_text(&self, css: &str, start: &str) {
        crate::wait_until(&format!("{css:?} reads {start:?}"), PAGE, || async {
            match self.client.find(Locator::Css(css)).await {
                Ok(found) => found.text().await.is_ok_and(|t| t.starts_with(start)),
                Err(_) => false,
            }
        })
        .await;
    }

    /// Waits until the page's heading (`h1`) reads `title`: a click that posts a form
    /// navigates, and the next page is the one whose heading changed.
    pub async fn wait_heading(&self, title: &str) {
        crate::wait_until(&format!("the page heading is {title:?}"), PAGE, || async {
            match self.client.find(Locator::Css("h1")).await {
                Ok(h1) => h1.text().await.is_ok_and(|t| t == title),
                Err(_) => false,
            }
        })
        .await;
    }

    /// The page's text; empty while a page is being replaced (a page that reloads
    /// itself), so that waits look again.
    pub async fn page_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The cookies the browser holds for the current page, with their flags
    /// (`http_only()`, `same_site()`, `secure()`).
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.client
            .get_all_cookies()
            .await
            .unwrap_or_else(|e| panic!("reading the cookies: {e}"))
    }

    /// Makes the page's viewport `width`×`height` CSS pixels (e.g. 390×844 for a phone).
    pub async fn set_size(&self, width: u32, height: u32) {
        // The window size includes whatever the browser draws around the page: measure
        // the viewport and grow the window by the difference.
        let (mut outer_width, mut outer_height) = (width, height);
        for _ in 0..3 {
            self.client
                .set_window_size(outer_width, outer_height)
                .await
                .unwrap_or_else(|e| panic!("resizing the window to {width}x{height}: {e}"));
            let (inner_width, inner_height) = self.viewport().await;
            if (inner_width, inner_height) == (width, height) {
                return;
            }
            outer_width = (outer_width + width).saturating_sub(inner_width);
            outer_height = (outer_height + height).saturating_sub(inner_height);
        }
        let (inner_width, inner_height) = self.viewport().await;
        panic!("asked for a {width}x{height} viewport, got {inner_width}x{inner_height}");
    }

    /// Saves a PNG of the page to `<target>/console-screenshots/<name>.png` and returns
    /// its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("taking the screenshot {name}: {e}"));
        let folder = target_dir().join("console-screenshots");
        std::fs::create_dir_all(&folder)
            .unwrap_or_else(|e| panic!("creating {}: {e}", folder.display()));
        let path = folder.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    async fn viewport(&self) -> (u32, u32) {
        let size = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap_or_else(|e| panic!("measuring the viewport: {e}"));
        let side = |i: usize| size[i].as_u64().and_then(|v| u32::try_from(v).ok());
        match (side(0), side(1)) {
            (Some(w), Some(h)) => (w, h),
            _ => panic!("the viewport measured as {size}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ending the session makes chromedriver quit Chromium. Sent from a runtime of
        // its own: the test's runtime may be the one unwinding (fantoccini's session
        // task runs there).
        if let Some(session) = self.session.take() {
            let url = format!("http://127.0.0.1:{}/session/{session}", self.port);
            crate::block_on_fresh(async move {
                if let Ok(http) = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(10))
                    .build()
                {
                    let _ = http.delete(url).send().await;
                }
            });
        }
        // Whatever is left (the session never started, or did not end): kill Chromium's
        // processes, found as chromedriver's descendants, then chromedriver.
        let pids: Vec<String> = descendants(self.child.id())
            .iter()
            .map(u32::to_string)
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killed processes may still be closing their files for a moment.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The program at `$var`, else at `default`; panics with what to install when missing.
fn tool(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found (set {var} to use another path); install it with: {INSTALL}",
        path.display()
    );
    path
}

/// Reads chromedriver's stdout until it says which port it listens on, then keeps
/// draining it (a full pipe would block chromedriver) into the test's stderr.
async fn listening_port(stdout: std::process::ChildStdout) -> u16 {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("chromedriver: {line}");
            let port = line
                .split_once("started successfully on port ")
                .and_then(|(_, rest)| rest.trim_end_matches('.').trim().parse::<u16>().ok());
            if let Some(port) = port
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(port);
            }
        }
    });
    match tokio::time::timeout(START, rx).await {
        Ok(Ok(port)) => port,
        Ok(Err(_)) => panic!("chromedriver exited before it listened (its output is above)"),
        Err(_) => panic!("chromedriver did not say which port it listens on within {START:?}"),
    }
}

/// Every process below `root`, from the parent links in `/proc` (Linux).
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let links: Vec<(u32, u32)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            Some((pid, ppid.parse().ok()?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(links.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        i += 1;
    }
    found.split_off(1)
}

/// `CARGO_TARGET_DIR` if set, else `target/` at the workspace root.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace folder");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::response::{AppendHeaders, Html};
    use axum::routing::{get, post};

    const FORM: &str = r#"<!doctype html><html><head><title>form</title></head><body>
        <form method="post" action="/submit">
          <label>Name <input id="name" name="name" value="placeholder"></label>
          <button id="send" type="submit">Send</button>
        </form></body></html>"#;

    #[tokio::test]
    async fn fills_and_submits_a_form_in_headless_chromium() {
        let (posted_tx, mut posted) = tokio::sync::mpsc::unbounded_channel::<String>();
        let app = Router::new()
            .route("/", get(|| async { Html(FORM) }))
            .route(
                "/submit",
                post(move |body: String| async move {
                    let name = url::form_urlencoded::parse(body.as_bytes())
                        .find(|(key, _)| key == "name")
                        .map(|(_, value)| value.into_owned())
                        .unwrap_or_default();
                    posted_tx.send(name.clone()).unwrap();
                    (
                        AppendHeaders([(
                            "set-cookie",
                            "sid=s3cret; Path=/; HttpOnly; SameSite=Strict",
                        )]),
                        Html(format!(r#"<p id="done">Thanks, {name}</p>"#)),
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let browser = Browser::start().await;
        browser.goto(&format!("{base}/")).await;
        browser.fill("#name", "Ada Lovelace").await;
        browser.click("#send").await;

        assert_eq!(browser.text_of("#done").await, "Thanks, Ada Lovelace");
        assert_eq!(posted.recv().await.unwrap(), "Ada Lovelace");
        assert_eq!(browser.current_url().await.path(), "/submit");
        let cookies = browser.cookies().await;
        let sid = cookies.iter().find(|c| c.name() == "sid").unwrap();
        assert_eq!(sid.http_only(), Some(true));
        assert_eq!(
            sid.same_site().map(|s| s.to_string()).as_deref(),
            Some("Strict")
        );

        browser.set_size(390, 844).await;
        assert_eq!(browser.viewport().await, (390, 844));

        let path = browser.screenshot("harness-form-submitted").await;
        let png = std::fs::read(&path).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
    }
}
