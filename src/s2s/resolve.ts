// Where to connect for a remote domain: the static `s2s.routes` table
// first, then DNS SRV (`_xmpps-server._tcp` for direct TLS, XEP-0368, and
// `_xmpp-server._tcp` for STARTTLS, RFC 6120 §3.2), ordered by priority and
// weight (RFC 2782); without SRV records the domain itself on 5269
// (A/AAAA via the system resolver at connect time).
import type { SrvRecord } from 'node:dns';

export interface Target {
  host: string;
  port: number;
  /** XEP-0368: TLS from the first byte instead of STARTTLS. */
  directTls: boolean;
}

export interface SrvResolver {
  resolveSrv(name: string): Promise<SrvRecord[]>;
}

export const DEFAULT_PORT = 5269;

/** Parses a route value: "host", "host:port", "[v6]:port"; "xmpps://host:port" means direct TLS. */
export function parseRoute(value: string): Target | null {
  let v = value.trim();
  let directTls = false;
  if (v.startsWith('xmpps://')) {
    directTls = true;
    v = v.slice(8);
  } else if (v.startsWith('xmpp://')) {
    v = v.slice(7);
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(v);
  if (!m) return null;
  const port = m[3] ? Number(m[3]) : DEFAULT_PORT;
  if (port < 1 || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port, directTls };
}

/**
 * Resolves a domain to an ordered list of targets. An empty list means the
 * domain explicitly offers no XMPP service (SRV target ".").
 */
export async function resolveTargets(
  domain: string,
  routes: Record<string, string>,
  dns: SrvResolver,
): Promise<Target[]> {
  const route = routes[domain];
  if (route !== undefined) {
    const t = parseRoute(route);
    if (!t) throw new Error(`s2s.routes: cannot parse '${route}' for ${domain}`);
    return [t];
  }
  const lookup = (name: string) => dns.resolveSrv(name).catch(() => [] as SrvRecord[]);
  const [tls, plain] = await Promise.all([
    lookup(`_xmpps-server._tcp.${domain}`),
    lookup(`_xmpp-server._tcp.${domain}`),
  ]);
  const usable = (records: SrvRecord[]) => records.filter((r) => r.name !== '' && r.name !== '.');
  if (tls.length + plain.length === 0) return [{ host: domain, port: DEFAULT_PORT, directTls: false }];
  // A lone "." target is the domain saying "no service here" (RFC 2782).
  const candidates = [
    ...usable(tls).map((r) => ({ r, directTls: true })),
    ...usable(plain).map((r) => ({ r, directTls: false })),
  ];
  return orderSrv(candidates).map(({ r, directTls }) => ({ host: r.name, port: r.port, directTls }));
}

interface Candidate {
  r: SrvRecord;
  directTls: boolean;
}

/**
 * RFC 2782 ordering: lowest priority first; within a priority, a weighted
 * random draw. At equal priority direct TLS goes first (XEP-0368 lets the
 * initiator prefer it: it saves a round trip).
 */
export function orderSrv<T extends Candidate>(records: T[], random: () => number = Math.random): T[] {
  const priorities = [...new Set(records.map((c) => c.r.priority))].sort((a, b) => a - b);
  const out: T[] = [];
  for (const p of priorities) {
    for (const directTls of [true, false]) {
      // Zero-weight records first, as RFC 2782 arranges them before drawing.
      const pool = records
        .filter((c) => c.r.priority === p && c.directTls === directTls)
        .sort((a, b) => (a.r.weight === 0 ? -1 : 0) - (b.r.weight === 0 ? -1 : 0));
      while (pool.length > 0) {
        const total = pool.reduce((s, c) => s + c.r.weight, 0);
        const pick = Math.floor(random() * (total + 1));
        let running = 0;
        let index = pool.length - 1;
        for (let i = 0; i < pool.length; i++) {
          running += pool[i]!.r.weight;
          if (running >= pick) {
            index = i;
            break;
          }
        }
        out.push(pool.splice(index, 1)[0]!);
      }
    }
  }
  return out;
}
