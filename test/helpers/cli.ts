// Runs the real `jabberfly` command (bin/jabberfly.js) as a child process.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/jabberfly.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], input?: string, cwd?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** Starts `jabberfly start` and resolves once it logs that it started. */
export function startCli(args: string[], cwd?: string): Promise<{ child: ChildProcess; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'start', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      if (/INFO server: started/.test(out)) resolve({ child, output: () => out });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`jabberfly exited with ${code}: ${out}`)));
  });
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

export interface CliServer {
  dir: string;
  config: string;
  child: ChildProcess;
  /** The client port the banner names (STARTTLS). */
  port: number;
  /** Runs a command against this server's config. */
  cli: (...args: string[]) => Promise<CliResult>;
}

/**
 * Writes `dir/jabberfly.yaml` for a server of a test: listening on loopback,
 * its storage and certificates in `dir`, then `lines` (YAML, one key each).
 * Returns the file's path.
 */
export function writeSiteConfig(dir: string, lines: string[]): string {
  const config = join(dir, 'jabberfly.yaml');
  const site = ['listen: ["127.0.0.1"]', `storage: { path: "${join(dir, 'storage')}" }`, `tls: { dir: "${join(dir, 'certs')}" }`];
  writeFileSync(config, [...site, ...lines].join('\n'));
  return config;
}

/**
 * `jabberfly start` on a temp folder with a loopback config (clients on a
 * free port, no s2s/http, the transport on), resolved once the banner names
 * the client port.
 */
export async function startCliServer(dir: string): Promise<CliServer> {
  const config = writeSiteConfig(dir, [
    'c2s: { port: 0, directTlsPort: false }',
    's2s: { port: false }',
    'http: { port: false }',
    'https: { port: false }',
    'msn: { enabled: true }',
  ]);
  const started = await startCli(['--config', config]);
  const child = started.child;
  const banner = /XMPP clients\s+localhost:(\d+) \(STARTTLS\)/;
  const m =
    banner.exec(started.output()) ??
    (await new Promise<RegExpExecArray>((resolve) => {
      const check = () => {
        const r = banner.exec(started.output());
        if (r) resolve(r);
        else child.stdout!.once('data', check);
      };
      check();
    }));
  return { dir, config, child, port: Number(m[1]), cli: (...args) => runCli([...args, '--config', config]) };
}
