// The whole view state lives in the URL query string: parsing, printing
// (defaults omitted, so URLs stay short) and history entries.

export const VIEWS = ['flamegraph', 'table', 'both', 'sandwich', 'diff'];

export const DEFAULTS = Object.freeze({
  tenant: '',
  service: '',
  type: '',
  sel: '', // extra label matchers, e.g. version="1"
  from: 'now-1h',
  until: 'now',
  groupBy: '',
  view: 'both',
  search: '',
  fn: '', // the selected function (table row, sandwich)
  focus: '', // zoomed frame: its names from the root, ';'-joined
  orient: 'icicle', // icicle (top-down) or flame (bottom-up)
  maxNodes: '',
  sort: 'self',
  dir: 'desc',
  filter: '',
  // Diff: baseline (left) and comparison (right); empty means "same as the main one".
  lsel: '',
  rsel: '',
  lfrom: '',
  luntil: '',
  rfrom: '',
  runtil: '',
});

/** Default flame graph size asked from the server. */
export const DEFAULT_MAX_NODES = 16384;

/** Parses a query string into a full state object. */
export function parseState(search) {
  const p = new URLSearchParams(search);
  const s = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS)) {
    const v = p.get(k);
    if (v !== null) s[k] = v;
  }
  if (!VIEWS.includes(s.view)) s.view = DEFAULTS.view;
  if (s.orient !== 'flame') s.orient = 'icicle';
  if (s.dir !== 'asc') s.dir = 'desc';
  return s;
}

/** Prints a state as a query string (with `?`, or '' when all defaults). */
export function printState(s) {
  const p = new URLSearchParams();
  for (const k of Object.keys(DEFAULTS)) {
    const v = s[k];
    if (v !== undefined && v !== null && String(v) !== DEFAULTS[k]) p.set(k, String(v));
  }
  const q = p.toString();
  return q ? `?${q}` : '';
}

/** Keys whose change needs new data from the server (the rest only re-render). */
export const DATA_KEYS = ['tenant', 'service', 'type', 'sel', 'from', 'until', 'groupBy', 'maxNodes',
  'lsel', 'rsel', 'lfrom', 'luntil', 'rfrom', 'runtil'];

/** The flame graph's node limit for a state. */
export function maxNodesOf(s) {
  const n = Number.parseInt(s.maxNodes, 10);
  return Number.isFinite(n) && n > 0 ? n : DEFAULT_MAX_NODES;
}

/** Escapes a label value for a selector string. */
export function quoteValue(v) {
  return `"${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The extra matchers without surrounding braces or commas. */
export function normalizeMatchers(sel) {
  let t = String(sel || '').trim();
  if (t.startsWith('{') && t.endsWith('}')) t = t.slice(1, -1).trim();
  return t.replace(/^,+|,+$/g, '').trim();
}

/** The full label selector: service_name plus the extra matchers. */
export function buildSelector(service, sel) {
  const parts = [];
  if (service) parts.push(`service_name=${quoteValue(service)}`);
  const extra = normalizeMatchers(sel);
  if (extra) parts.push(extra);
  return `{${parts.join(', ')}}`;
}
