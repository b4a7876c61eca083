// Ignis web UI: the controller. Reads the view state from the URL, loads
// what it needs from the public query API (caching by request), and renders
// the query bar, the chart and the current view. Every change of state goes
// through `set`, which records it in the URL (history entry or replace).

import { byId, h, replace } from './lib/dom.js';
import { ApiError, connect, num, setTenant, signIn, signOut, signedIn } from './lib/api.js';
import { DATA_KEYS, buildSelector, maxNodesOf, normalizeMatchers, parseState, printState } from './lib/url-state.js';
import { describe, formatDateTime, formatDuration, isRelative, resolveRange, stepFor } from './lib/time-range.js';
import { profileTypeLabel, unitOf } from './lib/units.js';
import { SERIES_COLORS } from './lib/colors.js';
import { decodeFlamegraph } from './flame/model.js';
import { aggregateFunctions } from './flame/functions.js';
import { TimeseriesChart } from './components/timeseries-chart.js';
import { SelectorInput } from './components/selector-input.js';
import { TimeRangePicker } from './components/time-range-picker.js';
import { ExportMenu } from './components/export-menu.js';
import { ExploreView } from './views/explore-view.js';
import { SandwichView } from './views/sandwich-view.js';
import { DiffView } from './views/diff-view.js';
import { installTestHook } from './test-hook.js';

const PREFERRED_TYPES = [
  'process_cpu:cpu:nanoseconds:cpu:nanoseconds',
  'wall:wall:nanoseconds:wall:nanoseconds',
  'memory:inuse_space:bytes:space:bytes',
];

const VIEW_TABS = [
  ['flamegraph', 'Flame graph'],
  ['table', 'Table'],
  ['both', 'Table + flame graph'],
  ['sandwich', 'Sandwich'],
  ['diff', 'Diff'],
];

function emptyData() {
  return { key: '', loading: false, error: null, resp: null, model: null, rows: null };
}

export class App {
  constructor() {
    this.state = parseState(location.search);
    this.seq = 0;
    this.nonce = 0;
    this.pending = 0;
    this.needsTenant = false;
    this.errors = new Map();
    this.timings = {};
    this.cache = {
      catalogKey: '',
      catalog: null,
      range: null,
      now: 0,
      flame: emptyData(),
      diff: emptyData(),
      series: { key: '', loading: false, error: null, resp: null },
      labels: new Map(),
    };
    this.buildUi();
    window.addEventListener('popstate', () => {
      this.state = parseState(location.search);
      this.load();
    });
    installTestHook(this);
    this.load();
  }

  /** Changes the state and records it in the URL (a new history entry unless `replace`). */
  set(patch, { replace: rep = false } = {}) {
    const next = { ...this.state, ...patch };
    const url = printState(next);
    if (url === printState(this.state)) return;
    history[rep ? 'replaceState' : 'pushState'](null, '', location.pathname + url);
    this.state = next;
    this.load();
  }

  // ---- UI skeleton -------------------------------------------------------

