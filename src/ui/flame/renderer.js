// The flame graph on a canvas: icicle (root on top) or flame (root at the
// bottom) orientation, click to zoom, keyboard navigation, tooltip, search
// and function highlighting, package or diff colors. Only what is visible is
// drawn: the zoomed frame's ancestors and the frames inside its range that are
// at least a pixel wide; the layout comes precomputed from the model.

import { firstEndingAfter, nodeAt, pathTo } from './model.js';
import { DIM_COLOR, DIM_TEXT, diffClass, diffColor, frameColor, relativeChange } from '../lib/colors.js';
import { formatPercent, formatSigned, formatValue } from '../lib/units.js';
import { h } from '../lib/dom.js';

const ROW = 20; // px per level
const MIN_PX = 1; // frames narrower than this are skipped
const FONT = '12px ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace';
const TEXT = '#1f2430';
const MAX_CANVAS_PX = 32000;

/** True for an `rgb(r,g,b)` color dark enough to need white text. */
function isDark(rgb) {
  const m = /rgb\((\d+),(\d+),(\d+)\)/.exec(rgb);
  if (!m) return false;
  const [r, g, b] = [m[1], m[2], m[3]].map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b < 150;
}

export class FlameGraph {
  /**
   * @param {HTMLElement} host
   * @param {object} opts
   * @param {string} opts.label  accessible name
   * @param {(id:number)=>void} [opts.onFocus]  after a zoom (click, keys, breadcrumb)
   * @param {(nameIdx:number)=>void} [opts.onPick] a frame was clicked (its function)
   */
  constructor(host, opts = {}) {
    this.host = host;
    this.opts = opts;
    this.model = null;
    this.unit = null;
    this.orientation = 'icicle';
    this.focus = 0;
    this.cursor = -1;
    this.hover = -1;
    this.matched = null; // Uint8Array of highlighted frames, or null
    this.selectedName = -1;
    this.stats = { drawn: 0, renderMs: 0, renders: 0, levels: 0 };
    this.canvas = h('canvas', {
      class: 'flame-canvas',
      tabindex: '0',
      role: 'img',
      'aria-label': opts.label || 'Flame graph',
      'aria-roledescription': 'flame graph',
    });
    this.tooltip = h('div', { class: 'flame-tooltip', role: 'tooltip', hidden: true });
    this.live = h('div', { class: 'sr-only', 'aria-live': 'polite' });
    host.classList.add('flame-host');
    host.append(this.canvas, this.tooltip, this.live);
    this.ctx = this.canvas.getContext('2d', { alpha: false });
    this.ctx.font = FONT;
    this.charW = this.ctx.measureText('MMMMMMMMMM').width / 10 || 7.2;
    this.colors = [];
    this.canvas.addEventListener('mousemove', (e) => this.onMove(e));
    this.canvas.addEventListener('mouseleave', () => this.hideTooltip());
    this.canvas.addEventListener('click', (e) => this.onClick(e));
    this.canvas.addEventListener('keydown', (e) => this.onKey(e));
    this.canvas.addEventListener('blur', () => {
      if (this.hover < 0) this.hideTooltip();
    });
    let lastWidth = 0;
    this.resizeObserver = new ResizeObserver(() => {
      const w = this.host.clientWidth;
      if (w !== lastWidth) {
        lastWidth = w;
        if (this.model) requestAnimationFrame(() => this.render());
      }
    });
    this.resizeObserver.observe(host);
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.host.textContent = '';
  }

