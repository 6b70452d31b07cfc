// `npm run bench:cluster`: cluster mode on this machine. Starts Debian's
// PostgreSQL (as the `postgres` user, temp folder, loopback, free port) and
// redis-server (loopback, free port, no persistence), then measures
// jabberfly over them:
//
//   - logins/s and messages/s with `jabberfly start --workers W` for W in
//     1, 2 and the number of cores (one node per worker, sharing the port);
//   - messages/s across two nodes: two `jabberfly start` processes (their
//     own ports), every sender on node 1 and every receiver on node 2;
//   - for reference, the same loads on one process with LevelDB and no Redis
//     (the default set-up, what `npm run bench` measures).
//
// The load is the one `npm run bench` uses (bench/worker.ts: raw TLS
// sockets, SCRAM, TCP_NODELAY). logins/s: 50 clients in a loop, each a full
// TLS + SCRAM + bind + presence + ping login. messages/s: PAIRS sender →
// receiver pairs, each keeping 100 messages in flight; deliveries per
// second summed over the pairs. Server CPU is the supervisor and every
// worker together. Every process it starts is stopped by its PID on exit.
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Target } from './client.ts';
import { cpuPercent, otherPercent, procSnapshot } from './proc.ts';
import { children, DOMAIN, freePort, makeCertificate, PASSWORD, waitReady } from './servers.ts';
import type { Command } from './worker.ts';

const HELP = `npm run bench:cluster [-- options]

  --quick          1 short run per figure
  --runs N         runs per figure (median reported; default 3, quick 1)
  --workers LIST   worker counts to measure (default: 1,2,<cores>)
  --pairs N        sender/receiver pairs of the messages figures (default 8)
  --gen N          load-generator processes (default: max(2, cores-1), at most 8)
  --keep           keep the temp folder`;

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    workers: { type: 'string' },
    pairs: { type: 'string' },
    gen: { type: 'string' },
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
const runs = Number(opts.runs ?? (quick ? 1 : 3));
const genCount = Number(opts.gen ?? Math.min(8, Math.max(2, cores - 1)));
const workerCounts = [...new Set((opts.workers ?? `1,2,${cores}`).split(',').map(Number))].sort((a, b) => a - b);
const PAIRS = Number(opts.pairs ?? 8);
const LOGINS = { concurrency: 50, warmupMs: quick ? 500 : 1000, durationMs: quick ? 3000 : 5000 };
const MESSAGES = { window: 100, warmupMs: quick ? 500 : 1000, durationMs: quick ? 3000 : 5000 };
const USERS = Array.from({ length: 2000 }, (_, i) => `u${i}`);
const BIN = fileURLToPath(new URL('../bin/jabberfly.js', import.meta.url));

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---------------------------------------------------------------- cleanup
const root = mkdtempSync(join(tmpdir(), 'jabberfly-bench-cluster-'));
chmodSync(root, 0o755);
const gens: ChildProcess[] = [];
/** PIDs of PostgreSQL and redis-server, stopped by PID at exit. */
const peers: number[] = [];
let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const c of [...children, ...gens]) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    } catch {}
  }
  for (const pid of peers) {
    try {
      process.kill(pid, 'SIGTERM');
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

// ---------------------------------------------------------------- peers
function ids(user: string): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', user]).toString().trim()),
    gid: Number(execFileSync('id', ['-g', user]).toString().trim()),
  };
}

async function startPostgres(): Promise<number> {
  const { uid, gid } = ids('postgres');
  const dir = join(root, 'pg');
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  execFileSync('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'], {
    uid,
    gid,
    stdio: 'pipe',
  });
  const port = await freePort();
  // Durable commits as a site would run it (fsync on), loopback only.
  const proc = spawn(
    'postgres',
    ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', '-c', 'shared_buffers=256MB'],
    { uid, gid, stdio: ['ignore', 'ignore', 'ignore'] },
  );
  peers.push(proc.pid!);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    try {
      await c.connect();
      await c.end();
      return port;
    } catch {
      await c.end().catch(() => {});
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error('PostgreSQL did not start');
      await sleep(200);
    }
  }
}

async function startRedis(): Promise<number> {
  const dir = join(root, 'redis');
  mkdirSync(dir);
  const port = await freePort();
  const proc = spawn(
    '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  peers.push(proc.pid!);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      if (/Ready to accept connections/.test(out)) resolve();
    });
    proc.once('exit', () => reject(new Error(`redis-server exited: ${out}`)));
  });
  return port;
}