  buildUi() {
    this.tabs = VIEW_TABS.map(([view, label]) => {
      const b = h('button', { type: 'button', class: 'tab', id: `tab-${view}`, dataset: { view }, text: label });
      b.addEventListener('click', () => this.set({ view }));
      return b;
    });
    replace(byId('tabs'), ...this.tabs);

    byId('login').addEventListener('submit', (e) => {
      e.preventDefault();
      signIn(byId('login-user').value, byId('login-secret').value);
      byId('login-secret').value = '';
      this.needsLogin = false;
      this.loginError = '';
      this.refresh();
    });
    byId('sign-out').addEventListener('click', () => {
      signOut();
      this.refresh();
    });

    this.tenantInput = byId('tenant');
    const commitTenant = () => this.set({ tenant: this.tenantInput.value.trim() });
    this.tenantInput.addEventListener('change', commitTenant);
    this.tenantInput.addEventListener('keydown', (e) => e.key === 'Enter' && commitTenant());

    this.serviceSelect = byId('service');
    this.serviceSelect.addEventListener('change', () => this.set({ service: this.serviceSelect.value, type: '', focus: '', fn: '', search: '' }));
    this.typeSelect = byId('profile-type');
    this.typeSelect.addEventListener('change', () => this.set({ type: this.typeSelect.value, focus: '', fn: '' }));

    this.selector = new SelectorInput({
      label: 'Label selector',
      placeholder: 'label="value", …  (e.g. version="1")',
      names: () => this.labelNames(),
      values: (n) => this.labelValues(n),
      onSubmit: (text) => this.set({ sel: normalizeMatchers(text), focus: '' }),
    });
    this.selector.input.id = 'selector';
    byId('selector-host').append(this.selector.el);
    byId('selector-braces').textContent = '';

    this.range = new TimeRangePicker({
      idPrefix: 'range',
      label: 'Time range',
      onChange: (from, until) => this.set({ from, until }),
    });
    byId('range-host').append(this.range.el);

    byId('apply').addEventListener('click', () => {
      this.range.commit();
      this.set({ sel: normalizeMatchers(this.selector.value) });
    });
    byId('refresh').addEventListener('click', () => this.refresh());

    this.groupBy = byId('group-by');
    this.groupBy.addEventListener('change', () => this.set({ groupBy: this.groupBy.value }));

    this.chart = new TimeseriesChart(byId('chart'), {
      label: 'Total of the selection over time; drag to zoom',
      onSelectRange: (start, end) => {
        if (this.state.view === 'diff') {
          const k = this.diffView.dragSide();
          this.set({ [`${k}from`]: String(start), [`${k}until`]: String(end) });
        } else {
          this.set({ from: String(start), until: String(end) });
        }
      },
    });

    this.exportMenu = new ExportMenu(byId('actions'), {
      current: () => this.exportContext(),
      onError: (e) => this.reportError('export', e),
      onNotice: (m) => this.notice(m),
    });

    this.exploreView = new ExploreView(byId('view-explore'), this);
    this.sandwichView = new SandwichView(byId('view-sandwich'), this);
    this.diffView = new DiffView(byId('view-diff'), this);
  }

  // ---- loading -----------------------------------------------------------

  /** Counts a request in flight (for the progress bar and the test hook). */
  async track(promise) {
    this.pending++;
    this.updateBusy();
    try {
      return await promise;
    } finally {
      this.pending--;
      this.updateBusy();
    }
  }

  updateBusy() {
    byId('progress').hidden = this.pending === 0;
    document.body.dataset.pending = String(this.pending);
    byId('main').setAttribute('aria-busy', String(this.pending > 0));
  }

  refresh() {
    this.nonce++;
    this.cache.catalogKey = '';
    this.cache.labels.clear();
    this.load();
  }

