// Units of a profile type id (`name:sample_type:sample_unit:period_type:period_unit`)
// and formatting of values in them.

/** Parts of a profile type id. */
export function parseProfileType(id) {
  const [name = '', sampleType = '', sampleUnit = '', periodType = '', periodUnit = ''] = String(id || '').split(':');
  return { id, name, sampleType, sampleUnit, periodType, periodUnit };
}

const TIME_NS = { nanoseconds: 1, microseconds: 1e3, milliseconds: 1e6, seconds: 1e9 };

const units = new Map();

/**
 * `{kind: 'time'|'bytes'|'count', scale}`: scale converts a value to ns / bytes / 1.
 * The same object for the same id (views compare units by identity).
 */
export function unitOf(profileTypeId) {
  const u = parseProfileType(profileTypeId).sampleUnit.toLowerCase();
  let unit = units.get(u);
  if (!unit) {
    if (u in TIME_NS) unit = { kind: 'time', scale: TIME_NS[u], name: u };
    else if (u === 'bytes') unit = { kind: 'bytes', scale: 1, name: u };
    else unit = { kind: 'count', scale: 1, name: u || 'count' };
    units.set(u, unit);
  }
  return unit;
}

function sig(x) {
  // 3 significant digits, without exponent notation or trailing zeros noise.
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1).replace(/\.0$/, '');
  return x.toFixed(2).replace(/\.?0+$/, '');
}

function formatTimeNs(ns) {
  const a = Math.abs(ns);
  if (a < 1e3) return `${sig(ns)} ns`;
  if (a < 1e6) return `${sig(ns / 1e3)} µs`;
  if (a < 1e9) return `${sig(ns / 1e6)} ms`;
  if (a < 60e9) return `${sig(ns / 1e9)} s`;
  if (a < 3600e9) return `${sig(ns / 60e9)} min`;
  if (a < 86400e9) return `${sig(ns / 3600e9)} h`;
  return `${sig(ns / 86400e9)} d`;
}

function formatBytes(b) {
  const a = Math.abs(b);
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = b;
  let av = a;
  while (av >= 1024 && i < units.length - 1) {
    v /= 1024;
    av /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${sig(v)} ${units[i]}`;
}

function formatCount(c) {
  const a = Math.abs(c);
  if (a < 10_000) return Number.isInteger(c) ? String(c) : sig(c);
  if (a < 1e6) return `${sig(c / 1e3)} k`;
  if (a < 1e9) return `${sig(c / 1e6)} M`;
  if (a < 1e12) return `${sig(c / 1e9)} G`;
  return `${sig(c / 1e12)} T`;
}

/** A value in the profile's unit, e.g. `5.64 s`, `2.5 MB`, `1.2 k`. */
export function formatValue(v, unit) {
  if (!Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  switch (unit?.kind) {
    case 'time':
      return formatTimeNs(v * unit.scale);
    case 'bytes':
      return formatBytes(v);
    default:
      return formatCount(v);
  }
}

/** A share as a percentage with two decimals: `64.75%`. */
export function formatPercent(part, whole) {
  if (!whole) return '0%';
  return `${((part / whole) * 100).toFixed(2)}%`;
}

/** A signed change in percentage points or percent: `+12.3%`. */
export function formatSigned(pct, digits = 2) {
  if (!Number.isFinite(pct)) return pct > 0 ? 'new' : 'removed';
  const s = pct.toFixed(digits);
  return `${pct > 0 ? '+' : pct < 0 ? '' : '±'}${s}%`;
}

/** Short human label of a profile type, e.g. `process_cpu · cpu (nanoseconds)`. */
export function profileTypeLabel(id) {
  const p = parseProfileType(id);
  return `${p.name} · ${p.sampleType}${p.sampleUnit ? ` (${p.sampleUnit})` : ''}`;
}
