// Export of the current view: pprof (binary, from SelectMergeProfile with a
// hand-encoded protobuf request), the server's flame graph SVG, the flame
// graph JSON; and the share button that copies the URL.

import { h } from '../lib/dom.js';
import { ApiError, connectProto, renderUrl, request } from '../lib/api.js';
import { encodeSelectMergeProfileRequest } from '../lib/pprof-request.js';
import { copyText, safeFileName, saveAs } from '../lib/download.js';

export class ExportMenu {
  /**
   * @param {HTMLElement} host
   * @param {object} o
   * @param {() => ({service: string, profileType: string, selector: string, start: number, end: number, json: object|null, jsonName: string}|null)} o.current
   * @param {(err: Error) => void} o.onError
   * @param {(msg: string) => void} o.onNotice
   */
  constructor(host, o) {
    this.o = o;
    this.pprofBtn = h('button', { type: 'button', id: 'export-pprof', class: 'menu-item', text: 'pprof (.pb)' });
    this.svgLink = h('a', { id: 'export-svg', class: 'menu-item', href: '#', text: 'Flame graph SVG' });
    this.jsonBtn = h('button', { type: 'button', id: 'export-json', class: 'menu-item', text: 'Flame graph JSON' });
    this.details = h('details', { class: 'menu', id: 'export-menu' },
      h('summary', { class: 'btn', text: 'Export' }),
      h('div', { class: 'menu-list', role: 'menu' }, this.pprofBtn, this.svgLink, this.jsonBtn));
    this.shareBtn = h('button', { type: 'button', id: 'share', class: 'btn btn-primary', text: 'Share' });
    host.append(this.shareBtn, this.details);
    this.pprofBtn.addEventListener('click', () => this.run(() => this.pprof()));
    this.jsonBtn.addEventListener('click', () => this.run(() => this.json()));
    this.svgLink.addEventListener('click', (e) => {
      e.preventDefault();
      this.run(() => this.svg());
    });
    this.svgLink.addEventListener('focus', () => this.refreshLink());
    this.details.addEventListener('toggle', () => this.refreshLink());
    this.shareBtn.addEventListener('click', async () => {
      const ok = await copyText(location.href);
      o.onNotice(ok ? 'Link copied to the clipboard' : `Copy this link: ${location.href}`);
    });
    document.addEventListener('click', (e) => {
      if (this.details.open && !this.details.contains(e.target)) this.details.open = false;
    });
    this.details.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        this.details.open = false;
        this.details.querySelector('summary').focus();
      }
    });
  }

  refreshLink() {
    const c = this.o.current();
    if (!c) return;
    this.svgLink.href = renderUrl({ profileType: c.profileType, selector: c.selector, from: c.start, until: c.end, format: 'svg' });
    this.svgLink.setAttribute('download', `${safeFileName(c.service)}.svg`);
  }

  async run(fn) {
    this.details.open = false;
    try {
      await fn();
    } catch (e) {
      this.o.onError(e);
    }
  }

  need() {
    const c = this.o.current();
    if (!c) throw new Error('nothing to export yet: pick a service and a profile type');
    return c;
  }

  async pprof() {
    const c = this.need();
    const body = encodeSelectMergeProfileRequest({ profileTypeID: c.profileType, labelSelector: c.selector, start: c.start, end: c.end });
    const bytes = await connectProto('SelectMergeProfile', body);
    saveAs(bytes, `${safeFileName(c.service)}.pb`, 'application/octet-stream');
    this.o.onNotice(`Saved ${safeFileName(c.service)}.pb (${bytes.length} bytes)`);
  }

  async svg() {
    const c = this.need();
    this.refreshLink();
    // Fetched (not navigated to) so the tenant header goes along and errors show in the page.
    const res = await request(this.svgLink.href, {}, 'SVG export');
    const type = res.headers.get('content-type') || '';
    if (!type.includes('svg')) {
      const head = (await res.text()).slice(0, 120);
      throw new ApiError(res.status, 'unexpected_content_type',
        `the server answered ${type || 'no Content-Type'} instead of image/svg+xml (${head}…)`, 'SVG export');
    }
    const blob = await res.blob();
    saveAs(blob, `${safeFileName(c.service)}.svg`, 'image/svg+xml');
    this.o.onNotice(`Saved ${safeFileName(c.service)}.svg`);
  }

  async json() {
    const c = this.need();
    if (!c.json) throw new Error('no flame graph loaded yet');
    const name = `${safeFileName(c.service)}${c.jsonName || ''}.json`;
    saveAs(JSON.stringify(c.json, null, 1), name, 'application/json');
    this.o.onNotice(`Saved ${name}`);
  }
}
