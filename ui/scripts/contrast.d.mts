// Types of contrast.mjs for the Vitest test (src/contrast.test.ts).
export type Rgba = [number, number, number, number];
export type Kind = "text" | "large" | "ui";
export interface Pair {
  role: string;
  kind: Kind;
  fg: [selector: string, property: string];
  bg: [selector: string, property: string];
}
export interface Side {
  color: Rgba;
  where: string;
  raw: string;
}
export interface Row {
  theme: "light" | "dark";
  role: string;
  kind: Kind;
  ratio: number;
  min: number;
  ok: boolean;
  fg: Side;
  bg: Side;
}
export const THRESHOLDS: Record<Kind, number>;
export const PAIRS: Pair[];
export const STYLES: string;
export function readStyles(file?: string): string;
export function parseColor(text: string): Rgba | null;
export function luminance(c: Rgba): number;
export function over(fg: Rgba, bg: Rgba): Rgba;
export function contrast(fg: Rgba, bg: Rgba): number;
export function hex(c: Rgba): string;
export function colorOf(value: string): Rgba | null;
export function substitute(value: string, vars: Record<string, string>): string;
export function check(css: string, pairs?: Pair[]): { rows: Row[]; problems: string[] };
export function table(rows: Row[]): string;