  /** Shows a model; `colorMode` is `package` or `diff`. Precomputes colors. */
  setModel(model, { unit, focus = 0, colorMode = model.diff ? 'diff' : 'package' } = {}) {
    this.model = model;
    this.unit = unit;
    this.colorMode = colorMode;
    this.focus = focus >= 0 && focus < model.n ? focus : 0;
    this.cursor = -1;
    this.hover = -1;
    this.matched = null;
    this.selectedName = -1;
    if (colorMode === 'diff') {
      this.colors = new Array(model.n);
      this.changes = new Float64Array(model.n);
      this.textColors = new Array(model.n);
      for (let i = 0; i < model.n; i++) {
        const c = relativeChange(model.lw[i], model.leftTicks, model.rw[i], model.rightTicks);
        this.changes[i] = c;
        this.colors[i] = diffColor(c);
        this.textColors[i] = isDark(this.colors[i]) ? '#ffffff' : TEXT;
      }
    } else {
      this.changes = null;
      this.textColors = null;
      const byName = model.names.map((n) => frameColor(n));
      this.colors = new Array(model.n);
      for (let i = 0; i < model.n; i++) this.colors[i] = byName[model.name[i]];
    }
    this.hideTooltip();
  }

  setOrientation(o) {
    this.orientation = o === 'flame' ? 'flame' : 'icicle';
  }

  /** Zooms to a frame (0: the root). Returns false when it already was. */
  setFocus(id) {
    if (!this.model) return false;
    if (id < 0 || id >= this.model.n) id = 0;
    if (id === this.focus) return false;
    this.focus = id;
    return true;
  }

  /** Highlights frames (`matched[i]` = 1), dimming the rest; null clears. */
  setHighlight(matched) {
    this.matched = matched;
  }

  /** Outlines every frame of one function (-1: none). */
  setSelectedName(nameIdx) {
    this.selectedName = nameIdx;
  }

  /** Change class (`grew`, `shrank`, `same`) of a frame in diff mode. */
  changeClass(id) {
    return this.changes ? diffClass(this.changes[id]) : 'same';
  }

  levelsShown() {
    const m = this.model;
    if (!m || !m.n) return 0;
    return m.level[this.focus] + m.height[this.focus];
  }

  rowY(level, levels) {
    return this.orientation === 'icicle' ? level * ROW : (levels - 1 - level) * ROW;
  }

