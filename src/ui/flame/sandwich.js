// The sandwich view of one function, computed client-side from the flame
// graph model: its callers (an inverted tree: the function at the root, its
// callers above it) and its callees (the merged subtrees below it). Only the
// outermost frames of a recursive function count, so nothing is counted twice.

import { modelFromTree } from './model.js';

function treeNode(name) {
  return { name, self: 0, total: 0, children: new Map() };
}

function child(node, name) {
  let c = node.children.get(name);
  if (!c) {
    c = treeNode(name);
    node.children.set(name, c);
  }
  return c;
}

/** Outermost frames of function `f` (no ancestor frame of the same function). */
function outermostFrames(m, f) {
  const inside = new Uint8Array(m.n);
  const out = [];
  for (let i = 1; i < m.n; i++) {
    const p = m.parent[i];
    const pIn = p > 0 ? inside[p] | (m.name[p] === f ? 1 : 0) : 0;
    inside[i] = pIn;
    if (m.name[i] === f && !pIn) out.push(i);
  }
  return out;
}

/** Adds the subtree of model node `id` into the plain tree node `t`. */
function mergeSubtree(m, id, t) {
  // Iterative: stacks can be 1000 frames deep.
  const stack = [[id, t]];
  while (stack.length) {
    const [i, node] = stack.pop();
    node.total += m.w[i];
    node.self += m.self[i];
    for (let c = m.childStart[i]; c < m.childEnd[i]; c++) {
      stack.push([c, child(node, m.names[m.name[c]])]);
    }
  }
}

/**
 * @returns {{callers: import('./model.js').FlameModel, callees: import('./model.js').FlameModel, total: number, frames: number}|null}
 *   null when the function has no frame.
 */
export function sandwich(m, nameIdx) {
  const frames = outermostFrames(m, nameIdx);
  if (!frames.length) return null;
  const name = m.names[nameIdx];
  const callees = treeNode(name);
  const callers = treeNode(name);
  for (const id of frames) {
    mergeSubtree(m, id, callees);
    // Callers: the path up to the root, nearest caller first.
    const v = m.w[id];
    callers.total += v;
    let node = callers;
    let p = m.parent[id];
    if (p <= 0) node.self += v;
    while (p > 0) {
      node = child(node, m.names[m.name[p]]);
      node.total += v;
      if (m.parent[p] <= 0) node.self += v;
      p = m.parent[p];
    }
  }
  return {
    callers: modelFromTree(callers),
    callees: modelFromTree(callees),
    total: callees.total,
    frames: frames.length,
  };
}
