// A jabberfly server in its own process (the real `jabberfly start`), for
// tests that measure its memory or kill it: config written to a temp
// folder, ports picked by the server and read from its log, resident set
// size read from /proc.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountStore } from '../../src/storage/accounts.ts';
import { LevelBackend } from '../../src/storage/level.ts';
import { startCli, writeSiteConfig } from '../helpers/cli.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate

export interface ServerProcess {
  child: ChildProcess;
  dir: string;
  config: string;
  c2s: number;
  c2sDirectTls: number | null;
  s2s: number | null;
  output(): string;
  /** Resident set size in bytes. */
  rss(): number;
  /** CPU time the process has used (user + system), in ms. */
  cpuMs(): number;
  /** Whether the process is still running. */
  alive(): boolean;
  stop(): Promise<void>;
}

/** Writes a config (YAML lines on top of loopback defaults; no log key), adds users, starts the server. */
export async function startServerProcess(extra: string[], users: string[] = []): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-proc-'));
  const config = writeSiteConfig(dir, [
    'http: { port: false }',
    'https: { port: false }',
    'msn: { enabled: false }',
    // startCli waits for the info-level "started" line.
    'log: { level: info }',
    ...extra,
  ]);
  if (users.length) {
    // Written straight into the store (faster than one CLI run per user), password 'pw'.
    const backend = await LevelBackend.open(join(dir, 'storage'));
    const accounts = new AccountStore(backend);
    for (const user of users) await accounts.setPassword(user, 'pw');
    await backend.close();
  }
  const { child, output } = await startCli(['--config', config]);
  const text = output();
  const port = (re: RegExp) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
  };
  return {
    child,
    dir,
    config,
    c2s: port(/started .*c2s=(\d+)/)!,
    c2sDirectTls: port(/started .*c2sDirectTls=(\d+)/),
    s2s: port(/federation enabled port=(\d+)/),
    output,
    rss() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
    cpuMs() {
      // Fields 14 and 15 of /proc/PID/stat, in clock ticks (100 per second on Linux).
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
