// `window.__ignis`: a read-only window on the rendered model for end-to-end
// tests (integration/scripts/ui_test.py) and for debugging from the console.

function graphOf(app, which) {
  const v = app.state.view;
  switch (which) {
    case 'callers':
      return app.sandwichView.callers.graph;
    case 'callees':
      return app.sandwichView.callees.graph;
    default:
      return v === 'diff' ? app.diffView.flame.graph : app.exploreView.flame.graph;
  }
}

export function installTestHook(app) {
  window.__ignis = {
    app,
    get state() {
      return { ...app.state };
    },
    get pending() {
      return app.pending;
    },
    get renders() {
      return app.hookRenders || 0;
    },
    /** True when no request is in flight and the current view's data is loaded. */
    idle() {
      if (app.pending > 0) return false;
      const c = app.state.view === 'diff' ? app.cache.diff : app.cache.flame;
      return !c.loading && !app.cache.series.loading && (!!app.cache.catalog || app.errors.size > 0);
    },
    timings: app.timings,
    errors() {
      return [...app.errors.entries()].map(([source, e]) => ({ source, status: e.status || 0, code: e.code || '', message: String(e.message || e) }));
    },
    /** The model of a graph: `main` (explore or diff), `callers`, `callees`. */
    model(which = 'main') {
      const g = graphOf(app, which);
      const m = g && g.model;
      if (!m) return null;
      return {
        nodes: m.n,
        depth: m.depth,
        total: m.total,
        diff: m.diff,
        leftTicks: m.leftTicks,
        rightTicks: m.rightTicks,
        focus: m.names[m.name[g.focus]],
        focusTotal: m.w[g.focus],
        focusWidth: g.frameRect(g.focus)?.w ?? 0,
        canvasWidth: g.host.clientWidth,
        orientation: g.orientation,
        stats: { ...g.stats },
        lastZoom: g.lastZoom ? { ...g.lastZoom } : null,
      };
    },
    /** Visible frames of a function, with page coordinates for clicking. */
    frames(name, which = 'main') {
      const g = graphOf(app, which);
      const m = g && g.model;
      if (!m) return [];
      const box = g.canvas.getBoundingClientRect();
      const out = [];
      for (let i = 0; i < m.n; i++) {
        if (m.names[m.name[i]] !== name) continue;
        const r = g.frameRect(i);
        out.push({
          id: i,
          level: m.level[i],
          self: m.self[i],
          total: m.w[i],
          visible: !!r,
          x: r ? box.left + r.x : null,
          y: r ? box.top + r.y : null,
          w: r ? r.w : 0,
          h: r ? r.h : 0,
          change: m.diff ? g.changeClass(i) : null,
          leaf: m.childEnd[i] === m.childStart[i],
        });
      }
      return out.sort((a, b) => b.total - a.total);
    },
    /** The leaf frame with the largest self value. */
    widestLeaf(which = 'main') {
      const g = graphOf(app, which);
      const m = g && g.model;
      if (!m) return null;
      let best = -1;
      for (let i = 1; i < m.n; i++) if (m.childEnd[i] === m.childStart[i] && (best < 0 || m.self[i] > m.self[best])) best = i;
      return best < 0 ? null : { id: best, name: m.names[m.name[best]], self: m.self[best], total: m.w[best] };
    },
    /** Change class of a function's widest frame in the diff: grew, shrank, same. */
    diffClass(name) {
      return app.diffView.classOf(name);
    },
    search() {
      const p = app.state.view === 'diff' ? app.diffView.flame : app.exploreView.flame;
      const s = p.search;
      return s ? { query: s.query, nodes: s.nodes, functions: s.functions, value: s.value } : null;
    },
    sandwich() {
      const v = app.sandwichView;
      return v.current ? { fn: v.fn, total: v.current.total, callers: v.current.callers.n, callees: v.current.callees.n } : null;
    },
  };
}
