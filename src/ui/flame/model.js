// The flame graph model: the server's levels (4-tuples, or 7-tuples for a
// diff) decoded once into flat typed arrays, nodes ordered by level then x,
// with parents, children ranges and subtree depths precomputed, so rendering,
// hit-testing and aggregation never allocate per node.

import { num } from '../lib/api.js';

/**
 * @typedef {object} FlameModel
 * @property {string[]} names
 * @property {number} n          node count (node 0 is the root, "total")
 * @property {number} depth      number of levels
 * @property {Int32Array} levelStart  first node of level d (length depth + 1)
 * @property {Int32Array} level
 * @property {Float64Array} x     start, in ticks
 * @property {Float64Array} w     total (width), in ticks
 * @property {Float64Array} self
 * @property {Int32Array} name    index into names
 * @property {Int32Array} parent  -1 for the root
 * @property {Int32Array} childStart first child (children are contiguous in the next level)
 * @property {Int32Array} childEnd   one past the last child
 * @property {Int32Array} height  levels below the node, itself included
 * @property {number} total
 * @property {boolean} diff
 * @property {Float64Array} [lw] @property {Float64Array} [lself]
 * @property {Float64Array} [rw] @property {Float64Array} [rself]
 * @property {number} [leftTicks] @property {number} [rightTicks]
 */

/** Decodes a FlameGraph (or FlameGraphDiff when `diff`) message. */
export function decodeFlamegraph(fg, diff = false) {
  const names = (fg && fg.names) || ['total'];
  const rawLevels = (fg && fg.levels) || [];
  const stride = diff ? 7 : 4;
  let n = 0;
  const levels = rawLevels.map((l) => (Array.isArray(l) ? l : l.values || []));
  for (const l of levels) n += Math.floor(l.length / stride);
  const depth = levels.length;
  const m = alloc(n, depth, diff);
  m.names = names;
  let i = 0;
  for (let d = 0; d < depth; d++) {
    m.levelStart[d] = i;
    const v = levels[d];
    let prevL = 0;
    let prevR = 0;
    for (let j = 0; j + stride <= v.length; j += stride) {
      if (diff) {
        const xl = num(v[j]) + prevL;
        const tl = num(v[j + 1]);
        const xr = num(v[j + 3]) + prevR;
        const tr = num(v[j + 4]);
        prevL = xl + tl;
        prevR = xr + tr;
        m.lw[i] = tl;
        m.lself[i] = num(v[j + 2]);
        m.rw[i] = tr;
        m.rself[i] = num(v[j + 5]);
        m.x[i] = xl + xr;
        m.w[i] = tl + tr;
        m.self[i] = m.lself[i] + m.rself[i];
        m.name[i] = num(v[j + 6]);
      } else {
        const x = num(v[j]) + prevL;
        const t = num(v[j + 1]);
        prevL = x + t;
        m.x[i] = x;
        m.w[i] = t;
        m.self[i] = num(v[j + 2]);
        m.name[i] = num(v[j + 3]);
      }
      m.level[i] = d;
      i++;
    }
  }
  m.levelStart[depth] = i;
  m.total = n ? m.w[0] : 0;
  if (diff) {
    m.leftTicks = num(fg.leftTicks) || (n ? m.lw[0] : 0);
    m.rightTicks = num(fg.rightTicks) || (n ? m.rw[0] : 0);
  }
  link(m);
  return m;
}

function alloc(n, depth, diff) {
  const m = {
    names: [],
    n,
    depth,
    levelStart: new Int32Array(depth + 1),
    level: new Int32Array(n),
    x: new Float64Array(n),
    w: new Float64Array(n),
    self: new Float64Array(n),
    name: new Int32Array(n),
    parent: new Int32Array(n).fill(-1),
    childStart: new Int32Array(n),
    childEnd: new Int32Array(n),
    height: new Int32Array(n),
    total: 0,
    diff,
  };
  if (diff) {
    m.lw = new Float64Array(n);
    m.lself = new Float64Array(n);
    m.rw = new Float64Array(n);
    m.rself = new Float64Array(n);
  }
  return m;
}

/**
 * Parents and children ranges: the children of a node are the nodes of the
 * next level whose start lies inside it; both levels are sorted by x, so one
 * merge pass per level finds them all.
 */
