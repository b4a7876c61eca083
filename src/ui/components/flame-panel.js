// A flame graph with its toolbar: search (matches and their share of the
// total), orientation, reset zoom, and the breadcrumb of the zoomed frame.

import { h, replace } from '../lib/dom.js';
import { FlameGraph } from '../flame/renderer.js';
import { focusKey, nodeFromFocusKey, pathTo } from '../flame/model.js';
import { searchModel } from '../flame/functions.js';
import { formatPercent, formatValue } from '../lib/units.js';

export class FlamePanel {
  /**
   * @param {HTMLElement} host
   * @param {object} o
   * @param {string} o.idPrefix
   * @param {string} o.label        accessible name of the graph
   * @param {boolean} [o.search]    show the search field (default true)
   * @param {boolean} [o.orientationToggle] show icicle/flame buttons (default true)
   * @param {boolean} [o.compact]   hide the breadcrumb while not zoomed
   * @param {(key: string, id: number) => void} [o.onFocus]
   * @param {(text: string) => void} [o.onSearch]
   * @param {(o: string) => void} [o.onOrientation]
   * @param {(name: string) => void} [o.onPick]
   */
  constructor(host, o) {
    this.o = o;
    this.host = host;
    this.p = {};
    host.classList.add('flame-panel');
    const idp = o.idPrefix;
    this.searchInput = h('input', {
      id: `${idp}-search`,
      class: 'flame-search',
      type: 'search',
      placeholder: 'Search frames',
      'aria-label': 'Search frames',
      spellcheck: 'false',
    });
    this.searchInfo = h('span', { id: `${idp}-search-info`, class: 'search-info', 'aria-live': 'polite' });
    this.orientBtns = ['icicle', 'flame'].map((v) => {
      const b = h('button', { type: 'button', class: 'seg-btn', dataset: { orient: v }, 'aria-pressed': 'false', text: v === 'icicle' ? 'Top-down' : 'Bottom-up', title: v === 'icicle' ? 'Icicle: root at the top' : 'Flame: root at the bottom' });
      b.addEventListener('click', () => o.onOrientation && o.onOrientation(v));
      return b;
    });
    this.resetBtn = h('button', { id: `${idp}-reset`, type: 'button', class: 'btn btn-small', text: 'Reset zoom', disabled: true });
    this.resetBtn.addEventListener('click', () => this.graph.zoomTo(0));
    const toolbar = h('div', { class: 'panel-toolbar' });
    if (o.search !== false) toolbar.append(this.searchInput, this.searchInfo);
    toolbar.append(h('span', { class: 'spacer' }));
    if (o.orientationToggle !== false) toolbar.append(h('div', { class: 'seg', role: 'group', 'aria-label': 'Orientation' }, ...this.orientBtns));
    toolbar.append(this.resetBtn);
    this.crumbs = h('nav', { id: `${idp}-breadcrumb`, class: 'breadcrumb', 'aria-label': 'Zoom path' });
    this.empty = h('div', { class: 'empty-state', hidden: true });
    this.graphHost = h('div', { id: `${idp}-graph`, class: 'flame-graph' });
    host.append(toolbar, this.crumbs, this.empty, this.graphHost);
    this.graph = new FlameGraph(this.graphHost, {
      label: o.label,
      onFocus: (id) => this.focused(id),
      onPick: (nameIdx) => o.onPick && o.onPick(this.graph.model.names[nameIdx]),
    });
    let t = 0;
    this.searchInput.addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(() => o.onSearch && o.onSearch(this.searchInput.value), 150);
    });
    this.searchInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        clearTimeout(t);
        if (o.onSearch) o.onSearch(this.searchInput.value);
      }
    });
  }

  /**
   * @param {object} p
   * @param {import('../flame/model.js').FlameModel|null} p.model
   * @param {object} p.unit
   * @param {string} [p.focus]     focus key from the URL
   * @param {string} [p.search]
   * @param {string} [p.selected]  selected function name
   * @param {string} [p.orientation]
   * @param {{title: string, hint: string, action?: {label: string, run: () => void}}} [p.empty] shown instead when set
   */
  set(p) {
    const prev = this.p;
    this.p = p;
    if (p.empty || !p.model) {
      this.graphHost.hidden = true;
      this.crumbs.hidden = true;
      this.empty.hidden = !p.empty;
      if (p.empty) {
        const action = p.empty.action
          ? h('button', { type: 'button', class: 'btn empty-action', text: p.empty.action.label, onclick: p.empty.action.run })
          : null;
        replace(this.empty, h('div', { class: 'empty-title', text: p.empty.title }), h('div', { class: 'empty-hint', text: p.empty.hint }), action);
      }
      this.searchInfo.textContent = '';
      return;
    }
    this.empty.hidden = true;
    this.graphHost.hidden = false;
    this.crumbs.hidden = false;
    const g = this.graph;
    let dirty = false;
    const t0 = performance.now();
    if (p.model !== prev.model || p.unit !== prev.unit) {
      g.setModel(p.model, { unit: p.unit, focus: nodeFromFocusKey(p.model, p.focus || '') });
      this.search = null;
      dirty = true;
    } else if (p.focus !== undefined && p.focus !== focusKey(p.model, g.focus)) {
      dirty = g.setFocus(nodeFromFocusKey(p.model, p.focus)) || dirty;
    }
    if ((p.orientation || 'icicle') !== g.orientation) {
      g.setOrientation(p.orientation);
      dirty = true;
    }
    const q = (p.search || '').trim();
    if (!this.search || this.search.query !== q.toLowerCase() || p.model !== prev.model) {
      this.search = searchModel(p.model, q);
      g.setHighlight(q ? this.search.matched : null);
      dirty = true;
    }
    const sel = p.selected ? p.model.names.indexOf(p.selected) : -1;
    if (sel !== g.selectedName) {
      g.setSelectedName(sel);
      dirty = true;
    }
    if (document.activeElement !== this.searchInput) this.searchInput.value = p.search || '';
    for (const b of this.orientBtns) b.setAttribute('aria-pressed', String(b.dataset.orient === g.orientation));
    if (dirty) g.render();
    this.lastSetMs = performance.now() - t0;
    this.updateSearchInfo();
    this.updateCrumbs();
  }

  updateSearchInfo() {
    const s = this.search;
    const m = this.p.model;
    const el = this.searchInfo;
    if (!s || !s.query) {
      el.textContent = '';
      delete el.dataset.matches;
      delete el.dataset.value;
      return;
    }
    el.dataset.matches = String(s.nodes);
    el.dataset.value = String(s.value);
    el.dataset.share = String(m.total ? s.value / m.total : 0);
    el.textContent = s.nodes
      ? `${s.nodes} frame${s.nodes === 1 ? '' : 's'} in ${s.functions} function${s.functions === 1 ? '' : 's'} · ${formatPercent(s.value, m.total)} of total (${formatValue(s.value, this.p.unit)})`
      : 'No matches';
  }

  updateCrumbs() {
    const g = this.graph;
    const m = g.model;
    const path = pathTo(m, g.focus);
    this.resetBtn.disabled = g.focus === 0;
    const items = path.map((id, i) => {
      const name = m.names[m.name[id]];
      const last = i === path.length - 1;
      const b = h('button', { type: 'button', class: 'crumb', title: name, 'aria-current': last ? 'true' : false, text: i === 0 && name === 'total' ? 'all' : name });
      if (!last) b.addEventListener('click', () => g.zoomTo(id));
      return b;
    });
    const parts = [];
    items.forEach((b, i) => {
      if (i) parts.push(h('span', { class: 'crumb-sep', 'aria-hidden': 'true', text: '›' }));
      parts.push(b);
    });
    replace(this.crumbs, ...parts);
    this.crumbs.dataset.focus = m.names[m.name[g.focus]];
    this.crumbs.hidden = !!this.o.compact && g.focus === 0;
  }

  focused(id) {
    this.updateCrumbs();
    const key = focusKey(this.graph.model, id);
    if (this.o.onFocus) this.o.onFocus(key, id);
  }
}
