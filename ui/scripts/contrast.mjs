#!/usr/bin/env node
// Contrast check of the UI's colours against WCAG 2.1 AA, in the light and the dark theme.
//
// It reads src/styles.css itself: the theme variables (`:root`, `:root[data-theme="dark"]` and
// the `prefers-color-scheme: dark` block, which must say the same as the latter) and the rules
// that use them. Each pair below names the rule and property its foreground and its background
// come from; a rule or property that is no longer there is reported as a failure, so the list
// cannot silently drift away from the stylesheet.
//
// Thresholds: text 4.5:1 (SC 1.4.3), large text 3:1, and 3:1 for what identifies a control or
// its state — borders of inputs and outlined buttons, checkboxes, the progress bar, the focus
// ring (SC 1.4.11). Disabled controls are exempt, as in WCAG.
//
//   npm run contrast            prints the table, exits 1 when a pair is below its threshold

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const THRESHOLDS = { text: 4.5, large: 3, ui: 3 };

/**
 * The pairs that matter. `fg` and `bg` are [selector, property] of a rule in styles.css (the
 * selector as written, alone or in a selector list). `kind` is text, large (large text) or ui
 * (non-text: borders, fills and marks that identify a control or its state).
 */
export const PAIRS = [
  // Text on the surfaces it is shown on.
  { role: "text on the page", kind: "text", fg: ["body", "color"], bg: ["body", "background"] },
  { role: "text in a card", kind: "text", fg: ["body", "color"], bg: [".card", "background"] },
  { role: "text in a dialog", kind: "text", fg: [".dialog", "color"], bg: [".dialog", "background"] },
  { role: "text in a banner", kind: "text", fg: ["body", "color"], bg: [".banner", "background"] },
  { role: "text in a warning banner", kind: "text", fg: ["body", "color"], bg: [".banner.warn", "background"] },
  { role: "text in the warning box", kind: "text", fg: ["body", "color"], bg: [".warning", "background"] },
  { role: "error text (the error box)", kind: "text", fg: ["body", "color"], bg: [".error", "background"] },
  { role: "error details", kind: "text", fg: [".error .detail", "color"], bg: [".error", "background"] },
  { role: "muted/small text on the page (version)", kind: "text", fg: [".muted", "color"], bg: ["body", "background"] },
  { role: "muted/small text in a card", kind: "text", fg: [".muted", "color"], bg: [".card", "background"] },
  { role: "muted/small text in a dialog", kind: "text", fg: [".muted", "color"], bg: [".dialog", "background"] },
  { role: "empty list note", kind: "text", fg: [".empty", "color"], bg: [".card", "background"] },
  { role: "facts labels (health)", kind: "text", fg: [".facts dt", "color"], bg: [".dialog", "background"] },
  { role: "success text", kind: "text", fg: [".ok", "color"], bg: [".card", "background"] },
  { role: "success text in a dialog", kind: "text", fg: [".ok", "color"], bg: [".dialog", "background"] },
  { role: "card icon", kind: "text", fg: [".card-head .icon", "color"], bg: [".card", "background"] },
  { role: "backup key / URL box", kind: "text", fg: ["body", "color"], bg: [".key", "background"] },
  // Form fields.
  { role: "typed text in an input", kind: "text", fg: ['input[type="text"]', "color"], bg: ['input[type="text"]', "background"] },
  { role: "input placeholder", kind: "text", fg: ["::placeholder", "color"], bg: ['input[type="password"]', "background"] },
  { role: "select text", kind: "text", fg: ["select", "color"], bg: ["select", "background"] },
  // Buttons.
  { role: "primary button label", kind: "text", fg: ["button.primary", "color"], bg: ["button.primary", "background"] },
  { role: "danger button label", kind: "text", fg: ["button.danger", "color"], bg: ["button.danger", "background"] },
  { role: "secondary button label", kind: "text", fg: ["button.secondary", "color"], bg: ["button.secondary", "background"] },
  { role: "link button on the page (← Back)", kind: "text", fg: ["button.link", "color"], bg: ["body", "background"] },
  { role: "link button in a dialog", kind: "text", fg: ["button.link", "color"], bg: [".dialog", "background"] },
  // Badges, tags, the stepper, the health checks, toasts.
  { role: "health badge (unknown)", kind: "text", fg: [".badge", "color"], bg: [".card", "background"] },
  { role: "health badge healthy", kind: "text", fg: [".badge[data-status]", "color"], bg: [".badge.healthy", "background"] },
  { role: "health badge warning", kind: "text", fg: [".badge[data-status]", "color"], bg: [".badge.warning", "background"] },
  { role: "health badge critical", kind: "text", fg: [".badge[data-status]", "color"], bg: [".badge.critical", "background"] },
  { role: "tag Latest", kind: "text", fg: [".tag.latest", "color"], bg: [".tag.latest", "background"] },
  { role: "tag Complete", kind: "text", fg: [".tag.complete", "color"], bg: [".card", "background"] },
  { role: "tag Partial", kind: "text", fg: ["body", "color"], bg: [".tag.partial", "background"] },
  { role: "stepper step", kind: "text", fg: [".stepper", "color"], bg: [".card", "background"] },
  { role: "stepper current step", kind: "text", fg: [".stepper li.current", "color"], bg: [".card", "background"] },
  { role: "health check icon healthy", kind: "text", fg: ['.check[data-status="healthy"] .check-icon', "color"], bg: ['.check[data-status="healthy"] .check-icon', "background"] },
  { role: "health check icon warning", kind: "text", fg: ['.check[data-status="warning"] .check-icon', "color"], bg: ['.check[data-status="warning"] .check-icon', "background"] },
  { role: "health check icon critical", kind: "text", fg: ['.check[data-status="critical"] .check-icon', "color"], bg: ['.check[data-status="critical"] .check-icon', "background"] },
  { role: "health check word warning", kind: "text", fg: ['.check[data-status="warning"] .check-word', "color"], bg: [".dialog", "background"] },
  { role: "health check word critical", kind: "text", fg: ['.check[data-status="critical"] .check-word', "color"], bg: [".dialog", "background"] },
  { role: "history: failed run", kind: "text", fg: ['.history tr[data-outcome="failed"] td:nth-child(3)', "color"], bg: [".dialog", "background"] },
  { role: "history: partial run", kind: "text", fg: ['.history tr[data-outcome="partial"] td:nth-child(3)', "color"], bg: [".dialog", "background"] },
  { role: "toast", kind: "text", fg: [".toast", "color"], bg: [".toast", "background"] },
  // Control boundaries (SC 1.4.11).
  { role: "input border in a card", kind: "ui", fg: ['input[type="text"]', "border"], bg: [".card", "background"] },
  { role: "input border in a dialog", kind: "ui", fg: ['input[type="password"]', "border"], bg: [".dialog", "background"] },
  { role: "select border in a card", kind: "ui", fg: ["select", "border"], bg: [".card", "background"] },
  { role: "secondary button border in a card", kind: "ui", fg: ["button.secondary", "border-color"], bg: [".card", "background"] },
  { role: "secondary button border on the page (View backups)", kind: "ui", fg: ["button.secondary", "border-color"], bg: ["body", "background"] },
  { role: "secondary button border in a banner", kind: "ui", fg: ["button.secondary", "border-color"], bg: [".banner", "background"] },
  { role: "secondary button border in a warning banner", kind: "ui", fg: ["button.secondary", "border-color"], bg: [".banner.warn", "background"] },
  { role: "secondary button border in the error box", kind: "ui", fg: ["button.secondary", "border-color"], bg: [".error", "background"] },
  { role: "primary button fill in a card", kind: "ui", fg: ["button.primary", "background"], bg: [".card", "background"] },
  { role: "primary button fill in a banner", kind: "ui", fg: ["button.primary", "background"], bg: [".banner", "background"] },
  { role: "danger button fill in a dialog", kind: "ui", fg: ["button.danger", "background"], bg: [".dialog", "background"] },
  { role: "health badge border (unknown)", kind: "ui", fg: [".badge", "border"], bg: [".card", "background"] },
  { role: "health badge border healthy", kind: "ui", fg: [".badge.healthy", "border-color"], bg: [".card", "background"] },
  { role: "health badge border warning", kind: "ui", fg: [".badge.warning", "border-color"], bg: [".card", "background"] },
  { role: "health badge border critical", kind: "ui", fg: [".badge.critical", "border-color"], bg: [".card", "background"] },
  { role: "checkbox/radio border", kind: "ui", fg: ['input[type="checkbox"]', "border"], bg: [".dialog", "background"] },
  { role: "checkbox checked fill", kind: "ui", fg: ['input[type="checkbox"]:checked', "background-color"], bg: [".card", "background"] },
  { role: "checkbox tick on its fill", kind: "ui", fg: ['input[type="checkbox"]:checked', "background-image"], bg: ['input[type="checkbox"]:checked', "background-color"] },
  { role: "radio checked ring", kind: "ui", fg: ['input[type="radio"]:checked', "border-color"], bg: [".card", "background"] },
  { role: "radio checked dot", kind: "ui", fg: ['input[type="radio"]:checked', "background"], bg: ['input[type="radio"]:checked', "box-shadow"] },
  { role: "progress bar track border", kind: "ui", fg: [".bar", "border"], bg: [".card", "background"] },
  { role: "progress bar fill on its track", kind: "ui", fg: [".bar > span", "background"], bg: [".bar", "background"] },
  { role: "stepper step done", kind: "ui", fg: [".stepper li.done", "border-color"], bg: [".card", "background"] },
  { role: "status dot (latest backup)", kind: "ui", fg: [".status-dot", "color"], bg: [".card", "background"] },
  { role: "focus ring on the page", kind: "ui", fg: ["button:focus-visible", "outline"], bg: ["body", "background"] },
  { role: "focus ring in a card", kind: "ui", fg: ["button:focus-visible", "outline"], bg: [".card", "background"] },
  { role: "focus ring in a banner", kind: "ui", fg: ["button:focus-visible", "outline"], bg: [".banner", "background"] },
  { role: "focus ring in a warning banner", kind: "ui", fg: ["button:focus-visible", "outline"], bg: [".banner.warn", "background"] },
  { role: "focus ring in the error box", kind: "ui", fg: ["input:focus-visible", "outline"], bg: [".error", "background"] },
];

