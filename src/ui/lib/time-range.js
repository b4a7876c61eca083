// Time ranges as the URL keeps them: `now`, `now-1h` (relative, resolved when
// a query runs) or absolute milliseconds since the epoch.

export const PRESETS = [
  { from: 'now-5m', label: 'Last 5 minutes' },
  { from: 'now-15m', label: 'Last 15 minutes' },
  { from: 'now-1h', label: 'Last 1 hour' },
  { from: 'now-6h', label: 'Last 6 hours' },
  { from: 'now-24h', label: 'Last 24 hours' },
  { from: 'now-7d', label: 'Last 7 days' },
];

const UNIT_MS = { s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** True for `now`, `now-15m`, `now-1h30m`, `now+5m`. */
export function isRelative(s) {
  return /^now(\s*[-+](\s*\d+\s*(min|s|m|h|d|w))+)*$/.test(String(s).trim());
}

/** True when `s` is something `resolve` understands. */
export function isValidTime(s) {
  s = String(s ?? '').trim();
  return isRelative(s) || /^\d{9,13}$/.test(s) || !Number.isNaN(Date.parse(s));
}

/**
 * Resolves a time to ms since the epoch. Digits: 13 or fewer with 13 → ms,
 * 10 → s. Anything `Date.parse` reads (ISO 8601) works too.
 */
export function resolve(s, nowMs = Date.now()) {
  s = String(s ?? '').trim();
  if (s === '' || s === 'now') return nowMs;
  if (isRelative(s)) {
    let t = nowMs;
    let sign = -1;
    const re = /([-+])?\s*(\d+)\s*(min|s|m|h|d|w)/g;
    let m;
    while ((m = re.exec(s))) {
      if (m[1]) sign = m[1] === '-' ? -1 : 1;
      t += sign * Number(m[2]) * UNIT_MS[m[3]];
    }
    return t;
  }
  if (/^\d+$/.test(s)) return s.length <= 10 ? Number(s) * 1000 : Number(s);
  const p = Date.parse(s);
  if (!Number.isNaN(p)) return p;
  throw new Error(`invalid time ${JSON.stringify(s)}`);
}

/** Resolves both ends; throws on an invalid or inverted range. */
export function resolveRange(from, until, nowMs = Date.now()) {
  const start = resolve(from, nowMs);
  const end = resolve(until, nowMs);
  if (!(start < end)) throw new Error('the start of the time range must be before its end');
  return { start: Math.floor(start), end: Math.floor(end) };
}

const pad = (n) => String(n).padStart(2, '0');

/** `2026-11-25 12:17:05` in local time. */
export function formatDateTime(ms, withSeconds = true) {
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? ':' + pad(d.getSeconds()) : ''}`;
  return `${date} ${time}`;
}

/** Value for an `<input type="datetime-local">`. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Human label of a range: a preset's name, or its two ends. */
export function describe(from, until) {
  if (String(until).trim() === 'now') {
    const p = PRESETS.find((x) => x.from === String(from).trim());
    if (p) return p.label;
    if (isRelative(from)) return `${from} → now`;
  }
  try {
    const { start, end } = resolveRange(from, until);
    const sameDay = new Date(start).toDateString() === new Date(end).toDateString();
    const e = formatDateTime(end);
    return `${formatDateTime(start)} → ${sameDay ? e.slice(11) : e}`;
  } catch {
    return `${from} → ${until}`;
  }
}

/** Length of a duration in words: `1h 30m`, `45s`. */
export function formatDuration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const parts = [];
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d) parts.push(`${d}d`);
  if (hh) parts.push(`${hh}h`);
  if (mm) parts.push(`${mm}m`);
  if (ss && !d) parts.push(`${ss}s`);
  return parts.join(' ');
}

const NICE_STEPS_S = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** SelectSeries step (seconds) giving about `points` buckets over the range. */
export function stepFor(startMs, endMs, points = 240) {
  const raw = (endMs - startMs) / 1000 / points;
  return NICE_STEPS_S.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
}
