// Figure 5: chat through jabberfly's MSN transport. An XMPP client (u0)
// registers with msn.<domain> as an MSN account on the MSN simulator
// (test/msn-sim/); an MSN buddy (src/msnp MsnSession, logged in to the same
// simulator) echoes every message back. Measured: round trips per second
// with a window of messages in flight, and the round-trip time one message
// at a time (p50/p99). The simulator, the buddy and this XMPP client run in
// the bench's own process, so their CPU counts as load generator.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Conn, nowUs, type Target } from './client.ts';
import { DOMAIN, freePort, Jabberfly, PASSWORD } from './servers.ts';
import type { Sample } from './types.ts';

const here = (p: string) => new URL(p, import.meta.url);
const MSN_DOMAIN = `msn.${DOMAIN}`;
const USER_EMAIL = 'bench@hotmail.com';
const ECHO_EMAIL = 'echo@hotmail.com';
const ECHO_JID = `echo%hotmail.com@${MSN_DOMAIN}`;

/** true, or why the transport figure cannot run. */
export function transportAvailable(): true | string {
  if (!existsSync(here('../src/gateway/msn/index.ts'))) return 'src/gateway/msn missing';
  if (!existsSync(here('../test/msn-sim/simulator.ts'))) return 'test/msn-sim missing';
  if (!existsSync(here('../src/msnp/index.ts'))) return 'src/msnp missing';
  return true;
}

export interface TransportOptions {
  root: string;
  cert: { crt: string; key: string };
  runs: number;
  quick: boolean;
  log: (m: string) => void;
  measured: <T>(
    server: Jabberfly,
    work: () => Promise<T>,
  ) => Promise<{ result: T; serverCpu: number; genCpu: number; otherCpu: number }>;
}

/** Resolves once every pattern has been seen on the connection (in any order). */
function waitAll(conn: Conn, patterns: RegExp[], ms: number, what: string): Promise<void> {
  let seen = conn.take();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      conn.onData = null;
      reject(new Error(`timed out waiting for ${what}; got ${seen.slice(-600)}`));
    }, ms);
    const check = () => {
      if (patterns.every((p) => p.test(seen))) {
        clearTimeout(timer);
        conn.onData = null;
        resolve();
      }
    };
    conn.onData = (d) => {
      seen += d;
      check();
    };
    check();
  });
}

