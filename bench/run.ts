// `npm run bench`: jabberfly, Prosody and (where Debian's package is
// installed) ejabberd side by side on this machine, the same load against
// each, one table at the end. See the "Performance"
// section of README.md, or `npm run bench -- --help`.
import { type ChildProcess, fork } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { nowUs, type Target } from './client.ts';
import { cpuPercent, mainThreadCpuSeconds, otherPercent, procSnapshot, rssBytes, type Snapshot } from './proc.ts';
import { summarizeProfile } from './profile.ts';
import {
  type BenchServer,
  children,
  DOMAIN,
  Ejabberd,
  ejabberdInstalled,
  freePort,
  Jabberfly,
  makeCertificate,
  PASSWORD,
  Prosody,
} from './servers.ts';
import { CORRESPONDENTS, fillArchive } from './archive-fill.ts';
import { runTransport, transportAvailable } from './transport.ts';
import type { Sample } from './types.ts';
import type { Command } from './worker.ts';

const HELP = `npm run bench [-- options]

Runs the same load against jabberfly, Prosody and ejabberd on this machine and
prints one table (figure × server, ratios, server CPU and load-generator CPU).

  --quick              a minute or two: 1 short run per figure, 2,000 idle connections, 200 fan-out contacts,
                       50 room messages
  --runs N             runs per figure (median reported; default 3, quick 1)
  --figures LIST       comma-separated: logins,messages,fanout,pep,muc,latency,memory,transport,archive,mamquery
                       (default: all)
  --archive-size N     messages in the archive of the mamquery figure (default 1000000, quick 200000)
  --servers LIST       jabberfly,prosody,ejabberd (default: all three; ejabberd only where Debian's
                       package is installed)
  --workers N          load-generator processes (default: max(2, cores-1), at most 8)
  --connections N      idle connections for the memory figure (default 10000, quick 2000)
  --rate N             messages/s of the latency figure (default 5000)
  --prosody-untuned    run Prosody with its defaults (Nagle's algorithm on); by default the bench runs it with
                       network_settings { nagle = false; opportunistic_writes = true }, as jabberfly sets TCP_NODELAY
  --ejabberd-untuned   run ejabberd with the c2s shaper of Debian's ejabberd.yml (normal: 3,000 B/s, bursts of
                       20,000 B) and its default listen backlog (5); by default the bench runs it with
                       shaper: none on c2s and backlog 511 (Node's)
  --profile            afterwards, run jabberfly under --cpu-prof with the message loads
                       and print where the time goes (profile kept in bench/out/); with
                       the archive figure selected, jabberfly archives while profiled
  --keep               keep the temp folder (configs, data, logs)
  --help               this text`;

const FIGURES = ['logins', 'messages', 'fanout', 'pep', 'muc', 'latency', 'memory', 'transport', 'archive', 'mamquery'] as const;
type Figure = (typeof FIGURES)[number];

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    figures: { type: 'string' },
    servers: { type: 'string' },
    workers: { type: 'string' },
    connections: { type: 'string' },
    rate: { type: 'string' },
    'archive-size': { type: 'string' },
    'prosody-untuned': { type: 'boolean', default: false },
    'ejabberd-untuned': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}

const quick = opts.quick!;
const cores = cpus().length;
const settings = {
  runs: Number(opts.runs ?? (quick ? 1 : 3)),
  workers: Number(opts.workers ?? Math.min(8, Math.max(2, cores - 1))),
  logins: { concurrency: 50, warmupMs: quick ? 500 : 1000, durationMs: quick ? 3000 : 5000 },
  messages: { window: 100, warmupMs: quick ? 500 : 1000, durationMs: quick ? 3000 : 5000 },
  fanout: { contacts: quick ? 200 : 500, updates: quick ? 40 : 60 },
  muc: { occupants: 200, messages: quick ? 50 : 100 },
  latency: {
    users: 1000,
    rate: Number(opts.rate ?? 5000),
    warmupMs: quick ? 500 : 1000,
    durationMs: quick ? 3000 : 6000,
  },
  memory: { connections: Number(opts.connections ?? (quick ? 2000 : 10000)), concurrency: 100 },
  mamQuery: { archive: Number(opts['archive-size'] ?? (quick ? 200_000 : 1_000_000)), queries: quick ? 600 : 3000, page: 50 },
};
const figures = new Set<Figure>(
  (opts.figures ?? FIGURES.join(',')).split(',').map((f) => {
    if (!(FIGURES as readonly string[]).includes(f))
      throw new Error(`unknown figure '${f}' (${FIGURES.join(', ')})`);
    return f as Figure;
  }),
);
const SERVERS = ['jabberfly', 'prosody', 'ejabberd'] as const;
type ServerName = (typeof SERVERS)[number];
const haveEjabberd = ejabberdInstalled();
const serverNames = (opts.servers ?? (haveEjabberd ? 'jabberfly,prosody,ejabberd' : 'jabberfly,prosody'))
  .split(',')
  .map((s) => {
    if (!(SERVERS as readonly string[]).includes(s)) throw new Error(`unknown server '${s}' (${SERVERS.join(', ')})`);
    return s as ServerName;
  });
if (serverNames.includes('ejabberd') && !haveEjabberd) {
  console.error("ejabberd is not installed: install Debian's package (sudo bash scripts/install-test-deps.sh) or leave it out of --servers");
  process.exit(2);
}

const log = (msg: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const percentile = (sorted: Float64Array, p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : Number.NaN;

// ---------------------------------------------------------------- cleanup
const root = mkdtempSync(join(tmpdir(), 'jabberfly-bench-'));
chmodSync(root, 0o755); // Prosody (its own user) must reach its folder inside
let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const c of [...children, ...workers]) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    } catch {}
  }
  if (!opts.keep) rmSync(root, { recursive: true, force: true });
  else log(`kept ${root}`);
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    cleanup();
    process.exit(130);
  });
}

