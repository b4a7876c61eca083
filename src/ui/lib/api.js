// The server's public API: Connect JSON calls to querier.v1.QuerierService,
// the legacy /pyroscope/* routes, and the tenant header they all carry.

const QUERIER = '/querier.v1.QuerierService/';

/** An error answered by the server (`{code, message}`) or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message, what) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.what = what;
  }

  /** True when the server wants an `X-Scope-OrgID` header. */
  get needsTenant() {
    return this.status === 401 && this.message === 'no org id';
  }

  /** True when the server wants credentials (authentication is on). */
  get needsLogin() {
    return this.status === 401 && !this.needsTenant;
  }

  toString() {
    const head = this.status ? `${this.status} ${this.code || ''}`.trim() : this.code || 'error';
    return `${this.what ? this.what + ': ' : ''}${head}: ${this.message}`;
  }
}

let tenant = '';

/** Sets the tenant sent as `X-Scope-OrgID` ('' sends none). */
export function setTenant(t) {
  tenant = (t || '').trim();
}

export function currentTenant() {
  return tenant;
}

// The credential of this tab (sessionStorage: gone when the tab closes).
const AUTH_KEY = 'ignis.authorization';

function stored() {
  try {
    return sessionStorage.getItem(AUTH_KEY) || '';
  } catch {
    return '';
  }
}

let authorization = stored();

/** Signs in: a token alone is sent as Bearer, a user name and secret as HTTP Basic. */
export function signIn(user, secret) {
  const u = (user || '').trim();
  authorization = u
    ? `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(`${u}:${secret}`)))}`
    : `Bearer ${(secret || '').trim()}`;
  try {
    sessionStorage.setItem(AUTH_KEY, authorization);
  } catch {
    // Private mode without storage: kept in memory only.
  }
}

/** Forgets the credential. */
export function signOut() {
  authorization = '';
  try {
    sessionStorage.removeItem(AUTH_KEY);
  } catch {
    // Nothing stored.
  }
}

/** True when this tab holds a credential. */
export function signedIn() {
  return !!authorization;
}

/** Headers every request carries. */
export function baseHeaders(extra = {}) {
  // X-Requested-With: a missing credential gets no browser dialog; the UI asks.
  const headers = { 'X-Requested-With': 'XMLHttpRequest', ...extra };
  if (tenant) headers['X-Scope-OrgID'] = tenant;
  if (authorization) headers.Authorization = authorization;
  return headers;
}

async function errorFrom(res, what) {
  let code = '';
  let message = res.statusText || 'request failed';
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      const j = JSON.parse(text);
      code = j.code || '';
      message = j.message || message;
    } catch {
      message = text.slice(0, 500);
    }
  }
  return new ApiError(res.status, code, message, what);
}

/** fetch() that turns non-2xx answers and network failures into ApiError. */
export async function request(url, init = {}, what = '') {
  let res;
  try {
    res = await fetch(url, { ...init, headers: baseHeaders(init.headers || {}) });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `cannot reach the server (${e.message})`, what);
  }
  if (!res.ok) throw await errorFrom(res, what);
  return res;
}

/** Calls a QuerierService method with a JSON message; resolves to the JSON answer. */
export async function connect(method, message, { signal } = {}) {
  const res = await request(
    QUERIER + method,
    {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1' },
      body: JSON.stringify(message || {}),
      signal,
    },
    method,
  );
  return res.json();
}

/** Calls a QuerierService method with a protobuf body; resolves to the raw bytes. */
export async function connectProto(method, bytes, { signal } = {}) {
  const res = await request(
    QUERIER + method,
    {
      method: 'POST',
      headers: { 'Content-Type': 'application/proto', 'Connect-Protocol-Version': '1' },
      body: bytes,
      signal,
    },
    method,
  );
  return new Uint8Array(await res.arrayBuffer());
}

/** An int64 from protojson (a string), or a plain number, as a Number. */
export function num(v) {
  if (v === undefined || v === null || v === '') return 0;
  return typeof v === 'number' ? v : Number(v);
}

/** The legacy render URL of a selection (`format=svg` gives the server-side SVG). */
export function renderUrl({ profileType, selector, from, until, maxNodes, format }) {
  const p = new URLSearchParams();
  p.set('query', `${profileType}${selector}`);
  p.set('from', String(from));
  p.set('until', String(until));
  if (maxNodes) p.set('maxNodes', String(maxNodes));
  if (format) p.set('format', format);
  return `/pyroscope/render?${p}`;
}
