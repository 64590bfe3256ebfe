//! A real headless Chromium for page tests, driven over WebDriver (`fantoccini`): starts Debian's
//! `chromedriver` on a free loopback port (retried once if the port was taken meanwhile) in its
//! own process group, opens a session of headless Chromium with a temporary profile, and kills
//! the whole group on drop. Fails — never skips — when `chromium` or `chromedriver` is missing
//! (`scripts/test` installs them). At most [`MAX_BROWSERS`] run at once per test binary.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Browsers alive at once in one test binary (the machine is small).
pub const MAX_BROWSERS: usize = 2;
static SLOTS: Semaphore = Semaphore::const_new(MAX_BROWSERS);

/// How long chromedriver gets to listen: `READY_TRIES` × `READY_STEP`.
const READY_TRIES: u32 = 200;
const READY_STEP: Duration = Duration::from_millis(50);
/// Page load and script limits given to the browser.
const PAGE_LOAD_MS: u64 = 15_000;
const SCRIPT_MS: u64 = 5_000;
/// How long [`Browser::wait_for`] waits for an element.
pub const WAIT: Duration = Duration::from_secs(10);

/// What the browser may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scripts {
    /// JavaScript on (needed by tests that edit the page with a script).
    On,
    /// Page JavaScript blocked by a Chromium content setting: the pages must work without it.
    Off,
}

/// A WebDriver session of headless Chromium; the driver (and the browser) die with it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

fn find_program(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("none of {names:?} is installed: the browser tests need Debian's chromium and chromium-driver (scripts/test installs them: apt-get install chromium chromium-driver)");
}

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Starts chromedriver on `port`; `None` if it exited before listening (port taken).
fn start_driver(program: &PathBuf, port: u16) -> Option<Child> {
    let mut child = Command::new(program)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver starts");
    for _ in 0..READY_TRIES {
        if child.try_wait().expect("chromedriver status").is_some() {
            return None;
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(READY_STEP);
    }
    kill_group(&mut child);
    panic!("chromedriver did not listen on 127.0.0.1:{port}");
}

/// Kills the process group led by `child` (chromedriver and the Chromium it started).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", child.id())).status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Browser {
    /// Headless Chromium with JavaScript on.
    pub async fn start() -> Browser {
        Self::start_with(Scripts::On).await
    }

    /// Headless Chromium; `scripts` says whether pages may run JavaScript.
    pub async fn start_with(scripts: Scripts) -> Browser {
        let slot = SLOTS.acquire().await.expect("browser slots");
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = find_program(&["chromedriver"]);
        let mut driver = None;
        let mut port = 0;
        for _ in 0..2 {
            port = free_port();
            driver = tokio::task::block_in_place(|| start_driver(&chromedriver, port));
            if driver.is_some() {
                break;
            }
        }
        let mut driver = driver.expect("chromedriver exits at once, twice (port taken?)");
        let profile = tempfile::tempdir().expect("temp profile");
        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--no-proxy-server", "--window-size=1024,768",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        if scripts == Scripts::Off {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "timeouts": { "pageLoad": PAGE_LOAD_MS, "script": SCRIPT_MS, "implicit": 0 },
        });
        let caps = caps.as_object().unwrap().clone();
        let client = match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                kill_group(&mut driver);
                panic!("no Chromium session: {e}");
            }
        };
        Browser { client, driver, _profile: profile, _slot: slot }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.client.find(Locator::Css("body")).await.expect("a body").text().await.expect("body text")
    }

    /// Waits (bounded by [`WAIT`]) for an element matching the CSS selector.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {WAIT:?}: {e}"))
    }

    /// Clicks the element matching the CSS selector.
    pub async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The page's `<html lang>`.
    pub async fn lang(&self) -> String {
        self.wait_for("html").await.attr("lang").await.unwrap().unwrap_or_default()
    }

    /// Whether a JavaScript dialog (alert, confirm, prompt) is open.
    pub async fn dialog_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// Ends the session cleanly (the driver is killed on drop in any case).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}