// ---------------------------------------------------------------- workers
const workers: ChildProcess[] = [];
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
const readyWaiters: Array<() => void> = [];
let nextId = 1;
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

function startWorkers(n: number): void {
  for (let i = 0; i < n; i++) {
    const w = fork(WORKER, [], {
      execArgv: ['--import', TSX],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    w.on('message', (m: { id?: number; result?: unknown; error?: string; ready?: boolean }) => {
      if (m.ready) return readyWaiters.shift()?.();
      const p = pending.get(m.id!);
      if (!p) return;
      pending.delete(m.id!);
      if (m.error) p.reject(new Error(`worker ${i}: ${m.error}`));
      else p.resolve(m.result);
    });
    w.on('exit', (code, signal) => {
      if (!cleaned) {
        for (const p of pending.values()) p.reject(new Error(`worker ${i} exited (${code ?? signal})`));
        pending.clear();
      }
    });
    workers.push(w);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: results are per-command shapes
function call(w: number, target: Target, command: Command): Promise<any> {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    workers[w]!.send({ id, target, command });
  });
}

/** The users of `list` that worker w owns when they are dealt in contiguous blocks. */
function block<T>(list: T[], w: number, n = workers.length): T[] {
  const size = Math.ceil(list.length / n);
  return list.slice(w * size, (w + 1) * size);
}

const each = <T>(fn: (w: number) => Promise<T>) => Promise.all(workers.map((_, w) => fn(w)));

// ---------------------------------------------------------------- measurement

/** Runs `work` and returns it with the server's and the workers' CPU over it (% of one core). */
async function measured<T>(
  server: BenchServer,
  work: () => Promise<T>,
): Promise<{ result: T; serverCpu: number; genCpu: number; otherCpu: number; mainCpu: number }> {
  const pids = [server.pid, ...workers.map((w) => w.pid!), process.pid];
  const before: Snapshot = procSnapshot(pids);
  const mainBefore = mainThreadCpuSeconds(server.pid);
  const t0 = nowUs();
  const result = await work();
  windows.push([t0, nowUs()]);
  const after: Snapshot = procSnapshot(pids);
  const mainCpu = ((mainThreadCpuSeconds(server.pid) - mainBefore) / ((after.at - before.at) / 1000)) * 100;
  const cpu = cpuPercent(before, after);
  const other = otherPercent(before, after);
  otherLoad.push(other);
  if (!otherByServer.has(server.name)) otherByServer.set(server.name, []);
  otherByServer.get(server.name)!.push(other);
  return { result, serverCpu: cpu[0]!, genCpu: cpu.slice(1).reduce((a, b) => a + b, 0), otherCpu: other, mainCpu };
}
/**
 * Waits until the server is idle (under 10% of a core over 250 ms, at most
 * 15 s), so one phase's leftovers (closing sessions, queued output) do not
 * land in the next measurement.
 */
async function settle(server: BenchServer): Promise<void> {
  const deadline = Date.now() + 15000;
  let a = procSnapshot([server.pid]);
  while (Date.now() < deadline) {
    await sleep(250);
    const b = procSnapshot([server.pid]);
    if (cpuPercent(a, b)[0]! < 10) return;
    a = b;
  }
  log(`  (${server.label} still busy after 15 s; measuring anyway)`);
}
/** CPU used by the rest of the machine during every measured interval (% of one core). */
const otherLoad: number[] = [];
/** The same, per server: the servers are measured one after the other, so each saw its own share of the machine. */
const otherByServer = new Map<string, number[]>();
/** Measured intervals (µs, CLOCK_MONOTONIC), to cut the CPU profile down to them. */
let windows: Array<[number, number]> = [];

// Enough distinct users that no login reuses a session still open: the idle
// connections plus the warm-up logins, and at least the latency figure's.
const USERS = Array.from(
  { length: Math.max(settings.memory.connections + 50, settings.latency.users, 2000) },
  (_, i) => `u${i}`,
);
const FAN_SENDER = 'f0';
const FAN_CONTACTS = Array.from({ length: settings.fanout.contacts }, (_, i) => `f${i + 1}`);
const MUC_USERS = Array.from({ length: settings.muc.occupants }, (_, i) => `m${i}`);
const MUC_SENDER = MUC_USERS[0]!;
const MUC_SERVICE = `conference.${DOMAIN}`;
let cipherSeen = '';

async function connectAll(t: Target, users: string[], concurrency: number, resource = 'bench') {
  const res = await each((w) =>
    call(w, t, {
      cmd: 'connect',
      users: block(users, w),
      concurrency: Math.max(1, Math.round(concurrency / workers.length)),
      offset: w * 100_000,
      resource,
    }),
  );
  const connected = res.reduce((a, r) => a + r.connected, 0);
  const errors = res.reduce((a, r) => a + r.errors, 0);
  cipherSeen ||= res.find((r) => r.cipher)?.cipher ?? '';
  if (errors)
    log(`  ${errors} of ${users.length} logins failed: ${res.find((r) => r.firstError)?.firstError}`);
  return { connected, errors, seconds: Math.max(...res.map((r) => r.seconds)) };
}

const disconnectAll = (t: Target) => each((w) => call(w, t, { cmd: 'disconnect' }));

async function figLogins(s: BenchServer, t: Target): Promise<Sample[]> {
  const out: Sample[] = [];
  const c = settings.logins;
  for (let r = 0; r < settings.runs; r++) {
    await settle(s);
    const m = await measured(s, () =>
      each((w) =>
        call(w, t, {
          cmd: 'logins',
          users: USERS.filter((_, i) => i % workers.length === w),
          concurrency: Math.round(c.concurrency / workers.length),
          warmupMs: c.warmupMs,
          durationMs: c.durationMs,
          offset: w * 100_000 + r * 10_000,
        }),
      ),
    );
    const count = m.result.reduce((a, x) => a + x.count, 0);
    const errors = m.result.reduce((a, x) => a + x.errors, 0);
    cipherSeen ||= m.result.find((x) => x.cipher)?.cipher ?? '';
    const value = count / (c.durationMs / 1000);
    log(
      `  logins run ${r + 1}: ${value.toFixed(0)}/s (server CPU ${m.serverCpu.toFixed(0)}%, load gen ${m.genCpu.toFixed(0)}%)${errors ? `, ${errors} errors: ${m.result.find((x) => x.firstError)?.firstError}` : ''}`,
    );
    out.push({
      value,
      serverCpu: m.serverCpu,
      genCpu: m.genCpu,
      note: errors ? `${errors} errors` : undefined,
    });
  }
  return out;
}

async function figMessages(s: BenchServer, t: Target): Promise<Sample[]> {
  const out: Sample[] = [];
  const c = settings.messages;
  await settle(s);
  await call(0, t, { cmd: 'connect', users: ['u0', 'u1'], concurrency: 2, offset: 0, resource: 'msg' });
  try {
    for (let r = 0; r < settings.runs; r++) {
      await settle(s);
      const m = await measured(s, () =>
        call(0, t, {
          cmd: 'messages',
          from: 'u0',
          to: 'u1',
          window: c.window,
          warmupMs: c.warmupMs,
          durationMs: c.durationMs,
        }),
      );
      const value = m.result.count / m.result.seconds;
      log(
        `  messages run ${r + 1}: ${value.toFixed(0)}/s (server CPU ${m.serverCpu.toFixed(0)}%${m.mainCpu > 0 ? `, main thread ${((m.mainCpu / 100 / value) * 1e6).toFixed(2)} µs/message` : ''}, load gen ${m.genCpu.toFixed(0)}%)${m.result.lost ? `, ${m.result.lost} undelivered` : ''}`,
      );
      out.push({ value, serverCpu: m.serverCpu, genCpu: m.genCpu, mainCpu: m.mainCpu });
    }
  } finally {
    await disconnectAll(t);
  }
  return out;
}

/** Servers (by port) whose fan-out contacts are subscribed already, with the outcome. */
const fanoutReady = new Map<number, string | null>();

/** Subscribes every fan-out contact to the broadcaster over XMPP (once per server); false if that fails. */
async function fanoutSetup(t: Target): Promise<string | null> {
  if (!fanoutReady.has(t.port)) fanoutReady.set(t.port, await fanoutSubscribe(t));
  return fanoutReady.get(t.port)!;
}

async function fanoutSubscribe(t: Target): Promise<string | null> {
  const c = await connectAll(t, FAN_CONTACTS, 50, 'setup');
  const sender = await call(0, t, {
    cmd: 'connect',
    users: [FAN_SENDER],
    concurrency: 1,
    offset: 99_000,
    resource: 'setup',
  });
  try {
    if (c.connected < FAN_CONTACTS.length) return `only ${c.connected} contacts logged in`;
    if (sender.errors) return `the broadcaster could not log in: ${sender.firstError}`;
    const approve = call(0, t, {
      cmd: 'sub-approve',
      user: FAN_SENDER,
      expected: FAN_CONTACTS.length,
      timeoutMs: 60000,
    });
    const req = await each((w) =>
      call(w, t, {
        cmd: 'sub-request',
        to: `${FAN_SENDER}@${DOMAIN}`,
        exclude: FAN_SENDER,
        timeoutMs: 60000,
      }),
    );
    const approved = (await approve).approved as number;
    const subscribed = req.reduce((a, r) => a + r.subscribed, 0);
    if (subscribed < FAN_CONTACTS.length) {
      return `roster set-up failed: ${approved} requests seen, ${subscribed}/${FAN_CONTACTS.length} approvals delivered`;
    }
    return null;
  } finally {
    await disconnectAll(t);
  }
}

async function figFanout(s: BenchServer, t: Target): Promise<Sample[] | string> {
  const failed = await fanoutSetup(t);
  if (failed) return failed;
  const out: Sample[] = [];
  const { updates } = settings.fanout;
  for (let r = 0; r < settings.runs; r++) {
    await settle(s);
    // Fresh resources every run: a session of the previous run that the
    // server is still closing cannot conflict with these.
    await connectAll(t, FAN_CONTACTS, 50, `fan${r}`);
    const sender = await call(0, t, {
      cmd: 'connect',
      users: [FAN_SENDER],
      concurrency: 1,
      offset: 99_000,
      resource: `fan${r}`,
    });
    if (sender.errors) throw new Error(`fan-out: the broadcaster could not log in: ${sender.firstError}`);
    await sleep(1000); // the broadcaster's initial presence reaches everyone first
    await settle(s);
    try {
      const expected = workers.map((_, w) => block(FAN_CONTACTS, w).length * updates);
      const ready = workers.map(() => new Promise<void>((r) => readyWaiters.push(r)));
      const counting = each((w) =>
        call(w, t, { cmd: 'fanout-count', expected: expected[w]!, exclude: FAN_SENDER, timeoutMs: 120000 }),
      );
      await Promise.all(ready);
      const m = await measured(s, async () => {
        const sent = await call(0, t, { cmd: 'fanout-send', user: FAN_SENDER, updates });
        const counts = await counting;
        return { sent, counts };
      });
      const total = m.result.counts.reduce((a, x) => a + x.count, 0);
      const lastAt = Math.max(...m.result.counts.map((x) => x.lastAt));
      const seconds = (lastAt - m.result.sent.firstAt) / 1e6;
      const want = FAN_CONTACTS.length * updates;
      const value = total > 0 && seconds > 0 ? total / seconds : 0;
      log(
        `  fan-out run ${r + 1}: ${total}/${want} deliveries in ${seconds.toFixed(2)} s = ${value.toFixed(0)}/s (server CPU ${m.serverCpu.toFixed(0)}%, load gen ${m.genCpu.toFixed(0)}%)`,
      );
      out.push({
        value,
        serverCpu: m.serverCpu,
        genCpu: m.genCpu,
        note: total < want ? `${want - total} missing` : undefined,
      });
    } finally {
      await disconnectAll(t);
    }
  }
  return out;
}

/**
 * PEP fan-out (XEP-0163): the same 500 contacts, subscribed to the
 * publisher's presence, each send it directed presence whose XEP-0115 caps
 * ask for tune notifications (the server checks the hash with one disco#info
 * query); then the publisher publishes items back to back to its tune node
 * (default access model: presence). Deliveries per second = notifications
 * received by the contacts ÷ time from the first publish to the last
 * delivery.
 */
async function figPep(s: BenchServer, t: Target): Promise<Sample[] | string> {
  const failed = await fanoutSetup(t);
  if (failed) return failed;
  const out: Sample[] = [];
  const { updates } = settings.fanout;
  for (let r = 0; r < settings.runs; r++) {
    await settle(s);
    await connectAll(t, FAN_CONTACTS, 50, `pep${r}`);
    const sender = await call(0, t, { cmd: 'connect', users: [FAN_SENDER], concurrency: 1, offset: 99_000, resource: `pep${r}` });
    if (sender.errors) throw new Error(`pep: the publisher could not log in: ${sender.firstError}`);
    try {
      const present = await each((w) =>
        call(w, t, { cmd: 'pep-present', to: `${FAN_SENDER}@${DOMAIN}`, exclude: FAN_SENDER, feature: `urn:bench:run${r}`, timeoutMs: 10000 }),
      );
      if (present.reduce((a, p) => a + p.answered, 0) === 0) return 'the server never asked for the contacts\' caps';
      await settle(s);
      const expected = workers.map((_, w) => block(FAN_CONTACTS, w).length * updates);
      const ready = workers.map(() => new Promise<void>((res) => readyWaiters.push(res)));
      const counting = each((w) => call(w, t, { cmd: 'pep-count', expected: expected[w]!, exclude: FAN_SENDER, timeoutMs: 120000 }));
      await Promise.all(ready);
      const m = await measured(s, async () => {
        const sent = await call(0, t, { cmd: 'pep-send', user: FAN_SENDER, updates });
        const counts = await counting;
        return { sent, counts };
      });
      const total = m.result.counts.reduce((a, x) => a + x.count, 0);
      const lastAt = Math.max(...m.result.counts.map((x) => x.lastAt));
      const seconds = (lastAt - m.result.sent.firstAt) / 1e6;
      const want = FAN_CONTACTS.length * updates;
      const value = total > 0 && seconds > 0 ? total / seconds : 0;
      log(
        `  pep run ${r + 1}: ${total}/${want} notifications in ${seconds.toFixed(2)} s = ${value.toFixed(0)}/s (server CPU ${m.serverCpu.toFixed(0)}%, load gen ${m.genCpu.toFixed(0)}%)`,
      );
      out.push({ value, serverCpu: m.serverCpu, genCpu: m.genCpu, note: total < want ? `${want - total} missing` : undefined });
    } finally {
      await disconnectAll(t);
    }
  }
  return out;
}

/**
 * Group chat fan-out: every MUC user enters one room (the first creates it
 * as an instant room), then the first sends messages back to back; every
 * other occupant counts the messages it gets. Deliveries per second = those
 * messages ÷ time from the first send to the last delivery.
 */
async function figMuc(s: BenchServer, t: Target): Promise<Sample[] | string> {
  const out: Sample[] = [];
  const { messages, occupants } = settings.muc;
  for (let r = 0; r < settings.runs; r++) {
    await settle(s);
    // A fresh room and fresh resources every run.
    const room = `bench${r}@${MUC_SERVICE}`;
    const c = await connectAll(t, MUC_USERS.slice(1), 50, `muc${r}`);
    const sender = await call(0, t, {
      cmd: 'connect',
      users: [MUC_SENDER],
      concurrency: 1,
      offset: 98_000,
      resource: `muc${r}`,
    });
    try {
      if (c.connected < occupants - 1 || sender.errors)
        return `only ${c.connected + 1 - sender.errors} of ${occupants} occupants logged in`;
      await call(0, t, { cmd: 'muc-create', user: MUC_SENDER, room, timeoutMs: 30000 });
      const joins = await each((w) =>
        call(w, t, { cmd: 'muc-join', room, exclude: MUC_SENDER, timeoutMs: 60000 }),
      );
      const joined = joins.reduce((a, j) => a + j.joined, 0);
      if (joined < occupants - 1) return `only ${joined + 1} of ${occupants} occupants entered the room`;
      await settle(s);
      const others = MUC_USERS.slice(1);
      const expected = workers.map((_, w) => block(others, w).length * messages);
      const ready = workers.map(() => new Promise<void>((res) => readyWaiters.push(res)));
      const counting = each((w) =>
        call(w, t, { cmd: 'muc-count', expected: expected[w]!, exclude: MUC_SENDER, timeoutMs: 120000 }),
      );
      await Promise.all(ready);
      const m = await measured(s, async () => {
        const sent = await call(0, t, { cmd: 'muc-send', user: MUC_SENDER, room, messages });
        const counts = await counting;
        return { sent, counts };
      });
      const total = m.result.counts.reduce((a, x) => a + x.count, 0);
      const lastAt = Math.max(...m.result.counts.map((x) => x.lastAt));
      const seconds = (lastAt - m.result.sent.firstAt) / 1e6;
      const want = others.length * messages;
      const value = total > 0 && seconds > 0 ? total / seconds : 0;
      log(
        `  muc run ${r + 1}: ${total}/${want} deliveries in ${seconds.toFixed(2)} s = ${value.toFixed(0)}/s (server CPU ${m.serverCpu.toFixed(0)}%, load gen ${m.genCpu.toFixed(0)}%)`,
      );
      out.push({
        value,
        serverCpu: m.serverCpu,
        genCpu: m.genCpu,
        note: total < want ? `${want - total} missing` : undefined,
      });
    } finally {
      await disconnectAll(t);
    }
  }
  return out;
}

async function figLatency(s: BenchServer, t: Target): Promise<{ p50: Sample[]; p99: Sample[] }> {
  const c = settings.latency;
  const users = USERS.slice(0, c.users);
  const p50: Sample[] = [];
  const p99: Sample[] = [];
  await settle(s);
  const conn = await connectAll(t, users, 100, 'lat');
  log(`  latency: ${conn.connected} users connected in ${conn.seconds.toFixed(1)} s`);
  try {
    for (let r = 0; r < settings.runs; r++) {
      await settle(s);
      const m = await measured(s, () =>
        each((w) =>
          call(w, t, {
            cmd: 'latency',
            rate: c.rate / workers.length,
            warmupMs: c.warmupMs,
            durationMs: c.durationMs,
          }),
        ),
      );
      const all = new Float64Array(m.result.flatMap((x) => x.samples as number[]));
      all.sort();
      const sent = m.result.reduce((a, x) => a + x.sent, 0);
      const received = m.result.reduce((a, x) => a + x.received, 0);
      const a50 = percentile(all, 50) / 1000;
      const a99 = percentile(all, 99) / 1000;
      const note = received < sent ? `${sent - received} of ${sent} undelivered` : undefined;
      log(
        `  latency run ${r + 1}: p50 ${a50.toFixed(2)} ms, p99 ${a99.toFixed(2)} ms over ${all.length} messages (server CPU ${m.serverCpu.toFixed(0)}%, load gen ${m.genCpu.toFixed(0)}%)${note ? `, ${note}` : ''}`,
      );
      p50.push({ value: a50, serverCpu: m.serverCpu, genCpu: m.genCpu, note });
      p99.push({ value: a99, serverCpu: m.serverCpu, genCpu: m.genCpu, note });
    }
  } finally {
    await disconnectAll(t);
  }
  return { p50, p99 };
}

/**
 * Messages/s as in figMessages on a second instance of the server with
 * archiving on (jabberfly's MAM, Prosody's mod_mam with Debian's default
 * storage), next to the same load with archiving off on a fresh instance.
 */
async function figArchive(make: (archive: boolean) => Promise<BenchServer>, name: string): Promise<void> {
  const per: Record<string, Sample[]> = {};
  // Many users, each writing now and then (the latency load), is the other
  // shape of an archive's work: each message goes to a different pair of
  // archives, so little is gathered per write. Its figure is the server's
  // CPU at that fixed rate. Prosody's mod_mam cannot keep that rate (see the
  // messages/s row), so it is measured on jabberfly only.
  const spread = name === 'jabberfly';
  const cpu: Record<string, Sample[]> = {};
  for (const archive of [false, true]) {
    const s = await make(archive);
    const t: Target = { host: '127.0.0.1', port: s.port, domain: DOMAIN, password: PASSWORD };
    await s.prepare(spread ? USERS.slice(0, Math.max(2, settings.latency.users)) : ['u0', 'u1']);
    await s.start();
    log(`${s.label} running (pid ${s.pid}, port ${s.port})`);
    try {
      per[archive ? 'on' : 'off'] = await figMessages(s, t);
      if (spread) {
        const { p50 } = await figLatency(s, t);
        cpu[archive ? 'on' : 'off'] = p50.map((x) => ({ ...x, value: x.serverCpu }));
      }
    } finally {
      await s.stop();
    }
  }
  const why = 'n/a (mod_mam cannot keep this rate)';
  put('archiveCpuOff', name, spread ? cpu.off! : why);
  put('archiveCpuOn', name, spread ? cpu.on! : why);
  put('archiveOff', name, per.off!);
  put('archiveOn', name, per.on!);
  // What archiving adds to the thread that handles every stanza, per message
  // (the process figure also counts LevelDB's and the collector's threads,
  // which run beside it on the other core). ejabberd spreads its work over
  // the BEAM's scheduler threads: no one thread to read.
  const perMessage = (xs: Sample[]) => xs.map((x) => ({ ...x, value: (x.mainCpu! / 100 / x.value) * 1e6 }));
  const threads = name === 'ejabberd' ? 'n/a (work spread over the BEAM schedulers)' : null;
  put('archiveMainOff', name, threads ?? perMessage(per.off!));
  put('archiveMainOn', name, threads ?? perMessage(per.on!));
  const off = median(per.off!.map((x) => x.value));
  put(
    'archiveKept',
    name,
    per.on!.map((x) => ({ ...x, value: (x.value / off) * 100 })),
  );
}

/** MAM query latency on jabberfly with one archive of settings.mamQuery.archive messages. */
async function figMamQuery(dir: string, cert: { crt: string; key: string }): Promise<void> {
  const c = settings.mamQuery;
  const s = new Jabberfly(dir, await freePort(), cert, { archive: true });
  const t: Target = { host: '127.0.0.1', port: s.port, domain: DOMAIN, password: PASSWORD };
  await s.prepare(['u0']);
  log(`filling an archive of ${c.archive.toLocaleString('en')} messages through the store`);
  const filled = Date.now();
  const ids = await fillArchive(dir, `u0@${DOMAIN}`, c.archive);
  log(`  filled in ${((Date.now() - filled) / 1000).toFixed(1)} s`);
  await s.start();
  const correspondents = Array.from({ length: CORRESPONDENTS }, (_, i) => `c${i}@${DOMAIN}`);
  const p50: Sample[] = [];
  const p99: Sample[] = [];
  try {
    await call(0, t, { cmd: 'connect', users: ['u0'], concurrency: 1, offset: 0, resource: 'bench' });
    // A first pass warms the server's code and LevelDB's block cache, as a running server would be.
    await call(0, t, { cmd: 'mam-query', user: 'u0', ids, correspondents, queries: 100, page: c.page });
    for (let r = 0; r < settings.runs; r++) {
      await settle(s);
      const m = await measured(s, () =>
        call(0, t, { cmd: 'mam-query', user: 'u0', ids, correspondents, queries: c.queries, page: c.page }),
      );
      const all = new Float64Array(m.result.samples as number[]);
      all.sort();
      const perPage = m.result.results / all.length;
      const a50 = percentile(all, 50) / 1000;
      const a99 = percentile(all, 99) / 1000;
      const note = perPage < c.page * 0.9 ? `only ${perPage.toFixed(1)} results per page` : undefined;
      const kinds = (m.result.byKind as number[][]).map((xs, k) => {
        const sorted = new Float64Array(xs).sort();
        return `${['after id', 'before id', 'last page with'][k]} p50 ${(percentile(sorted, 50) / 1000).toFixed(2)} / p99 ${(percentile(sorted, 99) / 1000).toFixed(2)}`;
      });
      log(
        `  MAM query run ${r + 1}: p50 ${a50.toFixed(2)} ms, p99 ${a99.toFixed(2)} ms over ${all.length} queries, ${perPage.toFixed(1)} results per page (server CPU ${m.serverCpu.toFixed(0)}%); ${kinds.join('; ')}`,
      );
      p50.push({ value: a50, serverCpu: m.serverCpu, genCpu: m.genCpu, note });
      p99.push({ value: a99, serverCpu: m.serverCpu, genCpu: m.genCpu, note });
    }
  } finally {
    await disconnectAll(t);
    await s.stop();
  }
  put('mamP50', 'jabberfly', p50);
  put('mamP99', 'jabberfly', p99);
}

/** One memory run on a freshly started server: RSS before and after N idle authenticated connections. */
async function memoryRun(s: BenchServer, t: Target, r: number): Promise<Sample> {
  const n = settings.memory.connections;
  await s.start();
  try {
    // Warm up (code paths, TLS contexts, module state) before the baseline.
    await connectAll(t, USERS.slice(n, n + 50).concat(USERS.slice(0, 50)), 50, 'warm');
    await disconnectAll(t);
    await sleep(1000);
    await settle(s);
    const before = rssBytes(s.pid);
    const m = await measured(s, () => connectAll(t, USERS.slice(0, n), settings.memory.concurrency, 'idle'));
    await sleep(3000);
    const samples: number[] = [];
    for (let i = 0; i < 3; i++) {
      samples.push(rssBytes(s.pid));
      await sleep(500);
    }
    const after = median(samples);
    const per = (after - before) / 1024 / m.result.connected;
    log(
      `  memory run ${r + 1}: RSS ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB with ${m.result.connected} connections = ${per.toFixed(1)} KiB each (connected in ${m.result.seconds.toFixed(1)} s)`,
    );
    return {
      value: per,
      serverCpu: m.serverCpu,
      genCpu: m.genCpu,
      note: m.result.connected < n ? `${n - m.result.connected} failed` : undefined,
    };
  } finally {
    await disconnectAll(t);
    await s.stop();
  }
}

// ---------------------------------------------------------------- table
type Row = { figure: string; better: 'higher' | 'lower'; unit: string; digits: number };
const ROWS: Record<string, Row> = {
  logins: {
    figure: 'logins/s (STARTTLS+SCRAM-SHA-1+bind+presence, 50 concurrent)',
    better: 'higher',
    unit: '',
    digits: 0,
  },
  messages: { figure: 'messages/s one-to-one (window 100)', better: 'higher', unit: '', digits: 0 },
  fanout: {
    figure: `presence fan-out deliveries/s (${settings.fanout.contacts} contacts)`,
    better: 'higher',
    unit: '',
    digits: 0,
  },
  pep: {
    figure: `PEP publish fan-out deliveries/s (${settings.fanout.contacts} contacts, +notify caps)`,
    better: 'higher',
    unit: '',
    digits: 0,
  },
  muc: {
    figure: `group chat fan-out deliveries/s (${settings.muc.occupants}-occupant room, ${settings.muc.messages} messages)`,
    better: 'higher',
    unit: '',
    digits: 0,
  },
  p50: {
    figure: `latency p50, ms (${settings.latency.rate} msg/s, ${settings.latency.users} users)`,
    better: 'lower',
    unit: '',
    digits: 2,
  },
  p99: {
    figure: `latency p99, ms (${settings.latency.rate} msg/s, ${settings.latency.users} users)`,
    better: 'lower',
    unit: '',
    digits: 2,
  },
  memory: {
    figure: `KiB RSS per idle authenticated connection (${settings.memory.connections.toLocaleString('en')})`,
    better: 'lower',
    unit: '',
    digits: 1,
  },
  archiveOff: {
    figure: 'messages/s one-to-one, archiving off (fresh server, window 100)',
    better: 'higher',
    unit: '',
    digits: 0,
  },
  archiveOn: {
    figure: 'messages/s one-to-one, archiving on (jabberfly MAM; Prosody mod_mam, default storage; ejabberd mod_mam, Mnesia)',
    better: 'higher',
    unit: '',
    digits: 0,
  },
  archiveMainOff: {
    figure: 'server main-thread CPU µs per message one-to-one, archiving off',
    better: 'lower',
    unit: '',
    digits: 2,
  },
  archiveMainOn: {
    figure: 'server main-thread CPU µs per message one-to-one, archiving on',
    better: 'lower',
    unit: '',
    digits: 2,
  },
  archiveCpuOff: {
    figure: `server CPU %, ${settings.latency.rate.toLocaleString('en')} messages/s among ${settings.latency.users.toLocaleString('en')} users, archiving off`,
    better: 'lower',
    unit: '',
    digits: 0,
  },
  archiveCpuOn: {
    figure: `server CPU %, ${settings.latency.rate.toLocaleString('en')} messages/s among ${settings.latency.users.toLocaleString('en')} users, archiving on`,
    better: 'lower',
    unit: '',
    digits: 0,
  },
  archiveKept: {
    figure: 'messages/s kept with archiving on, % of off',
    better: 'higher',
    unit: '',
    digits: 1,
  },
  mamP50: {
    figure: `MAM query p50, ms (page of ${settings.mamQuery.page} from a ${settings.mamQuery.archive.toLocaleString('en')}-message archive)`,
    better: 'lower',
    unit: '',
    digits: 2,
  },
  mamP99: {
    figure: `MAM query p99, ms (page of ${settings.mamQuery.page} from a ${settings.mamQuery.archive.toLocaleString('en')}-message archive)`,
    better: 'lower',
    unit: '',
    digits: 2,
  },
  msnRate: {
    figure: 'MSN transport: round trips/s, XMPP → MSN buddy → XMPP (50 in flight)',
    better: 'higher',
    unit: '',
    digits: 0,
  },
  msnP50: {
    figure: 'MSN transport: round-trip p50, ms (one at a time)',
    better: 'lower',
    unit: '',
    digits: 2,
  },
  msnP99: {
    figure: 'MSN transport: round-trip p99, ms (one at a time)',
    better: 'lower',
    unit: '',
    digits: 2,
  },
};
type Cell = Sample[] | string;
const results = new Map<string, Map<string, Cell>>(); // row → server → samples or "n/a (...)"

function put(row: string, server: string, cell: Cell): void {
  if (!results.has(row)) results.set(row, new Map());
  results.get(row)!.set(server, cell);
}

function fmt(x: number, digits: number): string {
  return x.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cellText(cell: Cell | undefined, digits: number): string {
  if (cell === undefined) return '—';
  if (typeof cell === 'string') return cell;
  const vals = cell.map((c) => c.value);
  let s = fmt(median(vals), digits);
  if (vals.length > 1) s += ` (${fmt(Math.min(...vals), digits)}–${fmt(Math.max(...vals), digits)})`;
  const notes = cell.map((c) => c.note).filter(Boolean);
  if (notes.length) s += ` ⚠ ${notes[0]}`;
  return s;
}

function cpuText(cell: Cell | undefined): string {
  if (!cell || typeof cell === 'string') return '—';
  return `${median(cell.map((c) => c.serverCpu)).toFixed(0)}% / ${median(cell.map((c) => c.genCpu)).toFixed(0)}%`;
}

const SHORT: Record<ServerName, string> = { jabberfly: 'jabberfly', prosody: 'Prosody', ejabberd: 'ejabberd' };

function table(labels: Record<string, string>): string {
  const names = serverNames;
  // One ratio column per peer, jabberfly's figure over the peer's.
  const peers = names.includes('jabberfly') ? names.filter((n) => n !== 'jabberfly') : [];
  const head = ['figure', ...names.map((n) => labels[n] ?? n)];
  for (const p of peers) head.push(`jabberfly / ${SHORT[p]}`);
  for (const n of names) head.push(`${labels[n] ?? n}: server CPU / load-gen CPU`);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const [key, row] of Object.entries(ROWS)) {
    const per = results.get(key);
    if (!per) continue;
    const cols = [`${row.figure} (${row.better} is better)`];
    for (const n of names) cols.push(cellText(per.get(n), row.digits));
    for (const p of peers) {
      const a = per.get('jabberfly');
      const b = per.get(p);
      cols.push(
        Array.isArray(a) && Array.isArray(b) && a.length && b.length
          ? `${(median(a.map((x) => x.value)) / median(b.map((x) => x.value))).toFixed(2)}×`
          : 'n/a',
      );
    }
    for (const n of names) cols.push(cpuText(per.get(n)));
    lines.push(`| ${cols.join(' | ')} |`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- main
async function benchServer(s: BenchServer): Promise<void> {
  const t: Target = { host: '127.0.0.1', port: s.port, domain: DOMAIN, password: PASSWORD };
  log(`${s.label}: creating ${USERS.length + 1 + FAN_CONTACTS.length + MUC_USERS.length} users`);
  await s.prepare([...USERS, FAN_SENDER, ...FAN_CONTACTS, ...MUC_USERS]);
  if (figures.has('memory')) {
    const samples: Sample[] = [];
    for (let r = 0; r < settings.runs; r++) samples.push(await memoryRun(s, t, r));
    put('memory', s.name, samples);
  }
  const main = (['logins', 'messages', 'fanout', 'pep', 'muc', 'latency'] as const).filter((f) => figures.has(f));
  if (main.length) {
    await s.start();
    log(`${s.label} running (pid ${s.pid}, port ${s.port})`);
    try {
      if (figures.has('logins')) put('logins', s.name, await figLogins(s, t));
      if (figures.has('messages')) put('messages', s.name, await figMessages(s, t));
      if (figures.has('latency')) {
        const l = await figLatency(s, t);
        put('p50', s.name, l.p50);
        put('p99', s.name, l.p99);
      }
      if (figures.has('fanout')) {
        const f = await figFanout(s, t);
        put('fanout', s.name, typeof f === 'string' ? `n/a (${f})` : f);
        if (typeof f === 'string') log(`  fan-out: ${f}`);
      }
      if (figures.has('pep')) {
        let f = await figPep(s, t);
        // ejabberd 23.01's mod_caps sends its disco#info only for a local user's own
        // broadcast presence (user_send_packet), never for the directed presence
        // this figure sends, so no +notify is learnt and no item is delivered.
        if (typeof f === 'string' && s.name === 'ejabberd')
          f = `${f}: ejabberd 23.01 queries caps only on a user's broadcast presence, not on directed presence`;
        put('pep', s.name, typeof f === 'string' ? `n/a (${f})` : f);
        if (typeof f === 'string') log(`  pep: ${f}`);
      }
      if (figures.has('muc')) {
        const f = await figMuc(s, t);
        put('muc', s.name, typeof f === 'string' ? `n/a (${f})` : f);
        if (typeof f === 'string') log(`  muc: ${f}`);
      }
    } finally {
      await s.stop();
    }
  }
}

async function profileJabberfly(cert: { crt: string; key: string }): Promise<string> {
  const dir = join(root, 'jabberfly-profile');
  const profDir = join(root, 'cpuprof');
  mkdirSync(dir);
  mkdirSync(profDir);
  const s = new Jabberfly(dir, await freePort(), cert, { archive: figures.has('archive') });
  const t: Target = { host: '127.0.0.1', port: s.port, domain: DOMAIN, password: PASSWORD };
  await s.prepare(USERS.slice(0, settings.latency.users));
  await s.start({ cpuProfDir: profDir });
  log(`profiling jabberfly (pid ${s.pid}) under the message and latency loads`);
  const saved = settings.runs;
  settings.runs = 1;
  windows = [];
  try {
    await figMessages(s, t);
    await figLatency(s, t);
  } finally {
    settings.runs = saved;
    await s.stop();
  }
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return 'no .cpuprofile was written (did jabberfly exit cleanly?)';
  const outDir = fileURLToPath(new URL('./out/', import.meta.url));
  mkdirSync(outDir, { recursive: true });
  const kept = join(outDir, `jabberfly-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  cpSync(join(profDir, file), kept);
  return `${summarizeProfile(kept, windows)}\nprofile kept at ${kept} (open in Chrome DevTools → Performance, or speedscope)`;
}

async function main(): Promise<void> {
  const started = Date.now();
  const cert = makeCertificate(join(root, 'cert'));
  startWorkers(settings.workers);
  log(
    `${cores} cores, ${settings.workers} load-generator workers, ${settings.runs} run(s) per figure, temp ${root}`,
  );
  if (!opts.servers && !haveEjabberd)
    log("ejabberd is not installed (Debian's package: scripts/install-test-deps.sh): comparing jabberfly and Prosody only");
  const labels: Record<string, string> = {};
  const make = async (name: ServerName, dir: string, archive = false): Promise<BenchServer> =>
    name === 'jabberfly'
      ? new Jabberfly(dir, await freePort(), cert, { archive })
      : name === 'prosody'
        ? new Prosody(dir, await freePort(), cert, !opts['prosody-untuned'], archive)
        : new Ejabberd(dir, await freePort(), cert, !opts['ejabberd-untuned'], archive);
  for (const name of serverNames) {
    const dir = join(root, name);
    mkdirSync(dir);
    const s = await make(name, dir);
    labels[name] = s.label;
    if ([...figures].some((f) => f !== 'transport' && f !== 'archive' && f !== 'mamquery')) await benchServer(s);
    if (figures.has('archive')) {
      let n = 0;
      await figArchive(async (archive) => {
        const d = join(root, `${name}-archive-${n++}`);
        mkdirSync(d);
        return make(name, d, archive);
      }, name);
    }
    if (figures.has('mamquery')) {
      if (name === 'jabberfly') {
        const d = join(root, 'jabberfly-mamquery');
        mkdirSync(d);
        await figMamQuery(d, cert);
      } else {
        for (const row of ['mamP50', 'mamP99']) put(row, name, 'n/a (not measured: see README)');
      }
    }
  }
  if (figures.has('transport')) {
    const available = transportAvailable();
    for (const name of serverNames) {
      if (name !== 'jabberfly') {
        for (const row of ['msnRate', 'msnP50', 'msnP99']) put(row, name, 'n/a (no MSN transport)');
      } else if (available !== true) {
        for (const row of ['msnRate', 'msnP50', 'msnP99'])
          put(row, name, `n/a (transport not available: ${available})`);
      } else {
        const r = await runTransport({ root, cert, runs: settings.runs, quick, log, measured }).catch(
          (err: Error) => `n/a (transport run failed: ${err.message.split('\n')[0]})`,
        );
        if (typeof r === 'string') {
          log(r);
          for (const row of ['msnRate', 'msnP50', 'msnP99']) put(row, name, r);
        } else {
          put('msnRate', name, r.rate);
          put('msnP50', name, r.p50);
          put('msnP99', name, r.p99);
        }
      }
    }
  }
  const profile = opts.profile ? await profileJabberfly(cert) : null;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    '',
    `${serverNames.map((n) => SHORT[n]).join(' vs ')} — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cores} cores (${cpu.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`,
    `${quick ? 'quick mode' : 'full mode'}: median of ${settings.runs} run(s), (min–max) when more than one; ${settings.workers} load-generator processes; TLS: ${cipherSeen || '?'}`,
    'CPU columns: % of one core over the measured interval, server process / all load-generator processes together.',
    `Other processes on this machine used a median ${otherLoad.length ? median(otherLoad).toFixed(0) : '?'}% (max ${otherLoad.length ? Math.max(...otherLoad).toFixed(0) : '?'}%) of one core during the measurements${otherLoad.length && median(otherLoad) > 15 ? ' — the machine was NOT quiet: treat these figures as preliminary' : ''}.`,
    ...(otherByServer.size > 1
      ? [
          `Per server: ${[...otherByServer]
            .map(([n, xs]) => `${SHORT[n as ServerName] ?? n} median ${median(xs).toFixed(0)}% (max ${Math.max(...xs).toFixed(0)}%)`)
            .join(', ')}.`,
        ]
      : []),
    '',
    table(labels),
    '',
    `bench took ${((Date.now() - started) / 1000).toFixed(0)} s`,
  ];
  console.log(lines.join('\n'));
  if (profile)
    console.log(`\nWhere jabberfly spends its time under the message loads (self time):\n${profile}`);
}

main()
  .then(async () => {
    for (const w of workers) w.disconnect();
    cleanup();
    process.exit(0);
  })
  .catch((err: Error) => {
    console.error(`bench failed: ${err.stack ?? err}`);
    cleanup();
    process.exit(1);
  });