let dbCounter = 0;
/** A fresh database with the bench users (the same SCRAM record for all, as bench/servers.ts writes). */
async function freshDatabase(pgPort: number): Promise<string> {
  const name = `bench_${++dbCounter}`;
  const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE template0`);
  await admin.end();
  const url = `postgres://postgres@127.0.0.1:${pgPort}/${name}`;
  const { PgBackend } = await import('../src/storage/pg.ts');
  const { deriveCredentials, SCRAM_HASHES } = await import('../src/auth/scram.ts');
  const backend = await PgBackend.open(url);
  try {
    const scram: Record<string, unknown> = {};
    for (const h of SCRAM_HASHES) scram[h] = deriveCredentials(h, PASSWORD);
    const kv = backend.keyValue<unknown>('accounts');
    const created = new Date().toISOString();
    for (let i = 0; i < USERS.length; i += 200) {
      await Promise.all(USERS.slice(i, i + 200).map((u) => kv.set(u, { scram, created })));
    }
  } finally {
    await backend.close();
  }
  return url;
}

// ---------------------------------------------------------------- servers
interface Running {
  label: string;
  port: number;
  child: ChildProcess;
  out: () => string;
  /** The server's processes (supervisor and workers) right now. */
  pids(): number[];
}

function writeConfig(dir: string, port: number, storage: string, cluster: string): string {
  mkdirSync(join(dir, 'certs'), { recursive: true });
  copyFileSync(join(root, 'cert', `${DOMAIN}.crt`), join(dir, 'certs', `${DOMAIN}.crt`));
  copyFileSync(join(root, 'cert', `${DOMAIN}.key`), join(dir, 'certs', `${DOMAIN}.key`));
  const file = join(dir, 'jabberfly.yaml');
  writeFileSync(
    file,
    `# Written by bench/cluster.ts
domain: ${DOMAIN}
listen: ["127.0.0.1"]
storage:
${storage}
tls:
  dir: "${join(dir, 'certs')}"
c2s:
  port: ${port}
  directTlsPort: false
  requireTls: true
s2s: { port: false }
http: { port: false }
https: { port: false }
limits:
  maxConnectionsPerIp: 1000000
  authTimeout: 120
mam: { enabled: false }
msn: { enabled: false }
upload: { enabled: false }
muc: { enabled: false }
${cluster}log:
  level: warn
`,
  );
  return file;
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function startServer(label: string, file: string, port: number, workers: number, redisUrl: string | null): Promise<Running> {
  const args = [BIN, 'start', '--config', file, ...(workers > 1 ? ['--workers', String(workers)] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  children.add(child);
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  await waitReady(port, child, () => out, 120_000);
  if (redisUrl && workers > 1) {
    // Every worker in the cluster before measuring (the port answers as soon as the first one listens).
    const r = new Redis(redisUrl);
    const deadline = Date.now() + 120_000;
    while ((await r.zcard('jf:nodes')) < workers) {
      if (Date.now() > deadline) throw new Error(`only ${await r.zcard('jf:nodes')} of ${workers} workers joined:\n${out.slice(-3000)}`);
      await sleep(200);
    }
    r.disconnect();
  }
  return { label, port, child, out: () => out, pids: () => [child.pid!, ...childPids(child.pid!)] };
}

async function stopServer(s: Running): Promise<void> {
  if (s.child.exitCode === null && s.child.signalCode === null) {
    const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
    s.child.kill('SIGTERM');
    const t = setTimeout(() => s.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }
  children.delete(s.child);
}

// ---------------------------------------------------------------- load generator
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextId = 1;
function startGens(): void {
  const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
  for (let i = 0; i < genCount; i++) {
    const w = fork(WORKER, [], { execArgv: ['--import', import.meta.resolve('tsx')], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    w.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
      const p = m.id !== undefined ? pending.get(m.id) : undefined;
      if (!p) return;
      pending.delete(m.id!);
      if (m.error) p.reject(new Error(`load generator ${i}: ${m.error}`));
      else p.resolve(m.result);
    });
    gens.push(w);
  }
}
// biome-ignore lint/suspicious/noExplicitAny: results are per-command shapes
function call(w: number, target: Target, command: Command): Promise<any> {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    gens[w]!.send({ id, target, command });
  });
}
const target = (port: number): Target => ({ host: '127.0.0.1', port, domain: DOMAIN, password: PASSWORD });

interface Sample {
  value: number;
  serverCpu: number;
  otherCpu: number;
}

async function measured<T>(servers: Running[], work: () => Promise<T>): Promise<{ result: T; serverCpu: number; otherCpu: number }> {
  const pids = servers.flatMap((s) => s.pids());
  const all = [...pids, ...gens.map((g) => g.pid!), process.pid];
  const before = procSnapshot(all);
  const result = await work();
  const after = procSnapshot(all);
  const cpu = cpuPercent(before, after);
  return { result, serverCpu: cpu.slice(0, pids.length).reduce((a, b) => a + b, 0), otherCpu: otherPercent(before, after) };
}

async function figLogins(s: Running): Promise<Sample[]> {
  const out: Sample[] = [];
  for (let r = 0; r < runs; r++) {
    await sleep(1000);
    const m = await measured([s], () =>
      Promise.all(
        gens.map((_, w) =>
          call(w, target(s.port), {
            cmd: 'logins',
            users: USERS.filter((_, i) => i % gens.length === w),
            concurrency: Math.round(LOGINS.concurrency / gens.length),
            warmupMs: LOGINS.warmupMs,
            durationMs: LOGINS.durationMs,
            offset: w * 100_000 + r * 10_000,
          }),
        ),
      ),
    );
    const count = m.result.reduce((a, x) => a + x.count, 0);
    const errors = m.result.reduce((a, x) => a + x.errors, 0);
    const value = count / (LOGINS.durationMs / 1000);
    log(`  ${s.label}: logins run ${r + 1}: ${value.toFixed(0)}/s (server CPU ${m.serverCpu.toFixed(0)}%)${errors ? `, ${errors} errors: ${m.result.find((x) => x.firstError)?.firstError}` : ''}`);
    out.push({ value, serverCpu: m.serverCpu, otherCpu: m.otherCpu });
  }
  return out;
}

/** PAIRS pairs: sender u(2i) on `from`, receiver u(2i+1) on `to`; pairs dealt over the load generators. */
async function figMessages(from: Running, to: Running): Promise<Sample[]> {
  const out: Sample[] = [];
  const pairs = Array.from({ length: PAIRS }, (_, i) => ({ a: `u${1000 + 2 * i}`, b: `u${1001 + 2 * i}`, w: i % gens.length }));
  for (const p of pairs) {
    await call(p.w, target(from.port), { cmd: 'connect', users: [p.a], concurrency: 1, offset: p.w * 100_000 + 50_000, resource: 'msg' });
    await call(p.w, target(to.port), { cmd: 'connect', users: [p.b], concurrency: 1, offset: p.w * 100_000 + 60_000, resource: 'msg' });
  }
  const servers = from === to ? [from] : [from, to];
  try {
    for (let r = 0; r < runs; r++) {
      await sleep(1000);
      const m = await measured(servers, () =>
        Promise.all(
          pairs.map((p) =>
            call(p.w, target(from.port), {
              cmd: 'messages',
              from: p.a,
              to: p.b,
              window: MESSAGES.window,
              warmupMs: MESSAGES.warmupMs,
              durationMs: MESSAGES.durationMs,
            }),
          ),
        ),
      );
      const value = m.result.reduce((a, x) => a + x.count / x.seconds, 0);
      const lost = m.result.reduce((a, x) => a + x.lost, 0);
      log(`  ${from.label}${from === to ? '' : ` → ${to.label}`}: messages run ${r + 1}: ${value.toFixed(0)}/s (server CPU ${m.serverCpu.toFixed(0)}%)${lost ? `, ${lost} undelivered` : ''}`);
      out.push({ value, serverCpu: m.serverCpu, otherCpu: m.otherCpu });
    }
  } finally {
    await Promise.all(gens.map((_, w) => call(w, target(from.port), { cmd: 'disconnect' })));
  }
  return out;
}

// ---------------------------------------------------------------- report
const rows: Array<{ setup: string; logins?: Sample[]; messages?: Sample[] }> = [];
const fmt = (xs: Sample[] | undefined) => {
  if (!xs?.length) return '—';
  const v = median(xs.map((x) => x.value));
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const range = xs.length > 1 ? ` (${n(Math.min(...xs.map((x) => x.value)))}–${n(Math.max(...xs.map((x) => x.value)))})` : '';
  return `${n(v)}${range}`;
};
const cpuOf = (xs: Sample[] | undefined) => (xs?.length ? `${median(xs.map((x) => x.serverCpu)).toFixed(0)}%` : '—');

async function main(): Promise<void> {
  const started = Date.now();
  makeCertificate(join(root, 'cert'));
  log(`${cores} cores; starting PostgreSQL and redis-server on loopback`);
  const [pgPort, redisPort] = await Promise.all([startPostgres(), startRedis()]);
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  startGens();
  log(`${genCount} load-generator processes, ${runs} run(s) per figure, ${PAIRS} message pairs`);

  // The default set-up, for reference.
  {
    const dir = join(root, 'single');
    mkdirSync(dir);
    const port = await freePort();
    const file = writeConfig(dir, port, `  path: "${join(dir, 'storage')}"`, '');
    const { LevelBackend } = await import('../src/storage/level.ts');
    const { deriveCredentials, SCRAM_HASHES } = await import('../src/auth/scram.ts');
    const backend = await LevelBackend.open(join(dir, 'storage'));
    const scram: Record<string, unknown> = {};
    for (const h of SCRAM_HASHES) scram[h] = deriveCredentials(h, PASSWORD);
    const kv = backend.keyValue<unknown>('accounts');
    for (const u of USERS) await kv.set(u, { scram, created: new Date().toISOString() });
    await backend.close();
    const s = await startServer('one process, LevelDB, no Redis', file, port, 1, null);
    try {
      rows.push({ setup: s.label, logins: await figLogins(s), messages: await figMessages(s, s) });
    } finally {
      await stopServer(s);
    }
  }

  const flush = async () => {
    const r = new Redis(redisUrl);
    await r.flushall();
    r.disconnect();
  };
  const clusterYaml = (node: string) => `cluster:\n  redis: "${redisUrl}"\n  node: ${node}\n`;
  for (const w of workerCounts) {
    await flush();
    const dir = join(root, `workers-${w}`);
    mkdirSync(dir);
    const url = await freshDatabase(pgPort);
    const port = await freePort();
    const file = writeConfig(dir, port, `  backend: postgres\n  url: "${url}"\n  path: "${join(dir, 'storage')}"`, clusterYaml('bench'));
    const s = await startServer(`--workers ${w} (PostgreSQL, Redis)`, file, port, w, redisUrl);
    try {
      rows.push({ setup: s.label, logins: await figLogins(s), messages: await figMessages(s, s) });
    } finally {
      await stopServer(s);
    }
  }

  // Two nodes, two processes with their own ports: senders on one, receivers on the other.
  {
    await flush();
    const url = await freshDatabase(pgPort);
    const nodes: Running[] = [];
    try {
      for (const i of [1, 2]) {
        const dir = join(root, `node-${i}`);
        mkdirSync(dir);
        const port = await freePort();
        const file = writeConfig(dir, port, `  backend: postgres\n  url: "${url}"\n  path: "${join(dir, 'storage')}"`, clusterYaml(`node${i}`));
        nodes.push(await startServer(`node ${i}`, file, port, 1, redisUrl));
      }
      rows.push({ setup: 'two nodes (PostgreSQL, Redis): senders on node 1, receivers on node 2', messages: await figMessages(nodes[0]!, nodes[1]!) });
    } finally {
      for (const n of nodes) await stopServer(n);
    }
  }

  const lines = [
    '',
    `jabberfly cluster mode — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cores} cores (${cpus()[0]?.model.trim() ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`,
    `median of ${runs} run(s), (min–max) when more than one; ${genCount} load-generator processes; messages: ${PAIRS} pairs × ${MESSAGES.window} in flight`,
    'server CPU: % of one core, every server process together (supervisor and workers, or both nodes)',
    '',
    '| set-up | logins/s | server CPU | messages/s | server CPU |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.setup} | ${fmt(r.logins)} | ${cpuOf(r.logins)} | ${fmt(r.messages)} | ${cpuOf(r.messages)} |`),
    '',
    `other processes used a median ${median(rows.flatMap((r) => [...(r.logins ?? []), ...(r.messages ?? [])]).map((x) => x.otherCpu)).toFixed(0)}% of one core during the measurements`,
    `bench took ${((Date.now() - started) / 1000).toFixed(0)} s`,
  ];
  console.log(lines.join('\n'));
}

main()
  .then(() => {
    for (const g of gens) g.disconnect();
    cleanup();
    process.exit(0);
  })
  .catch((err: Error) => {
    console.error(`bench failed: ${err.stack ?? err}`);
    cleanup();
    process.exit(1);
  });
