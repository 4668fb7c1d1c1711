//! Text contrast of the screen being shown, measured by axe-core's `color-contrast` rule in the
//! running app (WCAG 2.1 AA: 4.5:1, 3:1 for large text). Borders and other non-text contrast are
//! checked from the stylesheet by `ui/scripts/contrast.mjs` (`npm run contrast`, and Vitest).
//!
//! axe-core is a development dependency of the UI (`ui/node_modules/axe-core`, MPL-2.0); it is
//! injected into the page only by this test and is not part of the app bundle.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::webdriver::Session;

/// The window variable that receives axe's result (`{ violations: [...] }` or `{ error }`).
const RESULT: &str = "__drivebackContrast";

fn axe_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui/node_modules/axe-core/axe.min.js")
}

/// Runs axe's `color-contrast` rule on the whole page and returns one line per element below its
/// threshold: `selector: ratio < expected (foreground on background, font size and weight)`.
/// An empty list means every visible text meets WCAG AA.
pub fn contrast_violations(s: &Session) -> Result<Vec<String>, String> {
    let loaded = s.execute("return typeof window.axe === 'object';", vec![])?;
    if loaded != Value::Bool(true) {
        let path = axe_path();
        let source = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (run `npm ci` in ui/ to install axe-core)",
                path.display()
            )
        })?;
        s.execute(&source, vec![])?;
        let loaded = s.execute("return typeof window.axe === 'object';", vec![])?;
        if loaded != Value::Bool(true) {
            return Err(format!("axe-core did not load from {}", path.display()));
        }
    }

    // axe.run is asynchronous and `execute` is not: start it, then poll for its result.
    let start = format!(
        r#"
        window.{RESULT} = null;
        axe.run(document, {{
          runOnly: {{ type: "rule", values: ["color-contrast"] }},
          resultTypes: ["violations"],
        }}).then(
          (r) => {{
            window.{RESULT} = {{
              violations: r.violations.flatMap((v) => v.nodes.map((n) => {{
                const d = (n.any[0] && n.any[0].data) || {{}};
                return {{
                  target: n.target.map(String).join(" "),
                  ratio: d.contrastRatio, expected: d.expectedContrastRatio,
                  fg: d.fgColor, bg: d.bgColor, size: d.fontSize, weight: d.fontWeight,
                  summary: n.failureSummary || "",
                }};
              }})),
            }};
          }},
          (e) => {{ window.{RESULT} = {{ error: String(e && e.stack || e) }}; }},
        );
        return true;
        "#
    );
    s.execute(&start, vec![])?;
    let result = s.wait_until("axe's color-contrast check", Duration::from_secs(60), |s| {
        s.execute(&format!("return window.{RESULT};"), vec![])
            .ok()
            .filter(|v| !v.is_null())
    })?;
    if let Some(e) = result.get("error") {
        return Err(format!("axe-core failed: {e}"));
    }
    let violations = result["violations"]
        .as_array()
        .ok_or_else(|| format!("unexpected axe result: {result}"))?;
    Ok(violations.iter().map(line).collect())
}

fn line(v: &Value) -> String {
    let text = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "?".to_string(),
        other => other.to_string(),
    };
    let ratio = v["ratio"]
        .as_f64()
        .map_or_else(|| "?".to_string(), |r| format!("{r:.2}:1"));
    let mut out = format!(
        "{}: {ratio} < {} ({} on {}, {} weight {})",
        text("target"),
        text("expected"),
        text("fg"),
        text("bg"),
        text("size"),
        text("weight"),
    );
    if ratio == "?" {
        // No measurement (axe could not tell the background): its own explanation instead.
        out.push_str(&format!(": {}", text("summary").replace('\n', " ")));
    }
    out
}
