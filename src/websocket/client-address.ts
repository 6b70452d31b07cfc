// Who is at the other end of an HTTP request or WebSocket: the socket's
// peer, or, when that peer is a trusted reverse proxy (http.trustedProxies),
// the client it names in X-Forwarded-For, with X-Forwarded-Proto saying
// whether the client's own connection was TLS and X-Forwarded-Host which
// name it used. Headers from anyone else are ignored: a client cannot
// claim another address or a TLS it does not have.
import type { IncomingMessage } from 'node:http';

export interface ClientAddress {
  ip: string;
  /** Set when a trusted proxy answered for the client. */
  proxied: { secure: boolean; host: string | null } | null;
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same peer. */
export function plainIp(ip: string | undefined): string {
  if (!ip) return 'unknown';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  const s = Array.isArray(v) ? v.join(',') : v;
  return s?.trim() ? s : null;
}

export function clientAddress(req: IncomingMessage, trusted: ReadonlySet<string>): ClientAddress {
  const peer = plainIp(req.socket.remoteAddress);
  if (!trusted.has(peer)) return { ip: peer, proxied: null };
  // Rightmost first: each proxy appends the address it saw; the first one
  // that is not one of ours is the client (earlier entries can be forged).
  const chain = (header(req, 'x-forwarded-for') ?? '')
    .split(',')
    .map((s) => plainIp(s.trim()))
    .filter((s) => s !== 'unknown' && s !== '');
  let ip = peer;
  for (let i = chain.length - 1; i >= 0; i--) {
    ip = chain[i]!;
    if (!trusted.has(ip)) break;
  }
  const proto = header(req, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  const host = header(req, 'x-forwarded-host')?.split(',')[0]?.trim() ?? null;
  return { ip, proxied: { secure: proto === 'https' || proto === 'wss', host } };
}
