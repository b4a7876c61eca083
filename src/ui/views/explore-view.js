// The explore views: flame graph, table, or both side by side, kept in sync
// (a row click focuses the function's widest frame; a frame click selects its
// row).

import { h } from '../lib/dom.js';
import { FunctionTable } from '../components/function-table.js';
import { FlamePanel } from '../components/flame-panel.js';
import { focusKey } from '../flame/model.js';
import { widestFrame } from '../flame/functions.js';

export class ExploreView {
  /** @param {HTMLElement} host @param {import('../app.js').App} app */
  constructor(host, app) {
    this.app = app;
    this.host = host;
    this.tableHost = h('section', { id: 'explore-table', class: 'pane pane-table', 'aria-label': 'Functions' });
    this.flameHost = h('section', { id: 'explore-flame', class: 'pane pane-flame', 'aria-label': 'Flame graph' });
    host.append(this.tableHost, this.flameHost);
    this.table = new FunctionTable(this.tableHost, {
      idPrefix: 'explore',
      onSort: (sort, dir) => app.set({ sort, dir }, { replace: true }),
      onFilter: (filter) => app.set({ filter }, { replace: true }),
      onSelect: (name) => this.focusFunction(name),
      onActivate: (name) => {
        this.focusFunction(name);
        if (app.state.view === 'table') app.set({ view: 'both' });
      },
    });
    this.flame = new FlamePanel(this.flameHost, {
      idPrefix: 'flame',
      label: 'Flame graph of the selection',
      onFocus: (key, id) => {
        const m = this.model;
        app.set({ focus: key, fn: id === 0 ? '' : m.names[m.name[id]] });
      },
      onSearch: (search) => app.set({ search }, { replace: true }),
      onOrientation: (orient) => app.set({ orient }),
    });
  }

  /** Selects a function and zooms the flame graph to its widest frame. */
  focusFunction(name) {
    const m = this.model;
    if (!m) return;
    const idx = m.names.indexOf(name);
    const id = idx >= 0 ? widestFrame(m, idx) : -1;
    this.app.set({ fn: name, focus: id > 0 ? focusKey(m, id) : '' });
  }

  /**
   * @param {object} s  URL state
   * @param {{model, rows, unit, empty, loading}} d
   */
  render(s, d) {
    this.model = d.model;
    this.host.dataset.layout = s.view;
    this.tableHost.hidden = s.view === 'flamegraph';
    this.flameHost.hidden = s.view === 'table';
    if (!this.flameHost.hidden) {
      this.flame.set({ model: d.model, unit: d.unit, focus: s.focus, search: s.search, selected: s.fn, orientation: s.orient, empty: d.empty });
    }
    if (!this.tableHost.hidden) {
      this.tableHost.classList.toggle('is-empty', !!d.empty);
      if (d.model && !d.empty) {
        this.table.set({ rows: d.rows, diff: false, total: d.model.total, unit: d.unit, sort: s.sort, dir: s.dir, filter: s.filter, selected: s.fn });
      } else {
        this.table.set({ rows: [], diff: false, total: 0, unit: d.unit, sort: s.sort, dir: s.dir, filter: s.filter, selected: '' });
      }
    }
  }

  /** Scrolls the selected row into view (after a frame click). */
  revealSelected() {
    if (!this.tableHost.hidden) this.table.revealSelected();
  }
}
