// The diff view: a baseline and a comparison (each a label selector and a
// time range), one flame graph colored by the relative change of each frame
// (shares of each side's own total; red grew, green shrank), a legend, and
// the functions sorted by change.

import { h, replace } from '../lib/dom.js';
import { FunctionTable } from '../components/function-table.js';
import { FlamePanel } from '../components/flame-panel.js';
import { SelectorInput } from '../components/selector-input.js';
import { TimeRangePicker } from '../components/time-range-picker.js';
import { focusKey } from '../flame/model.js';
import { widestFrame } from '../flame/functions.js';
import { DIFF_LEGEND, diffColor } from '../lib/colors.js';
import { formatValue } from '../lib/units.js';

export class DiffView {
  constructor(host, app) {
    this.app = app;
    const side = (key, title, cls) => {
      const sel = new SelectorInput({
        label: `${title} label selector`,
        placeholder: 'same as above, e.g. version="1.2"',
        names: () => app.labelNames(),
        values: (n) => app.labelValues(n),
        onSubmit: (text) => app.set({ [`${key}sel`]: text.trim() }),
      });
      sel.input.id = `${key}-selector`;
      const range = new TimeRangePicker({
        idPrefix: `${key}-range`,
        label: `${title} time range`,
        onChange: (from, until) => app.set({ [`${key}from`]: from, [`${key}until`]: until }),
      });
      const apply = h('button', { type: 'button', class: 'btn btn-small', text: 'Apply' });
      apply.addEventListener('click', () => {
        range.commit();
        app.set({ [`${key}sel`]: sel.value.trim() });
      });
      const radio = h('input', { type: 'radio', name: 'diff-drag', value: key, id: `${key}-drag`, checked: key === 'r' });
      const box = h('fieldset', { class: `diff-side ${cls}` },
        h('legend', {}, h('span', { class: `side-chip ${cls}` }), title),
        h('label', { class: 'field-label', for: sel.input.id, text: 'Labels' }), sel.el,
        h('div', { class: 'field-label', text: 'Time range' }), range.el,
        h('div', { class: 'diff-side-foot' },
          h('label', { class: 'radio' }, radio, ' select on the chart'),
          h('span', { class: 'spacer' }), apply),
        h('div', { class: 'side-total', id: `${key}-total` }));
      return { sel, range, radio, box, total: box.lastChild };
    };
    this.left = side('l', 'Baseline', 'side-left');
    this.right = side('r', 'Comparison', 'side-right');
    const swap = h('button', { type: 'button', class: 'btn btn-small', id: 'diff-swap', text: '⇄ Swap', title: 'Swap baseline and comparison' });
    swap.addEventListener('click', () => {
      const s = app.state;
      app.set({ lsel: s.rsel, rsel: s.lsel, lfrom: s.rfrom, luntil: s.runtil, rfrom: s.lfrom, runtil: s.luntil });
    });
    this.legend = h('div', { class: 'diff-legend', id: 'diff-legend', 'aria-label': 'Color legend' },
      h('span', { class: 'legend-end', text: 'shrank' }),
      ...DIFF_LEGEND.map((v) => h('span', { class: 'legend-stop', style: `background:${diffColor(v)}`, text: `${v > 0 ? '+' : ''}${Math.round(v * 100)}%` })),
      h('span', { class: 'legend-end', text: 'grew' }),
      h('span', { class: 'legend-note', text: 'Change of each frame’s share of its side’s total; grey = unchanged (within ±5%), "new" frames are full red.' }));
    const controls = h('div', { class: 'diff-controls' }, this.left.box, h('div', { class: 'diff-mid' }, swap), this.right.box);
    this.tableHost = h('section', { id: 'diff-table', class: 'pane pane-table', 'aria-label': 'Functions by change' });
    this.flameHost = h('section', { id: 'diff-flame', class: 'pane pane-flame', 'aria-label': 'Diff flame graph' });
    host.append(controls, this.legend, h('div', { class: 'split' }, this.tableHost, this.flameHost));
    this.table = new FunctionTable(this.tableHost, {
      idPrefix: 'diff',
      onSort: (sort, dir) => app.set({ sort, dir }, { replace: true }),
      onFilter: (filter) => app.set({ filter }, { replace: true }),
      onSelect: (name) => this.focusFunction(name),
    });
    this.flame = new FlamePanel(this.flameHost, {
      idPrefix: 'diffflame',
      label: 'Diff flame graph',
      onFocus: (key, id) => {
        const m = this.model;
        app.set({ focus: key, fn: id === 0 ? '' : m.names[m.name[id]] });
      },
      onSearch: (search) => app.set({ search }, { replace: true }),
      onOrientation: (orient) => app.set({ orient }),
    });
  }

  /** Which side a drag on the chart sets: `l` or `r`. */
  dragSide() {
    return this.left.radio.checked ? 'l' : 'r';
  }

  focusFunction(name) {
    const m = this.model;
    if (!m) return;
    const idx = m.names.indexOf(name);
    const id = idx >= 0 ? widestFrame(m, idx) : -1;
    this.app.set({ fn: name, focus: id > 0 ? focusKey(m, id) : '' });
  }

  /** Change class of a function's widest frame (for the test hook). */
  classOf(name) {
    const m = this.model;
    if (!m) return null;
    const idx = m.names.indexOf(name);
    const id = idx >= 0 ? widestFrame(m, idx) : -1;
    return id > 0 ? this.flame.graph.changeClass(id) : null;
  }

  render(s, d) {
    const sides = this.app.diffSides(s);
    for (const [k, side] of [['l', this.left], ['r', this.right]]) {
      const cfg = sides[k];
      if (document.activeElement !== side.sel.input) side.sel.value = s[`${k}sel`];
      side.sel.input.placeholder = `same as above: ${cfg.selector}`;
      side.range.set(cfg.from, cfg.until);
    }
    this.model = d.model;
    if (d.model && !d.empty) {
      this.left.total.textContent = `Total: ${formatValue(d.model.leftTicks, d.unit)}`;
      this.right.total.textContent = `Total: ${formatValue(d.model.rightTicks, d.unit)}`;
    } else {
      replace(this.left.total);
      replace(this.right.total);
    }
    this.flame.set({ model: d.model, unit: d.unit, focus: s.focus, search: s.search, selected: s.fn, orientation: s.orient, empty: d.empty });
    if (d.model && !d.empty) {
      this.table.set({ rows: d.rows, diff: true, total: d.model.total, leftTicks: d.model.leftTicks, rightTicks: d.model.rightTicks, unit: d.unit, sort: s.sort === 'self' ? 'change' : s.sort, dir: s.dir, filter: s.filter, selected: s.fn });
    } else {
      this.table.set({ rows: [], diff: true, total: 0, unit: d.unit, sort: 'change', dir: s.dir, filter: s.filter, selected: '' });
    }
  }
}
