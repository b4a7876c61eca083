// The table of functions: self and total (absolute and %), sortable and
// filterable; in a diff, both sides' shares and the change. A row click
// selects the function (highlighted in the flame graph), Enter or double click
// focuses its widest frame. Rows use a roving tabindex: arrows move.

import { h } from '../lib/dom.js';
import { formatPercent, formatSigned, formatValue } from '../lib/units.js';
import { diffClass, relativeChange } from '../lib/colors.js';

const PAGE = 300;

/** An inline share bar behind a percentage cell. */
function bar(part, whole) {
  const pct = whole ? Math.max(0, Math.min(100, (part / whole) * 100)) : 0;
  return `--pct:${pct.toFixed(2)}%`;
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class FunctionTable {
  /**
   * @param {HTMLElement} host
   * @param {object} o
   * @param {(key: string, dir: string) => void} o.onSort
   * @param {(text: string) => void} o.onFilter
   * @param {(name: string) => void} o.onSelect
   * @param {(name: string) => void} [o.onActivate]
   * @param {string} [o.idPrefix]
   */
  constructor(host, o) {
    this.host = host;
    this.o = o;
    this.limit = PAGE;
    const idp = o.idPrefix || 'fn';
    this.filter = h('input', {
      id: `${idp}-filter`,
      class: 'table-filter',
      type: 'search',
      placeholder: 'Filter functions',
      'aria-label': 'Filter functions',
      spellcheck: 'false',
    });
    this.count = h('span', { class: 'table-count', 'aria-live': 'polite' });
    this.table = h('table', { class: 'fn-table' });
    this.more = h('button', { type: 'button', class: 'btn btn-small table-more', hidden: true, text: 'Show all' });
    this.scroller = h('div', { class: 'table-scroll' }, this.table, this.more);
    host.classList.add('table-host');
    host.append(h('div', { class: 'panel-toolbar' }, this.filter, this.count), this.scroller);
    let t = 0;
    this.filter.addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(() => o.onFilter(this.filter.value), 120);
    });
    this.more.addEventListener('click', () => {
      this.limit = Infinity;
      this.render();
    });
    this.table.addEventListener('keydown', (e) => this.onKey(e));
  }

  /**
   * @param {object} p
   * @param {import('../flame/functions.js').FunctionRow[]} p.rows
   * @param {boolean} p.diff
   * @param {number} p.total  @param {number} [p.leftTicks] @param {number} [p.rightTicks]
   * @param {object} p.unit  @param {string} p.sort  @param {string} p.dir
   * @param {string} p.filter  @param {string} p.selected
   */
  set(p) {
    const changedRows = p.rows !== this.p?.rows;
    this.p = p;
    if (changedRows) this.limit = PAGE;
    if (document.activeElement !== this.filter) this.filter.value = p.filter || '';
    this.render();
  }

  columns() {
    const p = this.p;
    if (p.diff) {
      return [
        { key: 'name', label: 'Function', cls: 'col-name' },
        { key: 'lshare', label: 'Baseline', cls: 'num', title: 'Total in the baseline, % of its total' },
        { key: 'rshare', label: 'Comparison', cls: 'num', title: 'Total in the comparison, % of its total' },
        { key: 'change', label: 'Δ share', cls: 'num', title: 'Change of the total share, in percentage points' },
        { key: 'relative', label: 'Relative', cls: 'num', title: 'Relative change of the total share' },
      ];
    }
    return [
      { key: 'name', label: 'Function', cls: 'col-name' },
      { key: 'self', label: 'Self', cls: 'num' },
      { key: 'selfpct', label: 'Self %', cls: 'num', sortAs: 'self' },
      { key: 'total', label: 'Total', cls: 'num' },
      { key: 'totalpct', label: 'Total %', cls: 'num', sortAs: 'total' },
    ];
  }

  /** Rows after filter and sort, with the diff figures attached. */
  view() {
    const p = this.p;
    const f = (p.filter || '').trim().toLowerCase();
    let rows = f ? p.rows.filter((r) => r.name.toLowerCase().includes(f)) : p.rows.slice();
    if (p.diff) {
      for (const r of rows) {
        r.lshare = p.leftTicks ? r.ltotal / p.leftTicks : 0;
        r.rshare = p.rightTicks ? r.rtotal / p.rightTicks : 0;
        r.change = (r.rshare - r.lshare) * 100;
        r.relative = relativeChange(r.ltotal, p.leftTicks, r.rtotal, p.rightTicks);
        r.cls = diffClass(r.relative);
      }
    }
    const key = this.sortKey();
    const sign = p.dir === 'asc' ? 1 : -1;
    rows.sort((a, b) => {
      if (key === 'name') return sign * cmp(a.name, b.name);
      if (key === 'change' && p.diff) {
        // Largest changes first, either way; asc puts the biggest drops first.
        if (p.dir === 'asc') return a.change - b.change || cmp(a.name, b.name);
        return Math.abs(b.change) - Math.abs(a.change) || cmp(a.name, b.name);
      }
      return sign * ((a[key] ?? 0) - (b[key] ?? 0)) || cmp(a.name, b.name);
    });
    return rows;
  }

  sortKey() {
    const p = this.p;
    const valid = this.columns().map((c) => c.sortAs || c.key);
    if (valid.includes(p.sort)) return p.sort;
    return p.diff ? 'change' : 'self';
  }

  render() {
    const p = this.p;
    if (!p) return;
    const cols = this.columns();
    const key = this.sortKey();
    const rows = this.view();
    this.rows = rows;
    const thead = h('thead', {}, h('tr', {}, cols.map((c) => {
      const k = c.sortAs || c.key;
      const active = k === key;
      const shown = c.key === key;
      const btn = h('button', { type: 'button', class: 'sort-btn', title: c.title || `Sort by ${c.label}` },
        c.label, h('span', { class: 'sort-ind', 'aria-hidden': 'true', text: shown ? (p.dir === 'asc' ? '▲' : '▼') : '' }));
      btn.addEventListener('click', () => {
        const dir = active ? (p.dir === 'asc' ? 'desc' : 'asc') : k === 'name' ? 'asc' : 'desc';
        this.o.onSort(k, dir);
      });
      return h('th', { class: c.cls, scope: 'col', 'aria-sort': shown ? (p.dir === 'asc' ? 'ascending' : 'descending') : 'none' }, btn);
    })));
    const tbody = h('tbody');
    // Keep the selected row visible even past the first page.
    const selIdx = rows.findIndex((r) => r.name === p.selected);
    const shown = rows.slice(0, Math.max(this.limit, selIdx + 1));
    let focusable = shown.findIndex((r) => r.name === p.selected);
    if (focusable < 0) focusable = 0;
    shown.forEach((r, i) => {
      const tr = h('tr', {
        tabindex: i === focusable ? '0' : '-1',
        class: r.name === p.selected ? 'selected' : '',
        'aria-selected': String(r.name === p.selected),
        dataset: p.diff
          ? { name: r.name, change: r.cls, lshare: String(r.lshare), rshare: String(r.rshare) }
          : { name: r.name, self: String(r.self), total: String(r.total) },
      });
      if (p.diff) {
        tr.append(
          h('td', { class: 'col-name', title: r.name }, h('span', { class: `chg-dot chg-${r.cls}`, 'aria-hidden': 'true' }), r.name),
          h('td', { class: 'num', text: `${(r.lshare * 100).toFixed(2)}%`, title: formatValue(r.ltotal, p.unit) }),
          h('td', { class: 'num', text: `${(r.rshare * 100).toFixed(2)}%`, title: formatValue(r.rtotal, p.unit) }),
          h('td', { class: `num chg-${r.cls}`, text: `${r.change > 0 ? '+' : ''}${r.change.toFixed(2)} pp` }),
          h('td', { class: `num chg-${r.cls}`, text: formatSigned(r.relative * 100, 1) }),
        );
      } else {
        tr.append(
          h('td', { class: 'col-name', title: r.name, text: r.name }),
          h('td', { class: 'num', text: formatValue(r.self, p.unit) }),
          h('td', { class: 'num bar bar-self', style: bar(r.self, p.total), text: formatPercent(r.self, p.total) }),
          h('td', { class: 'num', text: formatValue(r.total, p.unit) }),
          h('td', { class: 'num bar bar-total', style: bar(r.total, p.total), text: formatPercent(r.total, p.total) }),
        );
      }
      tr.addEventListener('click', () => this.o.onSelect(r.name));
      tr.addEventListener('dblclick', () => this.o.onActivate && this.o.onActivate(r.name));
      tbody.append(tr);
    });
    if (!rows.length) {
      tbody.append(h('tr', { class: 'empty-row' }, h('td', { colspan: String(cols.length), text: p.rows.length ? 'No function matches the filter.' : 'No functions to show.' })));
    }
    this.table.textContent = '';
    this.table.append(thead, tbody);
    this.more.hidden = rows.length <= shown.length;
    this.more.textContent = `Show all ${rows.length} functions`;
    this.count.textContent = `${rows.length} function${rows.length === 1 ? '' : 's'}`;
  }

  onKey(e) {
    const tr = e.target.closest('tr');
    if (!tr || !tr.dataset.name || !tr.parentElement || tr.parentElement.tagName !== 'TBODY') return;
    let next = null;
    if (e.key === 'ArrowDown') next = tr.nextElementSibling;
    else if (e.key === 'ArrowUp') next = tr.previousElementSibling;
    else if (e.key === 'Home') next = tr.parentElement.firstElementChild;
    else if (e.key === 'End') next = tr.parentElement.lastElementChild;
    else if (e.key === 'Enter') {
      e.preventDefault();
      if (this.o.onActivate) this.o.onActivate(tr.dataset.name);
      return;
    } else if (e.key === ' ') {
      e.preventDefault();
      this.o.onSelect(tr.dataset.name);
      return;
    }
    if (next) {
      e.preventDefault();
      tr.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    }
  }

  /** Scrolls the selected row into view. */
  revealSelected() {
    const tr = this.table.querySelector('tr.selected');
    if (tr) tr.scrollIntoView({ block: 'nearest' });
  }
}
