// The label selector field with autocomplete: label names where a name is
// expected, that label's values after `name=`, `name!=`, `name=~`, `name!~`.
// ARIA combobox: arrows move, Enter/Tab accept, Escape closes, Enter submits.

import { h } from '../lib/dom.js';

let nextId = 0;

/** Where the caret is in a selector: naming a label, or typing a value. */
export function selectorContext(text, caret) {
  const before = text.slice(0, caret);
  // Inside a quoted value?
  let inString = false;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === '\\') i++;
    else if (before[i] === '"') inString = !inString;
  }
  if (inString) {
    const m = /([A-Za-z_][\w.]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)$/.exec(before);
    if (m) return { kind: 'value', label: m[1], prefix: m[3], from: caret - m[3].length, quoted: true };
    return null;
  }
  const v = /([A-Za-z_][\w.]*)\s*(=~|!=|!~|=)\s*$/.exec(before);
  if (v) return { kind: 'value', label: v[1], prefix: '', from: caret, quoted: false };
  const n = /(?:^|[{,])\s*([A-Za-z_][\w.]*)?$/.exec(before);
  if (n) {
    const prefix = n[1] || '';
    return { kind: 'name', prefix, from: caret - prefix.length };
  }
  return null;
}

export class SelectorInput {
  /**
   * @param {object} o
   * @param {string} o.label  accessible label
   * @param {string} [o.placeholder]
   * @param {() => Promise<string[]>} o.names
   * @param {(name: string) => Promise<string[]>} o.values
   * @param {(text: string) => void} o.onSubmit
   */
  constructor(o) {
    this.o = o;
    const id = `sel-${nextId++}`;
    this.listId = `${id}-list`;
    this.input = h('input', {
      id,
      class: 'selector-input',
      type: 'text',
      spellcheck: 'false',
      autocomplete: 'off',
      placeholder: o.placeholder || 'label="value", …',
      role: 'combobox',
      'aria-autocomplete': 'list',
      'aria-expanded': 'false',
      'aria-controls': this.listId,
      'aria-label': o.label,
    });
    this.list = h('ul', { id: this.listId, class: 'suggestions', role: 'listbox', hidden: true, 'aria-label': `${o.label} suggestions` });
    this.el = h('div', { class: 'selector-wrap' }, this.input, this.list);
    this.items = [];
    this.active = -1;
    this.ctx = null;
    this.seq = 0;
    this.input.addEventListener('input', () => this.suggest());
    this.input.addEventListener('focus', () => this.suggest());
    this.input.addEventListener('click', () => this.suggest());
    this.input.addEventListener('keydown', (e) => this.onKey(e));
    this.input.addEventListener('blur', () => setTimeout(() => this.close(), 150));
  }

  get value() {
    return this.input.value;
  }

  set value(v) {
    if (this.input.value !== v) this.input.value = v;
  }

  async suggest() {
    const seq = ++this.seq;
    const ctx = selectorContext(this.input.value, this.input.selectionStart ?? this.input.value.length);
    if (!ctx) return this.close();
    let options = [];
    try {
      options = ctx.kind === 'name' ? await this.o.names() : await this.o.values(ctx.label);
    } catch {
      options = [];
    }
    if (seq !== this.seq) return;
    const p = ctx.prefix.toLowerCase();
    const starts = options.filter((x) => x.toLowerCase().startsWith(p));
    const contains = options.filter((x) => !x.toLowerCase().startsWith(p) && x.toLowerCase().includes(p));
    this.items = [...starts, ...contains].slice(0, 50);
    this.ctx = ctx;
    if (!this.items.length || (this.items.length === 1 && this.items[0] === ctx.prefix && ctx.kind === 'value')) {
      return this.close();
    }
    this.active = -1;
    this.list.textContent = '';
    this.items.forEach((item, i) => {
      const li = h('li', {
        id: `${this.listId}-${i}`,
        role: 'option',
        'aria-selected': 'false',
        text: item,
        class: ctx.kind === 'name' ? 'sugg-name' : 'sugg-value',
      });
      li.addEventListener('mousedown', (e) => {
        e.preventDefault();
        this.accept(i);
      });
      this.list.append(li);
    });
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
  }

  close() {
    this.list.hidden = true;
    this.active = -1;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  move(delta) {
    if (this.list.hidden || !this.items.length) return;
    this.active = (this.active + delta + this.items.length) % this.items.length;
    [...this.list.children].forEach((li, i) => {
      li.setAttribute('aria-selected', String(i === this.active));
      li.classList.toggle('active', i === this.active);
    });
    const li = this.list.children[this.active];
    this.input.setAttribute('aria-activedescendant', li.id);
    li.scrollIntoView({ block: 'nearest' });
  }

  accept(i) {
    const item = this.items[i];
    const ctx = this.ctx;
    if (item === undefined || !ctx) return;
    const text = this.input.value;
    const caret = this.input.selectionStart ?? text.length;
    let insert;
    let after = text.slice(caret);
    if (ctx.kind === 'name') {
      // Replace the whole word under the caret.
      after = after.replace(/^[\w.]*/, '');
      insert = after.trimStart().startsWith('=') || after.trimStart().startsWith('!') ? item : `${item}="`;
    } else {
      const escaped = item.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
      // Inside quotes, the rest of the value being typed is replaced too.
      if (ctx.quoted) after = after.replace(/^(?:[^"\\]|\\.)*/, '');
      const closing = ctx.quoted && after.startsWith('"') ? '' : '"';
      insert = `${ctx.quoted ? '' : '"'}${escaped}${closing}`;
    }
    const head = text.slice(0, ctx.from);
    this.input.value = head + insert + after;
    let pos = head.length + insert.length;
    if (ctx.kind === 'value' && ctx.quoted && after.startsWith('"')) pos += 1;
    this.input.setSelectionRange(pos, pos);
    this.close();
    if (ctx.kind === 'name') this.suggest();
  }

  onKey(e) {
    const open = !this.list.hidden;
    switch (e.key) {
      case 'ArrowDown':
        e.preventDefault();
        if (!open) this.suggest();
        else this.move(1);
        break;
      case 'ArrowUp':
        if (open) {
          e.preventDefault();
          this.move(-1);
        }
        break;
      case 'Enter':
        e.preventDefault();
        if (open && this.active >= 0) this.accept(this.active);
        else {
          this.close();
          this.o.onSubmit(this.input.value);
        }
        break;
      case 'Tab':
        if (open && this.active >= 0) {
          e.preventDefault();
          this.accept(this.active);
        }
        break;
      case 'Escape':
        if (open) {
          e.preventDefault();
          this.close();
        }
        break;
      default:
    }
  }
}
