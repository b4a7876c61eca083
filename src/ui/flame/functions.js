// Per-function figures computed from a flame graph model: self and total
// (a function counts once per stack, so recursion is not double counted), and
// the search matches with their share of the total.

/**
 * @typedef {object} FunctionRow
 * @property {number} idx   index into model.names
 * @property {string} name
 * @property {number} self  @property {number} total
 * @property {number} frames  number of flame graph frames of the function
 * @property {number} [lself] @property {number} [ltotal] @property {number} [rself] @property {number} [rtotal]
 */

/** One row per function of the model (the root excluded). */
export function aggregateFunctions(m) {
  const k = m.names.length;
  const self = new Float64Array(k);
  const total = new Float64Array(k);
  const frames = new Int32Array(k);
  const active = new Int32Array(k);
  const diff = m.diff;
  const lself = diff ? new Float64Array(k) : null;
  const ltotal = diff ? new Float64Array(k) : null;
  const rself = diff ? new Float64Array(k) : null;
  const rtotal = diff ? new Float64Array(k) : null;
  // Depth-first walk; a negative entry (~id) marks leaving a node.
  const stack = new Int32Array(2 * m.n + 2);
  let sp = 0;
  if (m.n) for (let c = m.childEnd[0] - 1; c >= m.childStart[0]; c--) stack[sp++] = c;
  while (sp > 0) {
    const e = stack[--sp];
    if (e < 0) {
      active[m.name[~e]]--;
      continue;
    }
    const f = m.name[e];
    if (active[f] === 0) {
      total[f] += m.w[e];
      if (diff) {
        ltotal[f] += m.lw[e];
        rtotal[f] += m.rw[e];
      }
    }
    self[f] += m.self[e];
    if (diff) {
      lself[f] += m.lself[e];
      rself[f] += m.rself[e];
    }
    frames[f]++;
    active[f]++;
    stack[sp++] = ~e;
    for (let c = m.childEnd[e] - 1; c >= m.childStart[e]; c--) stack[sp++] = c;
  }
  const rows = [];
  for (let f = 0; f < k; f++) {
    if (!frames[f]) continue;
    const row = { idx: f, name: m.names[f], self: self[f], total: total[f], frames: frames[f] };
    if (diff) {
      row.lself = lself[f];
      row.ltotal = ltotal[f];
      row.rself = rself[f];
      row.rtotal = rtotal[f];
    }
    rows.push(row);
  }
  return rows;
}

/**
 * Frames whose name contains `query` (case-insensitive).
 * @returns {{matched: Uint8Array, nodes: number, functions: number, value: number}}
 *   `value`: the total of matching frames not nested in another match, so a
 *   recursive match counts once.
 */
export function searchModel(m, query) {
  const matched = new Uint8Array(m.n);
  const q = String(query || '').trim().toLowerCase();
  if (!q || !m.n) return { matched, nodes: 0, functions: 0, value: 0, query: q };
  const nameHit = new Uint8Array(m.names.length);
  let functions = 0;
  for (let i = 0; i < m.names.length; i++) {
    if (m.names[i].toLowerCase().includes(q)) nameHit[i] = 1;
  }
  const covered = new Uint8Array(m.n);
  const seen = new Uint8Array(m.names.length);
  let nodes = 0;
  let value = 0;
  for (let i = 1; i < m.n; i++) {
    const p = m.parent[i];
    if (p > 0) covered[i] = covered[p] | matched[p];
    if (nameHit[m.name[i]]) {
      matched[i] = 1;
      nodes++;
      if (!seen[m.name[i]]) {
        seen[m.name[i]] = 1;
        functions++;
      }
      if (!covered[i]) value += m.w[i];
    }
  }
  return { matched, nodes, functions, value, query: q };
}

/** Frames of one function (exact name), with the same outermost-only value. */
export function framesOfFunction(m, nameIdx) {
  const matched = new Uint8Array(m.n);
  const covered = new Uint8Array(m.n);
  let nodes = 0;
  let value = 0;
  for (let i = 1; i < m.n; i++) {
    const p = m.parent[i];
    if (p > 0) covered[i] = covered[p] | matched[p];
    if (m.name[i] === nameIdx) {
      matched[i] = 1;
      nodes++;
      if (!covered[i]) value += m.w[i];
    }
  }
  return { matched, nodes, functions: nodes ? 1 : 0, value };
}

/** The widest frame of a function, or -1. */
export function widestFrame(m, nameIdx) {
  let best = -1;
  for (let i = 1; i < m.n; i++) if (m.name[i] === nameIdx && (best < 0 || m.w[i] > m.w[best])) best = i;
  return best;
}
