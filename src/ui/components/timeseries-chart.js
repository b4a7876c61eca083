// The time-series chart (SVG): one line per series over the query range,
// hover read-out, drag to select a time range (zoom), shaded bands (the diff's
// baseline and comparison ranges).

import { h } from '../lib/dom.js';
import { formatValue } from '../lib/units.js';
import { formatDateTime } from '../lib/time-range.js';

const NS = 'http://www.w3.org/2000/svg';
const M = { left: 64, right: 12, top: 10, bottom: 22 };

function svg(tag, attrs = {}) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

const TIME_STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

const pad = (n) => String(n).padStart(2, '0');

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanMs <= 5 * 60_000) return `${hm}:${pad(d.getSeconds())}`;
  if (spanMs <= 2 * 86_400_000) return hm;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

export class TimeseriesChart {
  /**
   * @param {HTMLElement} host
   * @param {{onSelectRange?: (start:number, end:number)=>void, height?: number, label?: string}} opts
   */
  constructor(host, opts = {}) {
    this.host = host;
    this.opts = opts;
    this.height = opts.height || 150;
    this.data = null;
    host.classList.add('chart-host');
    this.svg = svg('svg', { class: 'chart-svg', role: 'img', 'aria-label': opts.label || 'Time series' });
    this.tip = h('div', { class: 'chart-tip', hidden: true });
    host.append(this.svg, this.tip);
    this.ro = new ResizeObserver(() => this.render());
    this.ro.observe(host);
  }

  /**
   * @param {{series: {label:string, color:string, points:[number, number][]}[], start:number, end:number, step:number, unit:object, bands?: {start:number,end:number,color:string,label:string}[], message?: string}} data
   *   step in seconds; points are [timestamp ms, value].
   */
  setData(data) {
    this.data = data;
    this.render();
  }

  /** Zero-filled buckets of a series on the server's grid (points are bucket ends). */
  static fill(points, start, end, stepMs) {
    if (!points.length) return [];
    const byT = new Map(points.map(([t, v]) => [t, v]));
    const t0 = points[0][0];
    let first = t0 - Math.floor((t0 - start) / stepMs) * stepMs;
    if (first > start + stepMs) first -= stepMs;
    const out = [];
    for (let t = first; t <= end + stepMs; t += stepMs) out.push([t, byT.get(t) || 0]);
    for (const [t, v] of points) if (!out.length || t > out[out.length - 1][0]) out.push([t, v]);
    return out;
  }

  render() {
    const d = this.data;
    const width = Math.max(200, this.host.clientWidth);
    const height = this.height;
    const s = this.svg;
    s.textContent = '';
    s.setAttribute('width', width);
    s.setAttribute('height', height);
    s.setAttribute('viewBox', `0 0 ${width} ${height}`);
    if (!d) return;
    const pw = width - M.left - M.right;
    const ph = height - M.top - M.bottom;
    const stepMs = d.step * 1000;
    const filled = d.series.map((x) => ({ ...x, pts: TimeseriesChart.fill(x.points, d.start, d.end, stepMs) }));
    let max = 0;
    for (const x of filled) for (const [, v] of x.pts) if (v > max) max = v;
    const yStep = niceStep(max || 1, 4);
    const yMax = Math.max(yStep, Math.ceil((max || 1) / yStep) * yStep);
    const sx = (t) => M.left + ((t - d.start) / (d.end - d.start)) * pw;
    const sy = (v) => M.top + ph - (v / yMax) * ph;
    this.scale = { sx, pw, width };
    const g = svg('g');
    // Bands (diff ranges) under everything.
    const bands = d.bands || [];
    bands.forEach((b, i) => {
      const x0 = Math.max(M.left, sx(b.start));
      const x1 = Math.min(M.left + pw, sx(b.end));
      if (x1 > x0) {
        g.append(svg('rect', { x: x0, y: M.top, width: x1 - x0, height: ph, fill: b.color, 'fill-opacity': 0.12, class: 'chart-band' }));
        // Labels of bands starting at the same place go on separate lines.
        const line = bands.slice(0, i).filter((o) => Math.abs(sx(o.start) - sx(b.start)) < 90).length;
        const t = svg('text', { x: x0 + 4, y: M.top + 12 + line * 13, class: 'chart-band-label', fill: b.color });
        t.textContent = b.label;
        g.append(t);
      }
    });
    const hasData = max > 0;
    // Y grid and labels (just the zero line without data).
    for (let v = 0; v <= (hasData ? yMax + yStep / 2 : 0); v += yStep) {
      const y = sy(v);
      g.append(svg('line', { x1: M.left, x2: M.left + pw, y1: y, y2: y, class: 'chart-grid' }));
      const t = svg('text', { x: M.left - 6, y: y + 4, 'text-anchor': 'end', class: 'chart-axis' });
      t.textContent = formatValue(v, d.unit);
      g.append(t);
    }
    // X ticks.
    const span = d.end - d.start;
    const tStep = TIME_STEPS.find((x) => span / x <= Math.max(2, Math.floor(pw / 90))) || 604_800_000;
    const tz = new Date().getTimezoneOffset() * 60_000;
    for (let t = Math.ceil((d.start - tz) / tStep) * tStep + tz; t <= d.end; t += tStep) {
      const x = sx(t);
      g.append(svg('line', { x1: x, x2: x, y1: M.top + ph, y2: M.top + ph + 4, class: 'chart-tick' }));
      const tl = svg('text', { x, y: height - 6, 'text-anchor': 'middle', class: 'chart-axis' });
      tl.textContent = timeLabel(t, span);
      g.append(tl);
    }
    g.append(svg('line', { x1: M.left, x2: M.left + pw, y1: M.top + ph, y2: M.top + ph, class: 'chart-baseline' }));
    // Series.
    const clip = `clip-${Math.random().toString(36).slice(2)}`;
    const defs = svg('defs');
    const cp = svg('clipPath', { id: clip });
    cp.append(svg('rect', { x: M.left, y: M.top - 2, width: pw, height: ph + 2 }));
    defs.append(cp);
    s.append(defs);
    const plot = svg('g', { 'clip-path': `url(#${clip})` });
    for (const x of filled) {
      if (!x.pts.length) continue;
      // Stepped: each bucket spans (t - step, t].
      let dLine = '';
      for (const [t, v] of x.pts) {
        const x0 = sx(t - stepMs);
        const x1 = sx(t);
        const y = sy(v);
        dLine += `${dLine ? 'L' : 'M'}${x0.toFixed(1)},${y.toFixed(1)}L${x1.toFixed(1)},${y.toFixed(1)}`;
      }
      const first = sx(x.pts[0][0] - stepMs);
      const last = sx(x.pts[x.pts.length - 1][0]);
      if (filled.length === 1) {
        plot.append(svg('path', { d: `${dLine}L${last.toFixed(1)},${sy(0)}L${first.toFixed(1)},${sy(0)}Z`, fill: x.color, 'fill-opacity': 0.18, stroke: 'none' }));
      }
      plot.append(svg('path', { d: dLine, fill: 'none', stroke: x.color, 'stroke-width': 1.6, 'stroke-linejoin': 'round' }));
    }
    g.append(plot);
    if (!hasData) {
      const t = svg('text', { x: M.left + pw / 2, y: M.top + ph / 2, 'text-anchor': 'middle', class: 'chart-empty' });
      t.textContent = d.message || 'No data in this range';
      g.append(t);
    }
    this.cursorLine = svg('line', { y1: M.top, y2: M.top + ph, class: 'chart-cursor', visibility: 'hidden' });
    this.selRect = svg('rect', { y: M.top, height: ph, class: 'chart-selection', visibility: 'hidden' });
    g.append(this.cursorLine, this.selRect);
    const overlay = svg('rect', { x: M.left, y: M.top, width: pw, height: ph, fill: 'transparent', class: 'chart-overlay' });
    g.append(overlay);
    s.append(g);
    this.filled = filled;
    this.bindOverlay(overlay, d, stepMs);
  }