function link(m) {
  m.childStart.fill(-1);
  for (let d = 0; d + 1 < m.depth; d++) {
    let p = m.levelStart[d];
    const pEnd = m.levelStart[d + 1];
    const cEnd = m.levelStart[d + 2];
    for (let c = pEnd; c < cEnd; c++) {
      const cx = m.x[c];
      while (p < pEnd && m.x[p] + m.w[p] <= cx) p++;
      if (p >= pEnd) break;
      if (cx < m.x[p]) continue; // orphan (should not happen)
      if (m.childStart[p] < 0) m.childStart[p] = c;
      m.childEnd[p] = c + 1;
      m.parent[c] = p;
    }
  }
  for (let i = 0; i < m.n; i++) {
    if (m.childStart[i] < 0) {
      m.childStart[i] = 0;
      m.childEnd[i] = 0;
    }
  }
  for (let i = m.n - 1; i >= 0; i--) {
    if (m.height[i] === 0) m.height[i] = 1;
    const p = m.parent[i];
    if (p >= 0 && m.height[i] + 1 > m.height[p]) m.height[p] = m.height[i] + 1;
  }
}

/**
 * Builds a model from a plain tree `{name, self, total, children: []}` (the
 * sandwich view's callers and callees). Children are laid out left to right
 * by descending total, after their parent's self.
 */
export function modelFromTree(root) {
  const names = [];
  const index = new Map();
  const intern = (s) => {
    let i = index.get(s);
    if (i === undefined) {
      i = names.length;
      names.push(s);
      index.set(s, i);
    }
    return i;
  };
  // Breadth-first, keeping each level in x order.
  const levels = [];
  let cur = [{ node: root, x: 0 }];
  let n = 0;
  while (cur.length) {
    levels.push(cur);
    n += cur.length;
    const next = [];
    for (const { node, x } of cur) {
      let cx = x + node.self;
      const kids = [...(node.children ? node.children.values() : [])].sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1));
      for (const k of kids) {
        next.push({ node: k, x: cx });
        cx += k.total;
      }
    }
    cur = next;
  }
  const m = alloc(n, levels.length, false);
  m.names = names;
  let i = 0;
  levels.forEach((lv, d) => {
    m.levelStart[d] = i;
    for (const { node, x } of lv) {
      m.level[i] = d;
      m.x[i] = x;
      m.w[i] = node.total;
      m.self[i] = node.self;
      m.name[i] = intern(node.name);
      i++;
    }
  });
  m.levelStart[levels.length] = i;
  m.total = n ? m.w[0] : 0;
  link(m);
  return m;
}

/** Node ids from the root down to `id`. */
export function pathTo(m, id) {
  const path = [];
  for (let i = id; i >= 0; i = m.parent[i]) path.push(i);
  return path.reverse();
}

/** The focus path as stored in the URL: names below the root, ';'-joined. */
export function focusKey(m, id) {
  return pathTo(m, id)
    .slice(1)
    .map((i) => m.names[m.name[i]])
    .join(';');
}

/** Finds a node from its focus key (the widest match at each level); 0 if gone. */
export function nodeFromFocusKey(m, key) {
  if (!key || !m.n) return 0;
  let id = 0;
  for (const name of key.split(';')) {
    let best = -1;
    for (let c = m.childStart[id]; c < m.childEnd[id]; c++) {
      if (m.names[m.name[c]] === name && (best < 0 || m.w[c] > m.w[best])) best = c;
    }
    if (best < 0) return id;
    id = best;
  }
  return id;
}

/** Node of a level whose x range contains `x` (binary search), or -1. */
export function nodeAt(m, level, x) {
  if (level < 0 || level >= m.depth) return -1;
  let lo = m.levelStart[level];
  let hi = m.levelStart[level + 1] - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (m.x[mid] + m.w[mid] <= x) lo = mid + 1;
    else if (m.x[mid] > x) hi = mid - 1;
    else return mid;
  }
  return -1;
}

/** First node of a level that ends after `x` (binary search). */
export function firstEndingAfter(m, level, x) {
  let lo = m.levelStart[level];
  let hi = m.levelStart[level + 1];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (m.x[mid] + m.w[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
