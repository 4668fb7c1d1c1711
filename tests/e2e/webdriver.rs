//! A small W3C WebDriver client over blocking HTTP: enough to drive the app through
//! tauri-driver (sessions, elements by CSS, click, keys, text, attributes, scripts, screenshots).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The key under which WebDriver returns element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub type Result<T> = std::result::Result<T, String>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element(pub String);

/// WebDriver's codes for keys `send_keys` cannot type as text.
pub mod keys {
    pub const ESCAPE: &str = "\u{E00C}";
}

pub struct Session {
    http: reqwest::blocking::Client,
    base: String,
    id: String,
    screenshots: PathBuf,
    /// Screenshots taken so far (a session that follows another goes on numbering from it).
    pub shots: usize,
    /// Clicks made so far (typing is not counted): the end-to-end test counts a person's clicks.
    clicks: std::cell::Cell<usize>,
}

impl Session {
    /// Starts the app at `application` through the WebDriver server at `base`.
    pub fn start(base: &str, application: &Path, screenshots: &Path) -> Result<Self> {
        // The app is single-instance: started while the previous session's app is still
        // quitting, it hands its arguments to that one over D-Bus and fails when it goes away
        // without answering. A person starts the app again after it has gone; so does the test.
        wait_until_gone(application, Duration::from_secs(30))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let body = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "wry",
                "tauri:options": { "application": application.display().to_string() }
            }}
        });
        let v = send(
            &http,
            reqwest::Method::POST,
            &format!("{base}/session"),
            Some(body),
        )?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?
            .to_string();
        std::fs::create_dir_all(screenshots).map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base: base.to_string(),
            id,
            screenshots: screenshots.to_path_buf(),
            shots: 0,
            clicks: std::cell::Cell::new(0),
        })
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/session/{}{}", self.base, self.id, path);
        send(&self.http, method, &url, body)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None)
    }

    pub fn find(&self, css: &str) -> Result<Element> {
        let v = self.post("/element", json!({ "using": "css selector", "value": css }))?;
        element(&v).ok_or_else(|| format!("no element reference for {css}: {v}"))
    }

    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self.post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element).collect())
            .unwrap_or_default())
    }

    /// Waits until `css` matches a displayed element.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        self.wait_until(&format!("{css} to be shown"), timeout, |s| {
            let el = s.find(css).ok()?;
            s.is_displayed(&el).ok()?.then_some(el)
        })
    }

    /// Waits until nothing matches `css`.
    pub fn wait_gone(&self, css: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{css} to go away"), timeout, |s| {
            s.find_all(css).ok()?.is_empty().then_some(())
        })
    }

    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("timeout").ok();
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what} (screenshot: {shot:?})"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, el: &Element) -> Result<()> {
        self.clicks.set(self.clicks.get() + 1);
        self.post(&format!("/element/{}/click", el.0), json!({}))
            .map(|_| ())
    }

    /// The clicks made so far in this session.
    pub fn clicks(&self) -> usize {
        self.clicks.get()
    }

    pub fn click_css(&self, css: &str) -> Result<()> {
        let el = self.wait_for(css, Duration::from_secs(20))?;
        self.click(&el)
    }

    pub fn send_keys(&self, el: &Element, text: &str) -> Result<()> {
        self.post(&format!("/element/{}/value", el.0), json!({ "text": text }))
            .map(|_| ())
    }

    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let el = self.wait_for(css, Duration::from_secs(20))?;
        self.send_keys(&el, text)
    }

    pub fn text(&self, el: &Element) -> Result<String> {
        let v = self.get(&format!("/element/{}/text", el.0))?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub fn text_of(&self, css: &str) -> Result<String> {
        let el = self.find(css)?;
        self.text(&el)
    }

    pub fn attribute(&self, el: &Element, name: &str) -> Result<Option<String>> {
        let v = self.get(&format!("/element/{}/attribute/{name}", el.0))?;
        Ok(v.as_str().map(str::to_string))
    }

    /// A DOM property (`value` of an input or a select, ...).
    pub fn property(&self, el: &Element, name: &str) -> Result<Option<String>> {
        let v = self.get(&format!("/element/{}/property/{name}", el.0))?;
        Ok(v.as_str().map(str::to_string))
    }

    pub fn is_displayed(&self, el: &Element) -> Result<bool> {
        let v = self.get(&format!("/element/{}/displayed", el.0))?;
        Ok(v.as_bool().unwrap_or(false))
    }

    pub fn active_element(&self) -> Result<Element> {
        let v = self.get("/element/active")?;
        element(&v).ok_or_else(|| format!("no active element: {v}"))
    }

    /// Runs `script` in the page (a function body; `arguments` holds `args`).
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
    }

    /// Saves a screenshot as `NN-name.png` in the screenshot folder.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let v = self.get("/screenshot")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// A numbered screenshot, so that the folder reads in the order of the run.
    pub fn shot(&mut self, name: &str) -> Result<PathBuf> {
        self.shots += 1;
        let n = self.shots;
        self.screenshot(&format!("{n:02}-{name}"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.call(reqwest::Method::DELETE, "", None);
    }
}

/// Waits until no process runs the executable at `application` (read from `/proc`).
fn wait_until_gone(application: &Path, limit: Duration) -> Result<()> {
    let target = std::fs::canonicalize(application).unwrap_or_else(|_| application.to_path_buf());
    let running = || -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            (std::fs::read_link(e.path().join("exe")).ok()? == target).then_some(pid)
        })
        .collect()
    };
    let deadline = Instant::now() + limit;
    loop {
        let pids = running();
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the previous app ({pids:?}) was still running {limit:?} after its session ended"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn element(v: &Value) -> Option<Element> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(|s| Element(s.to_string()))
}

fn send(
    http: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .map_err(|e| format!("{method} {url}: not JSON ({e})"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if !status.is_success() || value.get("error").is_some() {
        return Err(format!(
            "{method} {url}: {} {}",
            value["error"].as_str().unwrap_or(status.as_str()),
            value["message"].as_str().unwrap_or_default()
        ));
    }
    Ok(value)
}