  /** Draws the graph; returns the time it took in ms. */
  render() {
    const t0 = performance.now();
    const m = this.model;
    const width = Math.max(1, this.host.clientWidth);
    const levels = this.levelsShown();
    const height = Math.max(ROW, levels * ROW);
    const dpr = Math.min(window.devicePixelRatio || 1, MAX_CANVAS_PX / height, MAX_CANVAS_PX / width);
    const cw = Math.round(width * dpr);
    const ch = Math.round(height * dpr);
    if (this.canvas.width !== cw || this.canvas.height !== ch) {
      this.canvas.width = cw;
      this.canvas.height = ch;
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    let drawn = 0;
    if (m && m.n) {
      ctx.font = FONT;
      ctx.textBaseline = 'middle';
      const f = this.focus;
      const fx = m.x[f];
      const fw = m.w[f] || 1;
      const scale = width / fw;
      this.scale = scale;
      const fl = m.level[f];
      const path = pathTo(m, f);
      // Ancestors of the zoomed frame span the whole width.
      for (let d = 0; d < fl; d++) {
        this.drawFrame(path[d], 0, this.rowY(d, levels), width, true);
        drawn++;
      }
      const end = fx + fw;
      for (let d = fl; d < levels; d++) {
        const y = this.rowY(d, levels);
        const last = m.levelStart[d + 1];
        for (let i = firstEndingAfter(m, d, fx); i < last && m.x[i] < end; i++) {
          const wpx = m.w[i] * scale;
          if (wpx < MIN_PX) continue;
          this.drawFrame(i, (m.x[i] - fx) * scale, y, wpx, false);
          drawn++;
        }
      }
    }
    const ms = performance.now() - t0;
    this.stats = { drawn, renderMs: ms, renders: this.stats.renders + 1, levels, width };
    return ms;
  }

  drawFrame(i, x, y, w, ancestor) {
    const m = this.model;
    const ctx = this.ctx;
    const dim = this.matched && !this.matched[i];
    ctx.fillStyle = dim ? DIM_COLOR : this.colors[i];
    ctx.globalAlpha = ancestor && !dim ? 0.65 : 1;
    const gap = w > 3 ? 1 : 0;
    ctx.fillRect(x, y, w - gap, ROW - 1);
    ctx.globalAlpha = 1;
    const outline = i === this.cursor || i === this.hover || m.name[i] === this.selectedName;
    if (outline) {
      ctx.strokeStyle = i === this.cursor ? '#1d4ed8' : '#1f2430';
      ctx.lineWidth = 2;
      ctx.strokeRect(x + 1, y + 1, Math.max(0, w - gap - 2), ROW - 3);
    }
    if (w < this.charW * 2 + 6) return;
    const name = m.names[m.name[i]];
    const fit = Math.floor((w - 6) / this.charW);
    const label = name.length <= fit ? name : name.slice(0, Math.max(1, fit - 1)) + '…';
    ctx.fillStyle = dim ? DIM_TEXT : this.textColors ? this.textColors[i] : TEXT;
    ctx.fillText(label, x + 3, y + ROW / 2);
  }

  /** The frame under a point of the canvas (CSS px), or -1. */
  hitTest(px, py) {
    const m = this.model;
    if (!m || !m.n) return -1;
    const levels = this.levelsShown();
    const row = Math.floor(py / ROW);
    if (row < 0 || row >= levels) return -1;
    const d = this.orientation === 'icicle' ? row : levels - 1 - row;
    const fl = m.level[this.focus];
    if (d < fl) return pathTo(m, this.focus)[d];
    const tick = m.x[this.focus] + px / this.scale;
    const i = nodeAt(m, d, tick);
    if (i < 0 || m.w[i] * this.scale < MIN_PX) return -1;
    return i;
  }

  /** Where a frame is drawn (CSS px in the canvas), or null if not drawn. */
  frameRect(id) {
    const m = this.model;
    if (!m || id < 0 || id >= m.n) return null;
    const levels = this.levelsShown();
    const d = m.level[id];
    if (d >= levels) return null;
    const fl = m.level[this.focus];
    const y = this.rowY(d, levels);
    const width = this.host.clientWidth;
    if (d < fl) {
      return pathTo(m, this.focus)[d] === id ? { x: 0, y, w: width, h: ROW } : null;
    }
    const fx = m.x[this.focus];
    const x0 = (m.x[id] - fx) * this.scale;
    const w = m.w[id] * this.scale;
    if (x0 + w <= 0 || x0 >= width || w < MIN_PX) return null;
    return { x: x0, y, w, h: ROW };
  }

  onMove(e) {
    const r = this.canvas.getBoundingClientRect();
    const id = this.hitTest(e.clientX - r.left, e.clientY - r.top);
    if (id !== this.hover) {
      this.hover = id;
      this.render();
    }
    if (id < 0) {
      this.hideTooltip();
      this.canvas.style.cursor = 'default';
      return;
    }
    this.canvas.style.cursor = 'pointer';
    this.showTooltip(id, e.clientX - r.left, e.clientY - r.top);
  }

  onClick(e) {
    const t0 = performance.now();
    const r = this.canvas.getBoundingClientRect();
    const id = this.hitTest(e.clientX - r.left, e.clientY - r.top);
    if (id < 0) return;
    this.zoomTo(id, t0);
    if (this.opts.onPick) this.opts.onPick(this.model.name[id], id);
  }

  /** Zooms to `id` (re-rendering at once) and reports it. */
  zoomTo(id, t0 = performance.now()) {
    // Clicking the zoomed frame again zooms out to its parent.
    if (id === this.focus && id !== 0) id = Math.max(0, this.model.parent[id]);
    this.focus = id;
    this.cursor = -1;
    this.render();
    const zoom = { drawMs: performance.now() - t0, renderMs: this.stats.renderMs, drawn: this.stats.drawn };
    this.lastZoom = zoom;
    // The app's part: URL, table selection, breadcrumb.
    if (this.opts.onFocus) this.opts.onFocus(id);
    zoom.ms = performance.now() - t0;
    requestAnimationFrame(() => setTimeout(() => {
      zoom.toFrameMs = performance.now() - t0;
    }, 0));
    if (this.hover >= 0) {
      const rect = this.frameRect(this.hover);
      if (!rect) this.hideTooltip();
    }
  }

  onKey(e) {
    const m = this.model;
    if (!m || !m.n) return;
    let c = this.cursor >= 0 ? this.cursor : this.focus;
    const down = this.orientation === 'icicle' ? 'ArrowDown' : 'ArrowUp';
    const up = this.orientation === 'icicle' ? 'ArrowUp' : 'ArrowDown';
    switch (e.key) {
      case down: {
        let best = -1;
        for (let k = m.childStart[c]; k < m.childEnd[c]; k++) if (best < 0 || m.w[k] > m.w[best]) best = k;
        if (best >= 0 && this.frameRect(best)) c = best;
        break;
      }
      case up:
        if (m.parent[c] >= 0) c = m.parent[c];
        break;
      case 'ArrowLeft':
      case 'ArrowRight': {
        const step = e.key === 'ArrowLeft' ? -1 : 1;
        const d = m.level[c];
        for (let k = c + step; k >= m.levelStart[d] && k < m.levelStart[d + 1]; k += step) {
          if (this.frameRect(k)) {
            c = k;
            break;
          }
        }
        break;
      }
      case 'Enter':
      case ' ':
        e.preventDefault();
        this.zoomTo(c);
        if (this.opts.onPick) this.opts.onPick(m.name[c], c);
        this.cursor = c;
        this.render();
        this.announce(c);
        return;
      case 'Escape':
        if (this.focus !== 0) this.zoomTo(Math.max(0, m.parent[this.focus]));
        return;
      case 'Home':
        this.zoomTo(0);
        return;
      default:
        return;
    }
    e.preventDefault();
    this.cursor = c;
    this.render();
    const rect = this.frameRect(c);
    if (rect) this.showTooltip(c, rect.x + Math.min(rect.w / 2, 40), rect.y + ROW);
    this.announce(c);
  }

  announce(id) {
    this.live.textContent = this.describe(id).join('. ');
  }

  /** Tooltip lines of a frame. */
  describe(id) {
    const m = this.model;
    const u = this.unit;
    const name = m.names[m.name[id]];
    if (m.diff) {
      const ch = this.changes[id];
      return [
        name,
        `Baseline: ${formatValue(m.lw[id], u)} (${formatPercent(m.lw[id], m.leftTicks)}), self ${formatValue(m.lself[id], u)}`,
        `Comparison: ${formatValue(m.rw[id], u)} (${formatPercent(m.rw[id], m.rightTicks)}), self ${formatValue(m.rself[id], u)}`,
        `Change: ${formatSigned(ch * 100, 1)}`,
      ];
    }
    return [
      name,
      `Self: ${formatValue(m.self[id], u)} (${formatPercent(m.self[id], m.total)})`,
      `Total: ${formatValue(m.w[id], u)} (${formatPercent(m.w[id], m.total)})`,
    ];
  }

  showTooltip(id, x, y) {
    const lines = this.describe(id);
    const tt = this.tooltip;
    tt.textContent = '';
    tt.append(h('div', { class: 'tt-name', text: lines[0] }));
    for (const l of lines.slice(1)) {
      const [k, ...rest] = l.split(': ');
      tt.append(h('div', { class: 'tt-row' }, h('span', { class: 'tt-key', text: k }), h('span', { text: rest.join(': ') })));
    }
    tt.dataset.node = String(id);
    tt.hidden = false;
    const hostW = this.host.clientWidth;
    const ttW = tt.offsetWidth;
    const left = Math.max(0, Math.min(x + 14, hostW - ttW - 4));
    tt.style.left = `${left}px`;
    tt.style.top = `${y + 16 + this.canvas.offsetTop}px`;
  }

  hideTooltip() {
    this.tooltip.hidden = true;
    if (this.hover >= 0) {
      this.hover = -1;
      if (this.model) this.render();
    }
  }
}
