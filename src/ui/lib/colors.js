// Frame colors: stable per package/module (hash of the name's prefix), and
// the red/green scale of a diff.

/**
 * The package or module of a frame name, the part that picks its color:
 * Go `crypto/sha256.(*digest).Write` → `crypto/sha256`; Rust `std::io::read` →
 * `std`; py-spy `fib (busy.py:4)` → `busy.py`; Node `./app.js:slowLoop:13` →
 * `./app.js`; Java `com.acme.Foo.bar` → `com.acme`.
 */
export function packageOf(name) {
  if (!name) return '';
  const py = /^(.*?) \(([^()]+?)(?::\d+)?\)$/.exec(name);
  if (py) return py[2];
  const file = /^(.*?\.(?:js|mjs|cjs|jsx|ts|tsx|py|rb|php|lua)):/.exec(name);
  if (file) return file[1];
  if (name.includes('::')) return name.replace(/^<+/, '').split('::')[0];
  const slash = name.lastIndexOf('/');
  if (slash >= 0) {
    const rest = name.slice(slash + 1);
    const dot = rest.indexOf('.');
    const colon = rest.indexOf(':');
    if (colon > 0 && (dot < 0 || colon < dot)) return name.slice(0, slash + 1 + colon);
    return dot > 0 ? name.slice(0, slash + 1 + dot) : name.slice(0, slash);
  }
  const colon = name.indexOf(':');
  if (colon > 0) return name.slice(0, colon);
  const parts = name.split('.');
  if (parts.length > 3) return parts.slice(0, parts.length - 2).join('.');
  return parts[0];
}

/** FNV-1a 32-bit hash. */
export function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// A readable palette of distinct hues (dark text stays legible on every entry).
const PALETTE = [
  '#f4a261', '#e9c46a', '#f28482', '#8ecae6', '#90be6d', '#cdb4db', '#f6bd60', '#84a59d',
  '#ffafcc', '#a3c4f3', '#b5e48c', '#fcbf49', '#e5989b', '#99d98c', '#ffc8a2', '#bde0fe',
  '#d4a373', '#c9ada7', '#9bf6ff', '#ffd6a5', '#caffbf', '#fdffb6', '#b8c0ff', '#ffadad',
];

const colorCache = new Map();

/** The color of a frame: one per package. */
export function frameColor(name) {
  if (name === 'total') return '#c9ced6';
  if (name === 'other') return '#d6d9de';
  const pkg = packageOf(name);
  let c = colorCache.get(pkg);
  if (!c) {
    c = PALETTE[hash(pkg) % PALETTE.length];
    if (colorCache.size > 50_000) colorCache.clear();
    colorCache.set(pkg, c);
  }
  return c;
}

export const DIM_COLOR = '#e8eaee';
export const DIM_TEXT = '#9aa1ad';

/**
 * Relative change of a node between the two sides of a diff, each normalized
 * by its own side's total: (right share − left share) / left share.
 * +Infinity when the node is new, -1 when it disappeared.
 */
export function relativeChange(leftValue, leftTicks, rightValue, rightTicks) {
  const l = leftTicks ? leftValue / leftTicks : 0;
  const r = rightTicks ? rightValue / rightTicks : 0;
  if (l === 0) return r === 0 ? 0 : Infinity;
  return (r - l) / l;
}

/** Changes within ±this are drawn neutral. */
export const DIFF_NEUTRAL = 0.05;

/** `grew`, `shrank` or `same` for a relative change. */
export function diffClass(change) {
  if (change > DIFF_NEUTRAL) return 'grew';
  if (change < -DIFF_NEUTRAL) return 'shrank';
  return 'same';
}

const NEUTRAL = [206, 211, 219];
const RED = [226, 62, 56];
const GREEN = [46, 160, 67];

function mix(a, b, t) {
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Color of a relative change: red grew, green shrank, saturating at ±100%. */
export function diffColor(change) {
  if (Math.abs(change) <= DIFF_NEUTRAL) return mix(NEUTRAL, NEUTRAL, 0);
  const t = Math.min(1, 0.25 + 0.75 * Math.min(1, Math.abs(change)));
  return mix(NEUTRAL, change > 0 ? RED : GREEN, t);
}

/** Stops for the diff legend, from −100% to +100%. */
export const DIFF_LEGEND = [-1, -0.5, -0.2, 0, 0.2, 0.5, 1];

/** Colors of chart series. */
export const SERIES_COLORS = ['#3b6fd8', '#e0663c', '#2f9e6e', '#9b5bd4', '#d4a017', '#d6457a', '#1f9bb0', '#7a869a'];