  /** Brings data in line with the state (fetching only what changed), then renders. */
  async load() {
    const s = this.state;
    const seq = ++this.seq;
    setTenant(s.tenant);
    this.syncControls();
    let range;
    const catKey = JSON.stringify([s.tenant, s.from, s.until, this.nonce]);
    // A relative range ("now-1h") is resolved once and kept while only the
    // view changes; a new query after a while resolves it again.
    const dataKey = JSON.stringify(DATA_KEYS.map((k) => s[k]));
    if (dataKey !== this.lastDataKey && this.cache.catalogKey === catKey
      && (isRelative(s.from) || isRelative(s.until)) && Date.now() - this.cache.now > 60_000) {
      this.cache.catalogKey = '';
      this.cache.labels.clear();
    }
    this.lastDataKey = dataKey;
    if (this.cache.catalogKey !== catKey) {
      const now = Date.now();
      try {
        range = resolveRange(s.from, s.until, now);
      } catch (e) {
        this.reportError('time range', e);
        return;
      }
      this.clearError('time range');
      this.cache.catalogKey = catKey;
      this.cache.catalog = null;
      this.cache.range = range;
      this.cache.now = now;
      this.renderView();
      try {
        this.cache.catalog = await this.track(this.fetchCatalog(range));
        this.clearError('catalog');
        this.needsTenant = false;
        this.needsLogin = false;
      } catch (e) {
        this.cache.catalogKey = '';
        if (e instanceof ApiError && e.needsTenant) this.needsTenant = true;
        if (e instanceof ApiError && e.needsLogin) {
          // A stored credential that no longer works is dropped.
          this.loginError = signedIn() ? e.message : '';
          signOut();
          this.needsLogin = true;
        }
        this.reportError('catalog', e);
        this.syncControls();
        this.renderView();
        return;
      }
      // The state moved on while the services loaded: carry on with the new one.
      if (seq !== this.seq) {
        this.load();
        return;
      }
    }
    range = this.cache.range;
    const cat = this.cache.catalog;
    if (!cat) return;
    if (!cat.services.size && this.cache.statsKey !== catKey) {
      // Where the data is, for the empty state's hint.
      this.cache.statsKey = catKey;
      this.cache.stats = null;
      this.track(connect('GetProfileStats', {}))
        .then((st) => {
          this.cache.stats = st;
          if (this.cache.statsKey === catKey) this.renderView();
        })
        .catch(() => {});
    }
    const patch = this.defaultsFor(s, cat);
    if (patch) {
      this.set(patch, { replace: true });
      return;
    }
    this.syncControls();
    this.loadGroupByOptions(seq);
    if (!s.service || !s.type) {
      this.renderView();
      return;
    }
    const tasks = [this.loadSeries(s, range)];
    tasks.push(s.view === 'diff' ? this.loadDiff(s) : this.loadFlame(s, range));
    this.renderView();
    await Promise.all(tasks);
  }

  async fetchCatalog({ start, end }) {
    const [types, series] = await Promise.all([
      connect('ProfileTypes', { start, end }),
      connect('Series', { matchers: [], labelNames: ['service_name', '__profile_type__'], start, end }),
    ]);
    const services = new Map();
    for (const ls of series.labelsSet || []) {
      const m = Object.fromEntries((ls.labels || []).map((l) => [l.name, l.value]));
      if (!m.service_name || !m.__profile_type__) continue;
      if (!services.has(m.service_name)) services.set(m.service_name, new Set());
      services.get(m.service_name).add(m.__profile_type__);
    }
    return { services, types: (types.profileTypes || []).map((t) => t.ID) };
  }

  /** Service and profile type to pick when the URL names none (or one not in range). */
  defaultsFor(s, cat) {
    const services = [...cat.services.keys()].sort();
    let service = s.service;
    if (!service && services.length) service = services[0];
    const types = cat.services.get(service);
    let type = s.type;
    if (types && types.size && (!type || !types.has(type))) {
      type = PREFERRED_TYPES.find((t) => types.has(t)) || [...types].sort()[0];
    }
    if (service !== s.service || type !== s.type) return { service, type };
    return null;
  }

  async loadFlame(s, range) {
    const c = this.cache.flame;
    const selector = buildSelector(s.service, s.sel);
    const req = {
      profileTypeID: s.type,
      labelSelector: selector,
      start: range.start,
      end: range.end,
      maxNodes: maxNodesOf(s),
    };
    const key = JSON.stringify([s.tenant, req, this.nonce]);
    if (c.key === key) return;
    Object.assign(c, emptyData(), { key, loading: true });
    this.renderView();
    const t0 = performance.now();
    try {
      const resp = await this.track(connect('SelectMergeStacktraces', req));
      if (c.key !== key) return;
      const t1 = performance.now();
      const model = decodeFlamegraph(resp.flamegraph, false);
      const t2 = performance.now();
      const rows = aggregateFunctions(model);
      const t3 = performance.now();
      Object.assign(c, { loading: false, resp, model, rows });
      this.clearError('flame graph');
      this.renderView();
      const t4 = performance.now();
      this.recordFirstRender('flame', { t0, t1, t2, t3, t4, nodes: model.n });
    } catch (e) {
      if (c.key !== key) return;
      Object.assign(c, { loading: false, error: e });
      this.reportError('flame graph', e);
      this.renderView();
    }
  }