// --- Colours -------------------------------------------------------------------------------

const NAMED = { white: "#ffffff", black: "#000000" };

/** [r, g, b, a] with r, g, b in 0..255 and a in 0..1, or null. */
export function parseColor(text) {
  const s = text.trim().toLowerCase();
  if (NAMED[s]) return parseColor(NAMED[s]);
  let m = /^#([0-9a-f]{3,8})$/.exec(s);
  if (m) {
    let hex = m[1];
    if (hex.length === 3 || hex.length === 4) hex = [...hex].map((c) => c + c).join("");
    if (hex.length !== 6 && hex.length !== 8) return null;
    const n = (i) => parseInt(hex.slice(i, i + 2), 16);
    return [n(0), n(2), n(4), hex.length === 8 ? n(6) / 255 : 1];
  }
  m = /^rgba?\(([^)]*)\)$/.exec(s);
  if (m) {
    const parts = m[1].split(/[\s,/]+/).filter(Boolean);
    if (parts.length < 3) return null;
    const channel = (p) => (p.endsWith("%") ? (parseFloat(p) * 255) / 100 : parseFloat(p));
    const alpha = parts[3] === undefined ? 1 : parts[3].endsWith("%") ? parseFloat(parts[3]) / 100 : parseFloat(parts[3]);
    return [channel(parts[0]), channel(parts[1]), channel(parts[2]), alpha];
  }
  return null;
}

