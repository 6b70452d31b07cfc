// Debian's PostgreSQL for the tests, started once per test run and shared
// by every test file that needs it (each gets a database of its own).
//
// The first file to ask runs initdb and postgres as the `postgres` user (it
// refuses to run as root) in a temp folder, on a free loopback port, with
// its socket in that folder; the others find it through a state file in a
// folder named after the test runner's PID, under a mkdir lock. Each file
// registers its PID; the last one to leave stops PostgreSQL by the PID it
// was started with. A watchdog (a shell loop on the runner's PID) stops it
// too if the whole run dies without leaving cleanly.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort, userIds } from './peer-process.ts';

interface State {
  pid: number;
  port: number;
  dir: string;
}

const runner = process.ppid;
const base = join(tmpdir(), `jabberfly-pg-run-${runner}`);
const lockDir = `${base}.lock`;
const stateFile = join(base, 'state.json');
const usersDir = join(base, 'users');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'owner'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A holder that died leaves its lock: take it over.
      const owner = Number(readFileSafe(join(lockDir, 'owner')));
      if (owner && !alive(owner)) rmSync(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error('timed out waiting for the PostgreSQL test lock');
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

async function connectable(port: number): Promise<boolean> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

async function start(): Promise<State> {
  rmSync(base, { recursive: true, force: true });
  mkdirSync(usersDir, { recursive: true });
  const { uid, gid } = userIds('postgres');
  const dir = join(base, 'pg');
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  execFileSync('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'], {
    uid,
    gid,
    stdio: 'pipe',
  });
  const port = await freePort();
  // Test settings: no fsync (the tests kill jabberfly, never PostgreSQL), loopback only.
  const proc = spawn(
    'postgres',
    ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300', '-c', 'shared_buffers=64MB'],
    { uid, gid, detached: true, stdio: ['ignore', 'ignore', 'ignore'] },
  );
  proc.unref();
  const pid = proc.pid!;
  // Stops PostgreSQL if the test run ends without the last file leaving cleanly.
  const watchdog = spawn('sh', ['-c', `while kill -0 ${runner} 2>/dev/null && kill -0 ${pid} 2>/dev/null; do sleep 2; done; kill -TERM ${pid} 2>/dev/null`], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
  const deadline = Date.now() + 60_000;
  while (!(await connectable(port))) {
    if (!alive(pid)) throw new Error('postgres exited at start');
    if (Date.now() > deadline) throw new Error('postgres did not accept connections within 60 s');
    await sleep(200);
  }
  const state = { pid, port, dir };
  writeFileSync(stateFile, JSON.stringify(state));
  return state;
}

export interface TestDatabase {
  /** postgres:// URL of this file's own database. */
  url: string;
  port: number;
  /** Another fresh database (for a second server, a migration target). */
  another(): Promise<string>;
  /** Drops this file's databases and leaves the shared server (the last one out stops it). */
  release(): Promise<void>;
}

let counter = 0;

async function createDatabase(port: number): Promise<string> {
  const name = `t_${process.pid}_${++counter}`;
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name}`);
    await c.query(`CREATE DATABASE ${name} TEMPLATE template0`);
  } finally {
    await c.end();
  }
  return name;
}

/** A database of this test file's own on the run's shared PostgreSQL. */
export async function testDatabase(): Promise<TestDatabase> {
  const state = await withLock(async () => {
    let s: State | null = existsSync(stateFile) ? (JSON.parse(readFileSafe(stateFile)) as State) : null;
    if (!s || !alive(s.pid) || !(await connectable(s.port))) s = await start();
    writeFileSync(join(usersDir, String(process.pid)), '');
    return s;
  });
  const names = [await createDatabase(state.port)];
  const url = (name: string) => `postgres://postgres@127.0.0.1:${state.port}/${name}`;
  return {
    url: url(names[0]!),
    port: state.port,
    async another() {
      const name = await createDatabase(state.port);
      names.push(name);
      return url(name);
    },
    async release() {
      const c = new pg.Client({ host: '127.0.0.1', port: state.port, user: 'postgres', database: 'postgres' });
      await c.connect().catch(() => {});
      for (const name of names) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await c.end().catch(() => {});
      await withLock(async () => {
        rmSync(join(usersDir, String(process.pid)), { force: true });
        const others = existsSync(usersDir) ? readdirSync(usersDir).map(Number).filter((pid) => pid !== process.pid && alive(pid)) : [];
        if (others.length) return;
        // The last one out stops PostgreSQL by the PID it was started with.
        if (alive(state.pid)) {
          process.kill(state.pid, 'SIGTERM');
          const deadline = Date.now() + 20_000;
          while (alive(state.pid) && Date.now() < deadline) await sleep(100);
          if (alive(state.pid)) process.kill(state.pid, 'SIGKILL');
        }
        rmSync(base, { recursive: true, force: true });
      });
    },
  };
}
