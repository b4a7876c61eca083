// Time range controls: a preset menu (last 5m … 7d) and from/until fields
// that take relative (`now-2h`), ISO or local date-times, or epoch ms.

import { h } from '../lib/dom.js';
import { PRESETS, formatDateTime, isRelative, isValidTime, resolve } from '../lib/time-range.js';

/** How a URL time is shown in a field. */
function display(v) {
  const s = String(v || '').trim();
  if (/^\d{10,13}$/.test(s)) return formatDateTime(resolve(s));
  return s;
}

/** How a field's text is stored in the URL: relative as is, absolute as ms. */
function store(text) {
  const s = text.trim();
  if (isRelative(s)) return s.replace(/\s+/g, '');
  return String(resolve(s));
}

export class TimeRangePicker {
  /**
   * @param {{idPrefix: string, label: string, onChange: (from: string, until: string) => void}} o
   */
  constructor(o) {
    this.o = o;
    this.preset = h('select', { id: `${o.idPrefix}-preset`, class: 'range-preset', 'aria-label': `${o.label}: preset` },
      ...PRESETS.map((p) => h('option', { value: p.from, text: p.label })),
      h('option', { value: 'custom', text: 'Custom range' }));
    this.from = h('input', { id: `${o.idPrefix}-from`, class: 'range-input', type: 'text', spellcheck: 'false', 'aria-label': `${o.label}: from` });
    this.until = h('input', { id: `${o.idPrefix}-until`, class: 'range-input', type: 'text', spellcheck: 'false', 'aria-label': `${o.label}: until` });
    this.el = h('div', { class: 'range-picker', role: 'group', 'aria-label': o.label },
      this.preset, this.from, h('span', { class: 'range-sep', 'aria-hidden': 'true', text: '→' }), this.until);
    this.preset.addEventListener('change', () => {
      if (this.preset.value !== 'custom') this.o.onChange(this.preset.value, 'now');
      else this.from.focus();
    });
    const commit = () => this.commit();
    for (const input of [this.from, this.until]) {
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          e.preventDefault();
          commit();
        }
      });
      input.addEventListener('change', commit);
    }
  }

  commit() {
    const f = this.from.value;
    const u = this.until.value || 'now';
    let ok = true;
    for (const input of [this.from, this.until]) {
      const valid = isValidTime(input.value || 'now');
      input.setAttribute('aria-invalid', String(!valid));
      ok = ok && valid;
    }
    if (!ok) return;
    const from = store(f);
    const until = store(u);
    if (from !== this.cur?.from || until !== this.cur?.until) this.o.onChange(from, until);
  }

  /** Shows a range from the URL. */
  set(from, until) {
    this.cur = { from, until };
    const presetMatch = until === 'now' && PRESETS.some((p) => p.from === from);
    this.preset.value = presetMatch ? from : 'custom';
    if (document.activeElement !== this.from) this.from.value = display(from);
    if (document.activeElement !== this.until) this.until.value = display(until);
    this.from.removeAttribute('aria-invalid');
    this.until.removeAttribute('aria-invalid');
  }
}
