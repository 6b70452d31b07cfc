// `jabberfly start --workers N`: cluster mode on one machine. The process
// that was started becomes a supervisor (node:cluster's primary); it forks
// N workers, each a full jabberfly node of the cluster (cluster.redis,
// shared PostgreSQL), and the workers share the listening ports: the
// primary accepts and hands connections out in turn (node:cluster's
// round-robin), so every core serves clients with no load balancer.
//
// Worker 1 starts alone first (it creates missing certificates and runs
// the storage migrations), the others after it. Worker i is the node
// `<cluster.node or host name>-w<i>`. Worker 1 answers on the admin socket
// the CLI finds by default; the others on admin-<node>.sock beside it. A
// worker that dies is started again (a new instance of the same node,
// which rejoins); SIGTERM/SIGINT stop every worker cleanly, SIGHUP reaches
// every worker (certificates reload).
import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';
import { adminSocketPath } from '../admin/protocol.ts';
import type { Config } from '../config/schema.ts';
import { Logger } from '../log.ts';

export class WorkersError extends Error {}

/** Most workers one machine may ask for (a typo like 400 should not fork 400 servers). */
const MAX_WORKERS = 256;
/** A worker that dies this soon after starting is restarted after a growing pause. */
const QUICK_DEATH_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

/** The index of this worker (1..N) when this process is one, else null. */
export function workerIndex(): number | null {
  if (!cluster.isWorker) return null;
  const i = Number(process.env.JABBERFLY_WORKER);
  return Number.isInteger(i) && i > 0 ? i : null;
}

/** Parses `--workers N`, with the reasons it cannot be used for this configuration. */
export function parseWorkers(value: string, config: Config): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new WorkersError(`--workers must be a whole number from 1 to ${MAX_WORKERS}`);
  }
  if (n > 1 && !config.cluster.redis) {
    throw new WorkersError(
      '--workers needs cluster mode: set cluster.redis (redis://...) and storage.backend: postgres (see docs/scaling.md)',
    );
  }
  if (n > 1 && config.acme.enabled) {
    // A challenge answered by one worker may be asked of another.
    throw new WorkersError('--workers cannot run acme.enabled: get certificates with certbot and `jabberfly cert import`');
  }
  return n;
}

/** Worker i's configuration: its own node name; only worker 1 on the default admin socket. */
export function workerConfig(config: Config, index: number): Config {
  const base = config.cluster.node || hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 60);
  const node = `${base}-w${index}`;
  const cluster = { ...config.cluster, node };
  const admin =
    index === 1
      ? { ...config.admin, socket: adminSocketPath(config) }
      : { ...config.admin, socket: config.admin.socket ? `${adminSocketPath(config)}-w${index}` : '' };
  return { ...config, cluster, admin };
}

/** Tells the supervisor that this worker is serving. */
export function reportStarted(): void {
  process.send?.({ jabberfly: 'started' });
}

/** Runs the supervisor: resolves with the exit code once every worker has stopped after a signal. */
export function superviseWorkers(config: Config, count: number): Promise<number> {
  const log = new Logger(config.log.level, 'workers');
  let stopping = false;
  const live = new Map<number, Worker>();
  const restartDelay = new Map<number, number>();

  const fork = (index: number): Promise<boolean> =>
    new Promise((resolve) => {
      const forkedAt = Date.now();
      const worker = cluster.fork({ JABBERFLY_WORKER: String(index) });
      live.set(index, worker);
      let started = false;
      worker.on('message', (m: { jabberfly?: string }) => {
        if (m?.jabberfly !== 'started' || started) return;
        started = true;
        log.info('worker started', { worker: index, pid: worker.process.pid });
        resolve(true);
      });
      worker.on('exit', (code, signal) => {
        live.delete(index);
        if (!started) resolve(false);
        if (stopping) {
          if (live.size === 0) done(0);
          return;
        }
        const quick = Date.now() - forkedAt < QUICK_DEATH_MS;
        const delay = quick ? Math.min((restartDelay.get(index) ?? 500) * 2, MAX_RESTART_DELAY_MS) : 1000;
        restartDelay.set(index, delay);
        log.error('worker died: starting it again', { worker: index, code, signal, inSeconds: delay / 1000 });
        setTimeout(() => {
          if (!stopping) void fork(index);
        }, delay).unref();
      });
    });

  let done: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    done = resolve;
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping the workers', { signal });
    if (live.size === 0) done(0);
    for (const w of live.values()) w.process.kill('SIGTERM');
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    for (const w of live.values()) w.process.kill('SIGHUP');
  });

  void (async () => {
    // The first alone: it creates certificates and migrates the schema; then the rest together.
    if (!(await fork(1))) {
      log.error('worker 1 did not start: see its messages above');
      stopping = true;
      for (const w of live.values()) w.process.kill('SIGTERM');
      if (live.size === 0) done(1);
      else void finished.then(() => process.exit(1));
      return;
    }
    const rest = await Promise.all(Array.from({ length: count - 1 }, (_, i) => fork(i + 2)));
    if (!stopping) log.info('all workers started', { workers: count, started: rest.filter(Boolean).length + 1 });
  })();
  return finished;
}
