// `npm run bench:reconnect`: what a mobile client's reconnect costs with
// each login path of jabberfly, measured with @xmpp/client over loopback
// (TCP, STARTTLS, TLS 1.3): legacy SASL (SCRAM-SHA-1) and resource binding,
// SASL2 (XEP-0388) with Bind2 and the password, and SASL2 with a FAST token
// (XEP-0484, HT-SHA-256-NONE). For each: the median and p90 time from
// connect to "online", and the round trips after STARTTLS (elements the
// client sent and waited on before it was online). Median of --runs logins
// each (default 30), one at a time, first login of each path excluded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { client, xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { buildConfig } from '../src/config/load.ts';
import { Server } from '../src/server.ts';

const { values } = parseArgs({ options: { runs: { type: 'string' }, help: { type: 'boolean' } } });
if (values.help) {
  console.log('npm run bench:reconnect [-- --runs N]   login time and round trips: legacy SASL, SASL2 + Bind2, FAST');
  process.exit(0);
}
const runs = Number(values.runs ?? 30);
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

const dir = mkdtempSync(join(tmpdir(), 'jabberfly-reconnect-'));
const config = buildConfig({
  listen: ['127.0.0.1'],
  storage: { path: join(dir, 'storage') },
  tls: { dir: join(dir, 'certs') },
  c2s: { port: 0, directTlsPort: 0 },
  s2s: { port: false },
  http: { port: false },
  https: { port: false },
  msn: { enabled: false },
  upload: { path: join(dir, 'uploads') },
  log: { level: 'silent' },
});
const server = await Server.start(config, {});
await server.accounts.setPassword('alice', 'a password');
const port = server.c2s.ports.starttls!;

type Token = { mechanism: string; token: string; expiry: string };
let token: Token | null = null;
const agent = crypto.randomUUID();

/** One login; resolves with its time (ms) and the round trips it took after STARTTLS. */
async function login(path: 'legacy' | 'sasl2' | 'fast'): Promise<{ ms: number; trips: number }> {
  const xmpp = client({
    service: `xmpp://127.0.0.1:${port}`,
    domain: 'localhost',
    username: 'alice',
    // FAST must not fall back to the password: a wrong one makes a failed token visible.
    password: path === 'fast' ? 'not the password' : 'a password',
    resource: 'phone',
    userAgent: xml('user-agent', { id: agent }),
    timeout: 20000,
  });
  xmpp.reconnect.stop();
  xmpp.on('error', () => {});
  if (path === 'legacy') {
    xmpp.prependListener('element', (e: Element) => {
      const sasl2 = e.is('features', 'http://etherx.jabber.org/streams') && e.getChild('authentication', 'urn:xmpp:sasl:2');
      if (sasl2) e.remove(sasl2);
    });
  }
  xmpp.fast.saveToken = async (t: Token) => {
    token = t;
  };
  xmpp.fast.fetchToken = async () => (path === 'fast' ? token : null);
  let trips = 0;
  let secured = false;
  xmpp.on('send', (e: Element) => {
    // Counted from the stream opened over TLS: what a resumed TLS session would not save.
    if (e.is('starttls')) secured = true;
    else if (secured && !e.is('a', 'urn:xmpp:sm:3')) trips++;
  });
  const start = performance.now();
  await xmpp.start();
  const ms = performance.now() - start;
  await xmpp.stop();
  return { ms, trips };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!;
const rows: string[] = [];
for (const path of ['legacy', 'sasl2', 'fast'] as const) {
  if (path === 'fast' && !token) await login('sasl2');
  await login(path);
  const times: number[] = [];
  let trips = 0;
  for (let i = 0; i < runs; i++) {
    const r = await login(path);
    times.push(r.ms);
    trips = r.trips;
  }
  times.sort((a, b) => a - b);
  const label = { legacy: 'legacy SASL (SCRAM-SHA-1) + bind', sasl2: 'SASL2 + Bind2, password (SCRAM-SHA-1)', fast: 'SASL2 + Bind2, FAST token' }[path];
  rows.push(`| ${label} | ${trips} | ${pct(times, 0.5).toFixed(1)} | ${pct(times, 0.9).toFixed(1)} |`);
}
console.log(`reconnects, ${runs} each (loopback, TLS 1.3, @xmpp/client, stream management enabled where offered):\n`);
console.log('| login | client requests after STARTTLS (round trips) | median ms | p90 ms |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(r);
await server.stop();
rmSync(dir, { recursive: true, force: true });