  /** Timings of a first render: fetch, decode, aggregate, draw, and to the next frame. */
  recordFirstRender(what, { t0, t1, t2, t3, t4, nodes }) {
    const g = this.currentFlamePanel()?.graph;
    const rec = {
      nodes,
      fetchMs: t1 - t0,
      decodeMs: t2 - t1,
      aggregateMs: t3 - t2,
      renderMs: t4 - t3,
      drawMs: g ? g.stats.renderMs : null,
      framesDrawn: g ? g.stats.drawn : null,
      firstRenderMs: t4 - t1, // from the JSON in hand to the graph drawn (decode + layout + draw + table)
    };
    this.timings[what] = rec;
    requestAnimationFrame(() => setTimeout(() => {
      rec.toFrameMs = performance.now() - t1;
    }, 0));
  }

  diffSides(s) {
    const side = (k) => {
      const sel = s[`${k}sel`] !== '' ? s[`${k}sel`] : s.sel;
      return {
        sel,
        selector: buildSelector(s.service, sel),
        from: s[`${k}from`] || s.from,
        until: s[`${k}until`] || s.until,
      };
    };
    return { l: side('l'), r: side('r') };
  }

  async loadDiff(s) {
    const c = this.cache.diff;
    const sides = this.diffSides(s);
    let lr;
    let rr;
    try {
      lr = resolveRange(sides.l.from, sides.l.until, this.cache.now);
      rr = resolveRange(sides.r.from, sides.r.until, this.cache.now);
      this.clearError('diff time range');
    } catch (e) {
      this.reportError('diff time range', e);
      return;
    }
    const mk = (side, r) => ({
      profileTypeID: s.type,
      labelSelector: side.selector,
      start: r.start,
      end: r.end,
      maxNodes: maxNodesOf(s),
    });
    const req = { left: mk(sides.l, lr), right: mk(sides.r, rr) };
    const key = JSON.stringify([s.tenant, req, this.nonce]);
    if (c.key === key) return;
    Object.assign(c, emptyData(), { key, loading: true, ranges: { l: lr, r: rr }, req });
    this.renderView();
    const t0 = performance.now();
    try {
      const resp = await this.track(connect('Diff', req));
      if (c.key !== key) return;
      const t1 = performance.now();
      const model = decodeFlamegraph(resp.flamegraph, true);
      const t2 = performance.now();
      const rows = aggregateFunctions(model);
      const t3 = performance.now();
      Object.assign(c, { loading: false, resp, model, rows });
      this.clearError('diff');
      this.renderView();
      this.recordFirstRender('diff', { t0, t1, t2, t3, t4: performance.now(), nodes: model.n });
    } catch (e) {
      if (c.key !== key) return;
      Object.assign(c, { loading: false, error: e });
      this.reportError('diff', e);
      this.renderView();
    }
  }

  async loadSeries(s, range) {
    const c = this.cache.series;
    const step = stepFor(range.start, range.end);
    const req = {
      profileTypeID: s.type,
      labelSelector: buildSelector(s.service, s.sel),
      start: range.start,
      end: range.end,
      step,
      groupBy: s.groupBy ? [s.groupBy] : [],
    };
    const key = JSON.stringify([s.tenant, req, this.nonce]);
    if (c.key === key) return;
    Object.assign(c, { key, loading: true, error: null, resp: null, req });
    this.renderChart();
    try {
      const resp = await this.track(connect('SelectSeries', req));
      if (c.key !== key) return;
      Object.assign(c, { loading: false, resp });
      this.clearError('time series');
    } catch (e) {
      if (c.key !== key) return;
      Object.assign(c, { loading: false, error: e });
      this.reportError('time series', e);
    }
    this.renderChart();
  }