/** WCAG 2.1 relative luminance of an opaque colour. */
export function luminance([r, g, b]) {
  const lin = (c) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** `fg` over the opaque `bg` (alpha compositing). */
export function over(fg, bg) {
  const a = fg[3] ?? 1;
  return [0, 1, 2].map((i) => fg[i] * a + bg[i] * (1 - a)).concat(1);
}

/** WCAG contrast ratio, 1..21. */
export function contrast(fg, bg) {
  const a = luminance(over(fg, bg));
  const b = luminance(bg);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}

export const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");

// --- CSS -----------------------------------------------------------------------------------

/** Rules of a stylesheet: { prelude, body, children } where at-rule blocks have children. */
export function parseCss(css) {
  const text = css.replace(/\/\*[\s\S]*?\*\//g, "");
  const parse = (from, to) => {
    const rules = [];
    let start = from;
    let i = from;
    while (i < to) {
      const c = text[i];
      if (c === '"' || c === "'") {
        i = text.indexOf(c, i + 1) + 1 || to;
        continue;
      }
      if (c === "}") {
        start = i + 1; // a stray closing brace: skip it
      } else if (c === "{") {
        const prelude = text.slice(start, i).trim();
        const end = matching(i);
        if (prelude.startsWith("@")) rules.push({ prelude, children: parse(i + 1, end) });
        else rules.push({ prelude, body: text.slice(i + 1, end) });
        i = end + 1;
        start = i;
        continue;
      } else if (c === ";" && text.slice(start, i).trim().startsWith("@")) {
        start = i + 1; // @import and the like
      }
      i++;
    }
    return rules;
  };
  const matching = (open) => {
    let depth = 0;
    for (let i = open; i < text.length; i++) {
      const c = text[i];
      if (c === '"' || c === "'") {
        i = text.indexOf(c, i + 1);
        if (i < 0) break;
      } else if (c === "{") depth++;
      else if (c === "}" && --depth === 0) return i;
    }
    throw new Error("styles.css: unbalanced braces");
  };
  return parse(0, text.length);
}

/** The declarations of a rule body, in order: [[property, value], ...]. */
export function declarations(body) {
  const out = [];
  let start = 0;
  for (let i = 0; i <= body.length; i++) {
    const c = body[i];
    if (c === '"' || c === "'") {
      i = body.indexOf(c, i + 1);
      if (i < 0) i = body.length;
      continue;
    }
    if (c === ";" || i === body.length) {
      const d = body.slice(start, i);
      const colon = d.indexOf(":");
      if (colon > 0) out.push([d.slice(0, colon).trim(), d.slice(colon + 1).replace(/!important/, "").trim()]);
      start = i + 1;
    }
  }
  return out;
}

const norm = (sel) => sel.replace(/\s+/g, " ").replace(/'/g, '"').replace(/\s*([>+~,])\s*/g, "$1").trim();

function selectors(prelude) {
  // Split a selector list on top-level commas (not those inside :not(...) and the like).
  const out = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < prelude.length; i++) {
    if (prelude[i] === "(") depth++;
    else if (prelude[i] === ")") depth--;
    else if (prelude[i] === "," && depth === 0) {
      out.push(norm(prelude.slice(start, i)));
      start = i + 1;
    }
  }
  out.push(norm(prelude.slice(start)));
  return out;
}

const customProperties = (body) => Object.fromEntries(declarations(body).filter(([p]) => p.startsWith("--")));

/** The theme variables: { light, dark } (dark = light overridden by the dark block), and problems. */
export function themes(rules) {
  const problems = [];
  const top = (sel) => rules.filter((r) => r.body !== undefined && selectors(r.prelude).includes(norm(sel)));
  const rootRules = top(":root");
  if (!rootRules.length) problems.push("no :root rule with the light theme's variables");
  const light = Object.assign({}, ...rootRules.map((r) => customProperties(r.body)));
  const darkRules = top(':root[data-theme="dark"]');
  if (!darkRules.length) problems.push('no :root[data-theme="dark"] rule');
  const darkVars = Object.assign({}, ...darkRules.map((r) => customProperties(r.body)));
  const media = rules.filter((r) => r.children && /prefers-color-scheme:\s*dark/.test(r.prelude));
  const mediaVars = Object.assign(
    {},
    ...media.flatMap((m) => m.children.filter((r) => r.body !== undefined).map((r) => customProperties(r.body))),
  );
  if (!media.length) problems.push("no @media (prefers-color-scheme: dark) block");
  for (const name of new Set([...Object.keys(darkVars), ...Object.keys(mediaVars)])) {
    if (darkVars[name] !== mediaVars[name]) {
      problems.push(
        `dark theme: ${name} is ${darkVars[name] ?? "missing"} under [data-theme="dark"] but ${mediaVars[name] ?? "missing"} under prefers-color-scheme: dark`,
      );
    }
  }
  return { light, dark: { ...light, ...darkVars }, problems };
}

/** The value of `property` in the last top-level rule whose selector list has `selector`. */
export function ruleValue(rules, selector, property) {
  const sel = norm(selector);
  let value;
  for (const r of rules) {
    if (r.body === undefined || !selectors(r.prelude).includes(sel)) continue;
    for (const [p, v] of declarations(r.body)) if (p === property) value = v;
  }
  return value;
}

/** Substitutes var(--x[, fallback]) from `vars`, recursively. */
export function substitute(value, vars, depth = 0) {
  if (depth > 10) throw new Error(`var() loop in ${value}`);
  let out = "";
  let i = 0;
  for (;;) {
    const at = value.indexOf("var(", i);
    if (at < 0) return out + value.slice(i);
    out += value.slice(i, at);
    let d = 0;
    let end = at + 3;
    for (; end < value.length; end++) {
      if (value[end] === "(") d++;
      else if (value[end] === ")" && --d === 0) break;
    }
    const inner = value.slice(at + 4, end);
    const comma = inner.indexOf(",");
    const name = (comma < 0 ? inner : inner.slice(0, comma)).trim();
    const fallback = comma < 0 ? undefined : inner.slice(comma + 1).trim();
    const v = vars[name] ?? fallback;
    if (v === undefined) throw new Error(`${name} is not defined`);
    out += substitute(v, vars, depth + 1);
    i = end + 1;
  }
}

/** The colour a declaration paints: the first colour in it (a shorthand's colour, the stroke or
 * fill of an SVG data URL for an image). */
export function colorOf(value) {
  const url = /url\(\s*(?:"(data:image\/svg\+xml[^"]*)"|'(data:image\/svg\+xml[^']*)'|(data:image\/svg\+xml[^)]*))\s*\)/.exec(value);
  if (url) {
    const data = url[1] ?? url[2] ?? url[3];
    const svg = decodeURIComponent(data.replace(/^data:image\/svg\+xml(;[^,]*)?,/, ""));
    const paint = /(?:stroke|fill)=["'](#[0-9a-f]{3,8}|[a-z]+)["']/i.exec(svg.replace(/fill=["']none["']/g, ""));
    return paint ? parseColor(paint[1]) : null;
  }
  const tokens = value.match(/#[0-9a-f]{3,8}\b|rgba?\([^)]*\)|\b(?:white|black)\b/gi) ?? [];
  for (const t of tokens) {
    const c = parseColor(t);
    if (c) return c;
  }
  return null;
}

// --- The check -----------------------------------------------------------------------------

/** Checks every pair in both themes. Returns { rows, problems } (problems: strings). */
export function check(css, pairs = PAIRS) {
  const rules = parseCss(css);
  const t = themes(rules);
  const problems = [...t.problems];
  const rows = [];
  for (const [theme, vars] of [["light", t.light], ["dark", t.dark]]) {
    for (const pair of pairs) {
      const min = THRESHOLDS[pair.kind];
      const side = ([selector, property]) => {
        const raw = ruleValue(rules, selector, property);
        if (raw === undefined) throw new Error(`no "${property}" in a rule for ${selector}`);
        const value = substitute(raw, vars);
        const color = colorOf(value);
        if (!color) throw new Error(`no colour in ${selector} { ${property}: ${raw} }`);
        return { color, where: `${selector} ${property}`, raw };
      };
      try {
        const fg = side(pair.fg);
        const bg = side(pair.bg);
        if ((bg.color[3] ?? 1) < 1) throw new Error(`${bg.where} is translucent`);
        const ratio = contrast(fg.color, bg.color);
        const ok = ratio + 1e-9 >= min;
        rows.push({ theme, role: pair.role, kind: pair.kind, ratio, min, ok, fg, bg });
        if (!ok) {
          problems.push(
            `${theme}: ${pair.role}: ${ratio.toFixed(2)}:1 < ${min}:1 (${fg.where} ${hex(fg.color)} on ${bg.where} ${hex(bg.color)})`,
          );
        }
      } catch (e) {
        problems.push(`${theme}: ${pair.role}: ${e.message}`);
      }
    }
  }
  return { rows, problems };
}

export function table(rows) {
  const head = ["theme", "ratio", "min", "", "role", "foreground", "background"];
  const body = rows.map((r) => [
    r.theme,
    r.ratio.toFixed(2),
    String(r.min),
    r.ok ? "ok" : "FAIL",
    r.role,
    `${hex(r.fg.color)} ${r.fg.where} (${r.fg.raw})`,
    `${hex(r.bg.color)} ${r.bg.where} (${r.bg.raw})`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [head, ...body].map((cols) => cols.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

export const STYLES = fileURLToPath(new URL("../src/styles.css", import.meta.url));

/** The text of styles.css (or of `file`). */
export function readStyles(file = STYLES) {
  return readFileSync(file, "utf8");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? STYLES;
  const { rows, problems } = check(readStyles(file));
  console.log(table(rows));
  const worst = [...rows].sort((a, b) => a.ratio / a.min - b.ratio / b.min).slice(0, 5);
  console.log(`\n${rows.length} pairs checked; the closest to their threshold:`);
  for (const r of worst) console.log(`  ${r.theme} ${r.ratio.toFixed(2)}:1 (min ${r.min}) ${r.role}`);
  if (problems.length) {
    console.error(`\n${problems.length} problem(s):`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log("All pairs meet WCAG 2.1 AA in both themes.");
}
