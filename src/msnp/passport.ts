/**
 * Passport 1.4 ("Tweener") login, used by USR TWN for MSNP8-11.
 *
 * Two HTTP(S) GETs: the nexus names the login server in the PassportURLs
 * header (DALogin, usually without a scheme), then the login server is asked
 * with an "Authorization: Passport1.4 ..." header carrying the credentials
 * and the notification server's challenge string. On success the ticket is
 * the from-PP value of Authentication-Info; a failure is a 401 with
 * da-status=failed in WWW-Authenticate.
 */
import http from 'node:http';
import https from 'node:https';
import { MsnAuthError, MsnConnectionError, MsnProtocolError, MsnTimeoutError } from './errors.ts';
import type { MsnTrace } from './trace.ts';

export interface PassportOptions {
  /** Nexus URL, e.g. https://nexus.passport.com/rdr/pprdr.asp (plain http allowed for tests). */
  nexusUrl: string;
  /** Skip the nexus and use this login URL (e.g. https://login.passport.com/login2.srf). */
  loginUrl?: string;
  email: string;
  password: string;
  /** The argument of the server's "USR n TWN S <challenge>". */
  challenge: string;
  /** Milliseconds per HTTP request. */
  timeout: number;
  /** Receives the request lines and status codes (never headers: they carry the password). */
  trace?: MsnTrace;
}

interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** GET without following redirects (Passport redirects must resend the Authorization header). */
function get(url: string, headers: Record<string, string>, timeout: number): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      reject(new MsnProtocolError(`bad Passport URL: ${url}`));
      return;
    }
    const mod = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
    if (!mod) {
      reject(new MsnProtocolError(`unsupported Passport URL scheme: ${url}`));
      return;
    }
    // agent:false so no keep-alive socket outlives the login.
    const req = mod.request(parsed, { method: 'GET', headers, agent: false }, (res) => {
      res.resume(); // bodies are irrelevant; drain so the socket closes
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', (err) => reject(new MsnConnectionError(`Passport: ${err.message}`)));
    });
    req.setTimeout(timeout, () => {
      req.destroy();
      reject(new MsnTimeoutError(`Passport request to ${parsed.host}`));
    });
    req.on('error', (err) =>
      reject(new MsnConnectionError(`Passport request to ${parsed.host} failed: ${err.message}`)),
    );
    req.end();
  });
}

function header(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Splits "a=1,b='x,y',c" into a map. Values may be single-quoted (from-PP is)
 * and may contain commas inside the quotes.
 */
export function parsePassportParams(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let rest = text.trim().replace(/^Passport1\.4\s+/i, '');
  while (rest.length > 0) {
    const eq = rest.indexOf('=');
    const comma = rest.indexOf(',');
    if (eq < 0 || (comma >= 0 && comma < eq)) {
      // A bare flag like "prompt".
      const end = comma < 0 ? rest.length : comma;
      const key = rest.slice(0, end).trim();
      if (key) out.set(key, '');
      rest = comma < 0 ? '' : rest.slice(comma + 1);
      continue;
    }
    const key = rest.slice(0, eq).trim();
    rest = rest.slice(eq + 1);
    let value: string;
    if (rest.startsWith("'")) {
      const close = rest.indexOf("'", 1);
      value = close < 0 ? rest.slice(1) : rest.slice(1, close);
      rest = close < 0 ? '' : rest.slice(close + 1);
      const next = rest.indexOf(',');
      rest = next < 0 ? '' : rest.slice(next + 1);
    } else {
      const next = rest.indexOf(',');
      value = next < 0 ? rest : rest.slice(0, next);
      rest = next < 0 ? '' : rest.slice(next + 1);
    }
    out.set(key, value.trim());
  }
  return out;
}

/** Adds the nexus' scheme to a DALogin given without one ("login.passport.com/login2.srf"). */
export function resolveLoginUrl(daLogin: string, nexusUrl: string): string {
  if (/^https?:\/\//i.test(daLogin)) return daLogin;
  const scheme = new URL(nexusUrl).protocol;
  return `${scheme}//${daLogin}`;
}

/** Asks the nexus where to log in. */
export async function discoverLoginUrl(nexusUrl: string, timeout: number, trace?: MsnTrace): Promise<string> {
  trace?.({ direction: 'out', server: 'HTTP', line: `GET ${nexusUrl}` });
  const res = await get(nexusUrl, { 'User-Agent': 'MSMSGS' }, timeout);
  trace?.({ direction: 'in', server: 'HTTP', line: `HTTP ${res.status}` });
  const urls = header(res.headers, 'PassportURLs');
  if (res.status !== 200 || !urls) {
    throw new MsnProtocolError(`nexus ${nexusUrl} answered ${res.status} without PassportURLs`);
  }
  const daLogin = parsePassportParams(urls).get('DALogin');
  if (!daLogin) throw new MsnProtocolError('PassportURLs has no DALogin');
  return resolveLoginUrl(daLogin, nexusUrl);
}

/** Runs the Passport 1.4 exchange and returns the ticket for "USR n TWN S <ticket>". */
export async function passportLogin(opts: PassportOptions): Promise<string> {
  let url = opts.loginUrl ?? (await discoverLoginUrl(opts.nexusUrl, opts.timeout, opts.trace));
  const auth =
    'Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom' +
    `,sign-in=${encodeURIComponent(opts.email)},pwd=${encodeURIComponent(opts.password)},${opts.challenge}`;
  for (let hops = 0; hops < 5; hops++) {
    opts.trace?.({ direction: 'out', server: 'HTTP', line: `GET ${url} (Passport1.4 credentials)` });
    const res = await get(
      url,
      { Authorization: auth, 'User-Agent': 'MSMSGS', 'Cache-Control': 'no-cache' },
      opts.timeout,
    );
    opts.trace?.({ direction: 'in', server: 'HTTP', line: `HTTP ${res.status}` });
    if (res.status === 302 || res.status === 301) {
      const location = header(res.headers, 'Location');
      if (!location) throw new MsnProtocolError('Passport redirect without Location');
      url = new URL(location, url).toString();
      continue;
    }
    const wwwAuth = header(res.headers, 'WWW-Authenticate') ?? '';
    const authInfo = header(res.headers, 'Authentication-Info') ?? '';
    if (res.status === 401 || /da-status=failed/i.test(wwwAuth) || /da-status=failed/i.test(authInfo)) {
      throw new MsnAuthError('Passport refused the credentials');
    }
    if (res.status !== 200) throw new MsnProtocolError(`Passport login answered HTTP ${res.status}`);
    const ticket = parsePassportParams(authInfo).get('from-PP');
    if (!ticket) throw new MsnProtocolError('Passport reply has no from-PP ticket');
    return ticket;
  }
  throw new MsnProtocolError('too many Passport redirects');
}