  /** Label names of the selected service (internal `__…` ones left out), cached. */
  async labelNames() {
    const s = this.state;
    const r = this.cache.range;
    if (!r || !s.service) return [];
    const key = JSON.stringify(['names', s.tenant, s.service, r]);
    if (!this.cache.labels.has(key)) {
      const p = connect('LabelNames', { matchers: [buildSelector(s.service, '')], start: r.start, end: r.end })
        .then((x) => (x.names || []).filter((n) => !n.startsWith('__') && n !== 'service_name'));
      this.cache.labels.set(key, p);
      p.catch(() => this.cache.labels.delete(key));
    }
    return this.cache.labels.get(key);
  }

  /** Values of one label for the selected service, cached. */
  async labelValues(name) {
    const s = this.state;
    const r = this.cache.range;
    if (!r || !s.service) return [];
    const key = JSON.stringify(['values', s.tenant, s.service, name, r]);
    if (!this.cache.labels.has(key)) {
      const p = connect('LabelValues', { name, matchers: [buildSelector(s.service, '')], start: r.start, end: r.end })
        .then((x) => x.names || []);
      this.cache.labels.set(key, p);
      p.catch(() => this.cache.labels.delete(key));
    }
    return this.cache.labels.get(key);
  }

  async loadGroupByOptions(seq) {
    let names = [];
    try {
      names = await this.labelNames();
    } catch (e) {
      this.reportError('label names', e);
    }
    if (seq !== this.seq) return;
    const cur = this.state.groupBy;
    const opts = [h('option', { value: '', text: 'none' }), ...names.map((n) => h('option', { value: n, text: n }))];
    if (cur && !names.includes(cur)) opts.push(h('option', { value: cur, text: cur }));
    replace(this.groupBy, ...opts);
    this.groupBy.value = cur;
  }

  // ---- rendering ---------------------------------------------------------

  syncControls() {
    const s = this.state;
    for (const b of this.tabs) {
      const on = b.dataset.view === s.view;
      b.classList.toggle('active', on);
      b.setAttribute('aria-current', on ? 'page' : 'false');
    }
    document.body.dataset.view = s.view;
    document.body.classList.toggle('needs-login', !!this.needsLogin);
    byId('login').hidden = !this.needsLogin;
    byId('login-error').hidden = !this.loginError;
    byId('login-error').textContent = this.loginError || '';
    byId('sign-out').hidden = this.needsLogin || !signedIn();
    const showTenant = this.needsTenant || !!s.tenant;
    byId('tenant-field').hidden = !showTenant;
    byId('tenant-hint').hidden = !this.needsTenant || !!s.tenant;
    if (document.activeElement !== this.tenantInput) this.tenantInput.value = s.tenant;
    const cat = this.cache.catalog;
    const optionsKey = [cat, s.service, s.type, this.errors.has('catalog')];
    if (!this.optionsMemo || optionsKey.some((x, i) => x !== this.optionsMemo[i])) {
      this.optionsMemo = optionsKey;
      this.renderOptions(s, cat);
    }
    if (document.activeElement !== this.selector.input) this.selector.value = s.sel;
    this.range.set(s.from, s.until);
    byId('range-info').textContent = this.cache.range
      ? `${describe(s.from, s.until)} · ${formatDuration(this.cache.range.end - this.cache.range.start)}`
      : '';
    byId('view-explore').hidden = !['flamegraph', 'table', 'both'].includes(s.view);
    byId('view-sandwich').hidden = s.view !== 'sandwich';
    byId('view-diff').hidden = s.view !== 'diff';
  }

  /** The service and profile type menus. */
  renderOptions(s, cat) {
    const services = cat ? [...cat.services.keys()].sort() : [];
    if (s.service && !services.includes(s.service)) services.unshift(s.service);
    replace(this.serviceSelect, ...(services.length ? services : ['']).map((v) => h('option', {
      value: v,
      text: v ? (cat && !cat.services.has(v) ? `${v} (no data in range)` : v) : cat ? 'no services in range' : this.errors.has('catalog') ? '–' : 'loading…',
    })));
    this.serviceSelect.value = s.service;
    const types = cat && cat.services.get(s.service) ? [...cat.services.get(s.service)].sort() : [];
    if (s.type && !types.includes(s.type)) types.unshift(s.type);
    replace(this.typeSelect, ...(types.length ? types : ['']).map((v) => h('option', { value: v, text: v ? profileTypeLabel(v) : '–', title: v })));
    this.typeSelect.value = s.type;
  }

