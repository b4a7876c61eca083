// The sandwich view: pick a function in the table; its callers (inverted,
// the function at the bottom) are drawn above and its callees below.

import { h, replace } from '../lib/dom.js';
import { FunctionTable } from '../components/function-table.js';
import { FlamePanel } from '../components/flame-panel.js';
import { sandwich } from '../flame/sandwich.js';
import { formatPercent, formatValue } from '../lib/units.js';

export class SandwichView {
  constructor(host, app) {
    this.app = app;
    this.tableHost = h('section', { id: 'sandwich-table', class: 'pane pane-table', 'aria-label': 'Functions' });
    this.title = h('div', { id: 'sandwich-title', class: 'sandwich-title' });
    this.callersHost = h('div', { id: 'sandwich-callers', class: 'sandwich-part' });
    this.calleesHost = h('div', { id: 'sandwich-callees', class: 'sandwich-part' });
    this.right = h('section', { class: 'pane pane-flame', 'aria-label': 'Sandwich' },
      this.title,
      h('h3', { class: 'part-title', text: 'Callers' }), this.callersHost,
      h('h3', { class: 'part-title', text: 'Callees' }), this.calleesHost);
    host.append(this.tableHost, this.right);
    this.table = new FunctionTable(this.tableHost, {
      idPrefix: 'sandwich',
      onSort: (sort, dir) => app.set({ sort, dir }, { replace: true }),
      onFilter: (filter) => app.set({ filter }, { replace: true }),
      onSelect: (fn) => app.set({ fn }),
    });
    this.callers = new FlamePanel(this.callersHost, { idPrefix: 'callers', label: 'Callers of the function', search: false, orientationToggle: false, compact: true });
    this.callees = new FlamePanel(this.calleesHost, { idPrefix: 'callees', label: 'Callees of the function', search: false, orientationToggle: false, compact: true });
    this.cacheKey = null;
  }

  /** The function shown: the URL's, else the top self one. */
  static chosen(s, rows) {
    if (s.fn && rows.some((r) => r.name === s.fn)) return s.fn;
    let best = null;
    for (const r of rows) if (!best || r.self > best.self) best = r;
    return best ? best.name : '';
  }

  render(s, d) {
    if (!d.model || d.empty) {
      this.table.set({ rows: [], diff: false, total: 0, unit: d.unit, sort: s.sort, dir: s.dir, filter: s.filter, selected: '' });
      replace(this.title);
      this.callers.set({ model: null, empty: d.empty });
      this.callees.set({ model: null });
      this.current = null;
      return;
    }
    const fn = SandwichView.chosen(s, d.rows);
    this.table.set({ rows: d.rows, diff: false, total: d.model.total, unit: d.unit, sort: s.sort, dir: s.dir, filter: s.filter, selected: fn });
    if (this.cacheKey?.model !== d.model || this.cacheKey?.fn !== fn) {
      const idx = d.model.names.indexOf(fn);
      this.current = idx >= 0 ? sandwich(d.model, idx) : null;
      this.cacheKey = { model: d.model, fn };
    }
    const sw = this.current;
    if (!sw) {
      replace(this.title, 'Choose a function in the table.');
      this.callers.set({ model: null });
      this.callees.set({ model: null });
      return;
    }
    this.fn = fn;
    replace(this.title,
      h('span', { class: 'sandwich-fn', text: fn }),
      h('span', { class: 'muted', text: ` · total ${formatValue(sw.total, d.unit)} (${formatPercent(sw.total, d.model.total)})` }));
    this.title.dataset.fn = fn;
    this.callers.set({ model: sw.callers, unit: d.unit, orientation: 'flame', selected: fn });
    this.callees.set({ model: sw.callees, unit: d.unit, orientation: 'icicle', selected: fn });
  }
}