  bindOverlay(overlay, d, stepMs) {
    const toT = (clientX) => {
      const r = this.svg.getBoundingClientRect();
      const x = Math.min(Math.max(clientX - r.left, M.left), M.left + this.scale.pw);
      return { x, t: d.start + ((x - M.left) / this.scale.pw) * (d.end - d.start) };
    };
    let drag = null;
    overlay.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      overlay.setPointerCapture(e.pointerId);
      drag = toT(e.clientX);
      this.selRect.setAttribute('x', drag.x);
      this.selRect.setAttribute('width', 0);
      this.selRect.setAttribute('visibility', 'visible');
    });
    overlay.addEventListener('pointermove', (e) => {
      const cur = toT(e.clientX);
      if (drag) {
        this.selRect.setAttribute('x', Math.min(drag.x, cur.x));
        this.selRect.setAttribute('width', Math.abs(cur.x - drag.x));
      }
      this.showTip(cur, stepMs, d);
    });
    overlay.addEventListener('pointerleave', () => {
      this.tip.hidden = true;
      this.cursorLine.setAttribute('visibility', 'hidden');
    });
    overlay.addEventListener('pointerup', (e) => {
      if (!drag) return;
      const cur = toT(e.clientX);
      const a = drag;
      drag = null;
      this.selRect.setAttribute('visibility', 'hidden');
      if (Math.abs(cur.x - a.x) >= 4 && this.opts.onSelectRange) {
        this.opts.onSelectRange(Math.round(Math.min(a.t, cur.t)), Math.round(Math.max(a.t, cur.t)));
      }
    });
  }

  showTip(cur, stepMs, d) {
    this.cursorLine.setAttribute('x1', cur.x);
    this.cursorLine.setAttribute('x2', cur.x);
    this.cursorLine.setAttribute('visibility', 'visible');
    const rows = [];
    for (const x of this.filled) {
      // The bucket (t - step, t] holding the cursor.
      const p = x.pts.find(([t]) => cur.t > t - stepMs && cur.t <= t);
      rows.push({ label: x.label, color: x.color, v: p ? p[1] : 0 });
    }
    this.tip.textContent = '';
    this.tip.append(h('div', { class: 'chart-tip-time', text: formatDateTime(cur.t) }));
    for (const r of rows.slice(0, 8)) {
      this.tip.append(
        h('div', { class: 'chart-tip-row' },
          h('span', { class: 'swatch', style: `background:${r.color}` }),
          h('span', { class: 'chart-tip-label', text: r.label }),
          h('span', { class: 'chart-tip-value', text: formatValue(r.v, d.unit) })),
      );
    }
    this.tip.hidden = false;
    const w = this.tip.offsetWidth;
    const left = cur.x + 12 + w > this.scale.width ? cur.x - w - 12 : cur.x + 12;
    this.tip.style.left = `${Math.max(0, left)}px`;
    this.tip.style.top = `${M.top}px`;
  }
}