  unit() {
    return unitOf(this.state.type);
  }

  /** What a panel shows instead of a graph: loading, error, or no data. */
  emptyFor(c, what) {
    const s = this.state;
    if (this.errors.has('catalog')) {
      const e = this.errors.get('catalog');
      return { title: e.needsTenant ? 'This server needs a tenant' : 'Could not load services', hint: e.needsTenant ? 'Enter your tenant (X-Scope-OrgID) in the Tenant field above.' : String(e) };
    }
    const cat = this.cache.catalog;
    if (!cat) return { title: 'Loading…', hint: '' };
    if (!cat.services.size) {
      const empty = { title: 'No profiles in this time range', hint: 'Widen the time range (e.g. Last 24 hours or Last 7 days), or send profiles to /ingest or the Push API.' };
      const st = this.cache.stats;
      if (st && st.dataIngested) {
        const newest = num(st.newestProfileTime);
        const oldest = num(st.oldestProfileTime);
        empty.hint = `This tenant has profiles from ${formatDateTime(oldest)} to ${formatDateTime(newest)}. Widen the time range, or jump to the newest ones.`;
        empty.action = {
          label: 'Show the hour around the newest profile',
          run: () => this.set({ from: String(newest - 50 * 60_000), until: String(newest + 10 * 60_000) }),
        };
      } else if (st) {
        empty.hint = 'No profile was ingested for this tenant yet. Send profiles to /ingest or the Push API.';
      }
      return empty;
    }
    if (c.error) return { title: 'The query failed', hint: String(c.error) };
    if (c.loading || !c.model) return { title: 'Loading…', hint: '' };
    if (!c.model.total) {
      const sel = what === 'diff' ? 'these selectors' : buildSelector(s.service, s.sel);
      return {
        title: 'No data for this selector in this range',
        hint: `Nothing matched ${sel} between ${describe(s.from, s.until).toLowerCase()}. Widen the time range, or check the label selector (labels and values autocomplete as you type).`,
      };
    }
    return null;
  }

  renderView() {
    const s = this.state;
    const unit = this.unit();
    if (s.view === 'diff') {
      const c = this.cache.diff;
      this.diffView.render(s, { model: c.model, rows: c.rows, unit, empty: this.emptyFor(c, 'diff') });
    } else {
      const c = this.cache.flame;
      const d = { model: c.model, rows: c.rows, unit, empty: this.emptyFor(c, 'flame') };
      if (s.view === 'sandwich') this.sandwichView.render(s, d);
      else {
        this.exploreView.render(s, d);
        this.exploreView.revealSelected();
      }
    }
    this.renderChart();
    this.renderErrors();
    this.renderSummary();
    this.hookRenders = (this.hookRenders || 0) + 1;
  }

  renderSummary() {
    const s = this.state;
    const el = byId('summary');
    const c = s.view === 'diff' ? this.cache.diff : this.cache.flame;
    if (!c.model || !c.model.total) {
      el.textContent = '';
      return;
    }
    const m = c.model;
    el.textContent = s.view === 'diff'
      ? `${m.n} frames · ${m.names.length - 1} functions`
      : `${m.n} frames · ${m.names.length - 1} functions · max self ${((num(c.resp.flamegraph.maxSelf) / (m.total || 1)) * 100).toFixed(1)}%`;
  }

