// The colours of styles.css against WCAG 2.1 AA in both themes (the check `npm run contrast`
// prints as a table), and the checker itself on known values and on broken stylesheets.
import { describe, expect, it } from "vitest";
import { PAIRS, check, colorOf, contrast, parseColor, readStyles, type Rgba } from "../scripts/contrast.mjs";

const css = readStyles();

const color = (s: string): Rgba => {
  const c = parseColor(s);
  if (!c) throw new Error(`not a colour: ${s}`);
  return c;
};

describe("styles.css contrast", () => {
  it("meets WCAG AA for every listed pair in the light and the dark theme", () => {
    const { rows, problems } = check(css);
    expect(problems).toEqual([]);
    expect(rows).toHaveLength(PAIRS.length * 2);
    expect(new Set(rows.map((r) => r.theme))).toEqual(new Set(["light", "dark"]));
  });

  it("checks the placeholder, the control borders and the focus ring", () => {
    const roles = PAIRS.map((p) => p.role);
    expect(roles).toContain("input placeholder");
    expect(roles).toContain("input border in a card");
    expect(roles).toContain("secondary button border in a card");
    expect(roles).toContain("checkbox/radio border");
    expect(roles).toContain("progress bar track border");
    expect(roles).toContain("focus ring in a card");
  });
});

describe("the contrast checker", () => {
  it("computes WCAG ratios", () => {
    expect(contrast(color("#000"), color("#fff"))).toBeCloseTo(21, 5);
    expect(contrast(color("#fff"), color("#fff"))).toBeCloseTo(1, 5);
    // #767676 is the lightest grey with 4.5:1 on white; #777777 just misses it.
    expect(contrast(color("#767676"), color("#ffffff"))).toBeGreaterThanOrEqual(4.5);
    expect(contrast(color("#777777"), color("#ffffff"))).toBeLessThan(4.5);
    // Symmetric, and a translucent foreground is blended over the background first.
    expect(contrast(color("#ffffff"), color("#54656f"))).toBeCloseTo(contrast(color("#54656f"), color("#ffffff")), 9);
    expect(contrast(color("rgb(0 0 0 / 0)"), color("#ffffff"))).toBeCloseTo(1, 9);
  });

  it("finds the colour in shorthands and in an SVG data URL", () => {
    expect(colorOf("1px solid #76858f")).toEqual([0x76, 0x85, 0x8f, 1]);
    expect(colorOf("3px solid rgb(11, 87, 208)")).toEqual([11, 87, 208, 1]);
    expect(colorOf(`url("data:image/svg+xml,%3Csvg%3E%3Cpath fill='none' stroke='%230b141a'/%3E%3C/svg%3E")`)).toEqual([11, 20, 26, 1]);
  });

  it("fails a text colour that became too light, in the theme where it did", () => {
    const broken = css.replace(/(:root \{[^}]*--muted: )#[0-9a-f]+/, "$1#9aa5ab");
    expect(broken).not.toBe(css);
    const { problems } = check(broken);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.startsWith("light: "))).toBe(true);
    expect(problems.some((p) => p.includes("muted/small text in a card"))).toBe(true);
  });

  it("fails a control border that went back to the separator colour", () => {
    const broken = css.replace("button.secondary { background: var(--card); color: var(--accent); border-color: var(--control-border); }", "button.secondary { background: var(--card); color: var(--accent); border-color: var(--line); }");
    expect(broken).not.toBe(css);
    const { problems } = check(broken);
    expect(problems.some((p) => p.startsWith("light: secondary button border in a card"))).toBe(true);
    expect(problems.some((p) => p.startsWith("dark: secondary button border in a card"))).toBe(true);
  });

  it("fails when a rule a pair reads is gone, or the two dark blocks disagree", () => {
    const noPlaceholder = css.replace(/::placeholder \{[^}]*\}/, "");
    expect(noPlaceholder).not.toBe(css);
    expect(check(noPlaceholder).problems).toContain('light: input placeholder: no "color" in a rule for ::placeholder');

    // Only the block under prefers-color-scheme changes: the checker compares it with [data-theme="dark"].
    const drift = css.replace(/(:root:not\(\[data-theme="light"\]\) \{[^}]*--placeholder: )#[0-9a-f]+/, "$1#445566");
    expect(drift).not.toBe(css);
    expect(check(drift).problems.some((p) => p.includes("--placeholder") && p.includes("prefers-color-scheme"))).toBe(true);
  });
});
