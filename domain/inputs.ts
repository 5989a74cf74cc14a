// Checks of workflow inputs, shared by the API (which answers 400 naming the field) and the
// workflows (which fail the run at once, non-retryably, naming it). A workflow can be started by
// anyone who reaches Temporal (the CLI, the Web UI), not only by the API; an input that made
// workflow code throw anything but an ApplicationFailure would fail its workflow task again on every
// retry, forever, and the run would show Running with nothing happening.

/** What is wrong with an input: the field (dotted for nested ones) and why. */
export interface InputProblem {
  param: string;
  message: string;
}

export const DAY_MS = 24 * 60 * 60_000;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Temporal's default limit on a workflow id: checkout, top-up and payout ids are workflow ids. */
export const MAX_WORKFLOW_ID_LENGTH = 1000;

/** A string of 1 to `max` characters. */
export function isText(value: unknown, max = 255): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= max;
}

/** An integer from `min` to `max` (JSON numbers only: no strings, no NaN, no Infinity). */
export function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;
}

// ISO 8601 with a time zone, as the API's `z.iso.datetime({ offset: true })` takes it. A four-digit
// year keeps every date a workflow derives from it inside what Date and Temporal's timers can hold.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * An ISO 8601 date-time with a time zone, naming a day that exists: Date.parse alone would take
 * `2026-02-30` as March 2nd, and many other spellings that mean different things to other parsers.
 */
export function isTimestamp(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const m = TIMESTAMP.exec(value);
  if (!m || !Number.isFinite(Date.parse(value))) return false;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(2000, month - 1, day));
  date.setUTCFullYear(year);
  // A day past its month's end (February 30th) moves both the month and the day, so either of the
  // last two checks refuses it alone; Date.parse above has refused a month outside 1-12 already.
  // Stryker disable next-line ConditionalExpression,LogicalOperator: each of these checks repeats another (see above): no input tells their mutants apart
  const dayExists = month >= 1 && month <= 12 && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
  return (
    dayExists &&
    hour <= 23 && // Date.parse takes 24:00 (the next midnight)
    // Stryker disable next-line ConditionalExpression: Date.parse has refused minute 60 and second 60 already
    minute <= 59 &&
    // Stryker disable next-line ConditionalExpression: Date.parse has refused minute 60 and second 60 already
    second <= 59
  );
}

/** The first problem `checks` report, in order. */
export function firstProblem(...checks: Array<() => InputProblem | undefined>): InputProblem | undefined {
  for (const check of checks) {
    const problem = check();
    if (problem) return problem;
  }
  return undefined;
}

/** `problem` when `ok` is false. */
export const unless = (ok: boolean, param: string, message: string): InputProblem | undefined => (ok ? undefined : { param, message });