  renderChart() {
    const s = this.state;
    const c = this.cache.series;
    const r = this.cache.range;
    const title = byId('chart-title');
    if (!r || !s.type) {
      title.textContent = 'Time series';
      this.chart.setData(null);
      this.chartMemo = null;
      return;
    }
    // Redraw only when something the chart shows changed.
    const memo = [c.resp, c.loading, c.error, r.start, r.end, s.view === 'diff' ? this.cache.diff.ranges : null];
    if (this.chartMemo && memo.every((x, i) => x === this.chartMemo[i])) return;
    this.chartMemo = memo;
    title.textContent = `${s.service || '–'} · ${profileTypeLabel(s.type)}`;
    byId('chart-status').textContent = c.loading ? 'Loading…' : c.error ? 'Query failed (see above)' : '';
    const series = (c.resp?.series || []).map((x, i) => ({
      label: (x.labels || []).map((l) => `${l.name}=${l.value}`).join(', ') || 'total',
      color: SERIES_COLORS[i % SERIES_COLORS.length],
      points: (x.points || []).map((p) => [num(p.timestamp), Number(p.value) || 0]),
    }));
    const bands = [];
    if (s.view === 'diff' && this.cache.diff.ranges) {
      const { l, r: rr } = this.cache.diff.ranges;
      bands.push({ start: l.start, end: l.end, color: '#3b6fd8', label: 'baseline' });
      bands.push({ start: rr.start, end: rr.end, color: '#e0663c', label: 'comparison' });
    }
    const step = c.req ? c.req.step : stepFor(r.start, r.end);
    const message = c.loading ? 'Loading…' : c.error ? `The query failed: ${c.error.message}` : 'No data in this range';
    this.chart.setData({ series, start: r.start, end: r.end, step, unit: this.unit(), bands, message });
    const legend = byId('chart-legend');
    replace(legend, ...series.slice(0, 12).map((x) => h('span', { class: 'legend-item' }, h('span', { class: 'swatch', style: `background:${x.color}` }), x.label)));
  }

  currentFlamePanel() {
    const v = this.state.view;
    if (v === 'diff') return this.diffView.flame;
    if (v === 'sandwich') return null;
    return this.exploreView.flame;
  }

  // ---- errors and notices ------------------------------------------------

  reportError(source, err) {
    if (err && err.name === 'AbortError') return;
    this.errors.set(source, err);
    this.renderErrors();
  }

  clearError(source) {
    if (this.errors.delete(source)) this.renderErrors();
  }

  renderErrors() {
    const box = byId('errors');
    // One line per distinct error; the sources that hit it are listed together.
    const groups = new Map();
    for (const [source, e] of this.errors) {
      const k = `${e.status || ''}|${e.code || ''}|${e.message || e}`;
      if (!groups.has(k)) groups.set(k, { sources: [], e });
      groups.get(k).sources.push(source);
    }
    const items = [...groups.values()].map(({ sources, e }) => {
      const source = sources.join(', ');
      const close = h('button', { type: 'button', class: 'error-close', 'aria-label': 'Dismiss', text: '×' });
      close.addEventListener('click', () => sources.forEach((x) => this.clearError(x)));
      const msg = e instanceof ApiError
        ? [h('strong', { text: `${source}: ` }), h('span', { class: 'error-status', text: `${e.status || ''} ${e.code || ''}`.trim() }), ` ${e.message}`]
        : [h('strong', { text: `${source}: ` }), String(e && e.message ? e.message : e)];
      return h('div', { class: 'error', dataset: { source } }, h('span', { class: 'error-text' }, ...msg), close);
    });
    replace(box, ...items);
    box.hidden = items.length === 0;
  }

  notice(msg) {
    const el = byId('notice');
    el.textContent = msg;
    el.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      el.hidden = true;
    }, 4000);
  }

  exportContext() {
    const s = this.state;
    if (!s.service || !s.type || !this.cache.range) return null;
    if (s.view === 'diff') {
      const c = this.cache.diff;
      const r = c.ranges?.r || this.cache.range;
      return { service: s.service, profileType: s.type, selector: this.diffSides(s).r.selector, start: r.start, end: r.end, json: c.resp, jsonName: '.diff' };
    }
    const r = this.cache.range;
    return { service: s.service, profileType: s.type, selector: buildSelector(s.service, s.sel), start: r.start, end: r.end, json: this.cache.flame.resp, jsonName: '' };
  }
}

export const app = new App();
