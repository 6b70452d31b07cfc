// A peer program a test starts (biboumi, ngircd, Prosody, a second
// jabberfly): spawned in the foreground, its output kept, waited on for a
// line that says it is ready, and stopped by the PID the test started
// (SIGTERM, then SIGKILL) — never by name.
import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** uid/gid of a system user (Prosody refuses to run as root). */
export function userIds(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return { uid, gid };
}

export class PeerProcess {
  output = '';
  private readonly proc: ChildProcess;
  private readonly exited: Promise<number | null>;
  private readonly watchers: Array<() => void> = [];

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: SpawnOptions = {},
  ) {
    this.proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    const onData = (d: Buffer) => {
      this.output += d.toString();
      for (const w of [...this.watchers]) w();
    };
    this.proc.stdout?.on('data', onData);
    this.proc.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code) => {
        for (const w of [...this.watchers]) w();
        resolve(code);
      }),
    );
  }

  /** The exit code once it exited by itself; null while running or when a signal ended it. */
  get exitCode(): number | null {
    return this.proc.exitCode;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Resolves when the output matches (reading all output so far); rejects if the process exits first. */
  waitOutput(pattern: RegExp, what: string, ms = 20000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.output.match(pattern);
        if (m) {
          done();
          resolve(m);
        } else if (!this.running) {
          done();
          reject(new Error(`${this.name} exited before ${what}:\n${this.output.slice(-3000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: timed out waiting for ${what}:\n${this.output.slice(-3000)}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        const i = this.watchers.indexOf(check);
        if (i >= 0) this.watchers.splice(i, 1);
      };
      this.watchers.push(check);
      check();
    });
  }

  /** Rejects when the process exits: race it against what the test waits for. */
  exitedEarly(): Promise<never> {
    return this.exited.then((code) => {
      throw new Error(`${this.name} exited (${code}):\n${this.output.slice(-3000)}`);
    });
  }

  /** Resolves with the exit code once the process ends by itself. */
  waitExit(ms = 20000): Promise<number | null> {
    return Promise.race([
      this.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${this.name} did not exit:\n${this.output.slice(-3000)}`)), ms).unref(),
      ),
    ]);
  }

  /** Sends a signal (e.g. SIGKILL for a crash) and resolves once the process is gone. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.proc.kill(signal);
    await this.exited;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