export async function runTransport(
  o: TransportOptions,
): Promise<{ rate: Sample[]; p50: Sample[]; p99: Sample[] }> {
  const { MsnSimulator } = await import('../test/msn-sim/simulator.ts');
  const { MsnSession } = await import('../src/msnp/index.ts');
  const sim = new MsnSimulator();
  sim.addAccount(USER_EMAIL, 'userpw', { nickname: 'Bench' });
  sim.addAccount(ECHO_EMAIL, 'echopw', { nickname: 'Echo' });
  sim.makeFriends(USER_EMAIL, ECHO_EMAIL);
  const ep = await sim.start();
  const dir = join(o.root, 'jabberfly-msn');
  mkdirSync(dir);
  const server = new Jabberfly(dir, await freePort(), o.cert, {
    msn: { server: `127.0.0.1:${ep.dispatchPort}`, nexus: ep.nexusUrl },
  });
  const echo = new MsnSession({
    email: ECHO_EMAIL,
    password: 'echopw',
    server: `127.0.0.1:${ep.nsPort}`,
    nexusUrl: ep.nexusUrl,
  });
  echo.on('error', () => {});
  let conn: Conn | null = null;
  try {
    await server.prepare(['u0']);
    await server.start();
    await echo.login();
    echo.on('message', (m: { from: string; text: string }) => {
      echo.sendMessage(m.from, m.text).catch(() => {});
    });
    const t: Target = { host: '127.0.0.1', port: server.port, domain: DOMAIN, password: PASSWORD };
    conn = new Conn(t, 'u0', '127.0.0.2');
    await conn.login('msn');
    conn.write(`<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`);
    await conn.waitFor(/id=["']roster1["']/, 10000);
    conn.write(
      `<iq type='set' id='reg1' to='${MSN_DOMAIN}'><query xmlns='jabber:iq:register'><username>${USER_EMAIL}</username><password>userpw</password></query></iq>`,
    );
    const echoOnline = new RegExp(
      `<presence\\b(?=[^>]*from=["']${ECHO_JID.replace(/[.]/g, '\\.')})(?![^>]*type=)[^>]*>`,
    );
    await waitAll(
      conn,
      [
        /<iq\b[^>]*id=["']reg1["'][^>]*type=["']result|<iq\b[^>]*type=["']result["'][^>]*id=["']reg1["']/,
        echoOnline,
      ],
      30000,
      'registration and the echo buddy online',
    );
    o.log('  transport: registered with the MSN transport, echo buddy online');

    const c = conn;
    const stanza = (body: string) => `<message to='${ECHO_JID}' type='chat'><body>${body}</body></message>`;
    /** Sends with `window` in flight for the duration; returns round trips and RTT samples (µs). */
    const load = (window: number, warmupMs: number, durationMs: number) =>
      new Promise<{ count: number; samples: number[]; seconds: number }>((resolve, reject) => {
        const samples: number[] = [];
        const start = nowUs();
        const from = start + warmupMs * 1000;
        const end = from + durationMs * 1000;
        let inFlight = 0;
        let count = 0;
        let carry = '';
        let lastProgress = Date.now();
        const send = () => {
          let out = '';
          while (inFlight < window && nowUs() < end) {
            out += stanza(`${nowUs()}`);
            inFlight++;
          }
          if (out) c.write(out);
        };
        c.onData = (d) => {
          const s = carry + d;
          const re = /<body>(\d+)<\/body>/g;
          let m: RegExpExecArray | null = re.exec(s);
          let last = 0;
          const now = nowUs();
          while (m) {
            inFlight--;
            const sent = Number(m[1]);
            if (sent >= from && sent < end) {
              count++;
              samples.push(now - sent);
            }
            last = re.lastIndex;
            m = re.exec(s);
          }
          if (last) lastProgress = Date.now();
          carry = s.slice(last).slice(-4096);
          if (s.includes("type='error'") || s.includes('type="error"')) {
            reject(new Error(`error from the transport: ${s.slice(0, 400)}`));
          }
          send();
        };
        const timer = setInterval(() => {
          if (nowUs() >= end && inFlight <= 0) done();
          else if (Date.now() - lastProgress > 10000)
            done(new Error(`no echo for 10 s (${inFlight} in flight)`));
        }, 20);
        const done = (err?: Error) => {
          clearInterval(timer);
          c.onData = null;
          if (err) reject(err);
          else resolve({ count, samples, seconds: durationMs / 1000 });
        };
        send();
      });

    const rate: Sample[] = [];
    const p50: Sample[] = [];
    const p99: Sample[] = [];
    const dur = o.quick ? 3000 : 5000;
    for (let r = 0; r < o.runs; r++) {
      const a = await o.measured(server, () => load(50, 500, dur));
      const v = a.result.count / a.result.seconds;
      rate.push({ value: v, serverCpu: a.serverCpu, genCpu: a.genCpu, otherCpu: a.otherCpu });
      const b = await o.measured(server, () => load(1, 200, dur));
      const sorted = Float64Array.from(b.result.samples).sort();
      const pct = (p: number) =>
        sorted.length
          ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! / 1000
          : Number.NaN;
      p50.push({ value: pct(50), serverCpu: b.serverCpu, genCpu: b.genCpu, otherCpu: b.otherCpu });
      p99.push({ value: pct(99), serverCpu: b.serverCpu, genCpu: b.genCpu, otherCpu: b.otherCpu });
      o.log(
        `  transport run ${r + 1}: ${v.toFixed(0)} round trips/s with 50 in flight (server CPU ${a.serverCpu.toFixed(0)}%, load gen ${a.genCpu.toFixed(0)}%); one at a time p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms`,
      );
    }
    return { rate, p50, p99 };
  } finally {
    await conn?.close().catch(() => {});
    await echo.logout().catch(() => {});
    await server.stop();
    await sim.stop();
  }
}
