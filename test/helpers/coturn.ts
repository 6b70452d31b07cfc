// Debian's coturn (`turnserver`) for tests: started on 127.0.0.1 with free
// ports and the TURN REST API secret (use-auth-secret), in a temp folder,
// ready once it answers a STUN Binding request; stopped by its PID.
// `turnutils_uclient` (same package) makes allocations against it.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Coturn {
  port: number;
  output(): string;
  stop(): Promise<void>;
}

/** A UDP port nothing is bound to right now on 127.0.0.1. */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Sends a STUN Binding request (RFC 5389) and resolves with the address the
 * server saw, retrying every `every` ms until `timeout` (a server starting up
 * drops the first ones).
 */
export function stunBinding(host: string, port: number, timeout = 20_000, every = 250): Promise<string> {
  const s = createSocket('udp4');
  const tx = randomBytes(12);
  const request = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), tx]);
  return new Promise<string>((resolve, reject) => {
    const done = (err: Error | null, value?: string) => {
      clearInterval(retry);
      clearTimeout(limit);
      s.close();
      if (err) reject(err);
      else resolve(value!);
    };
    s.on('message', (msg) => {
      // A Binding success response (0x0101) to our transaction.
      if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0101 || !msg.subarray(8, 20).equals(tx)) return;
      done(null, xorMappedAddress(msg) ?? 'unknown');
    });
    s.on('error', (e) => done(e));
    const send = () => s.send(request, port, host);
    const retry = setInterval(send, every);
    const limit = setTimeout(() => done(new Error(`no STUN answer from ${host}:${port}`)), timeout);
    send();
  });
}

/** XOR-MAPPED-ADDRESS (IPv4) of a STUN response, as ip:port. */
function xorMappedAddress(msg: Buffer): string | null {
  let at = 20;
  while (at + 4 <= msg.length) {
    const type = msg.readUInt16BE(at);
    const length = msg.readUInt16BE(at + 2);
    if (type === 0x0020 && msg[at + 5] === 0x01) {
      const port = msg.readUInt16BE(at + 6) ^ 0x2112;
      const ip = [0, 1, 2, 3].map((i) => msg[at + 8 + i]! ^ [0x21, 0x12, 0xa4, 0x42][i]!).join('.');
      return `${ip}:${port}`;
    }
    at += 4 + Math.ceil(length / 4) * 4;
  }
  return null;
}

export async function startCoturn(secret: string, realm: string): Promise<Coturn> {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-coturn-'));
  // An empty config file, so /etc/turnserver.conf plays no part.
  writeFileSync(join(dir, 'turnserver.conf'), '');
  const port = await freeUdpPort();
  // Relay ports from below the kernel's ephemeral range, so they do not
  // collide with the listening port or other tests' sockets; coturn skips busy ones.
  const relay = 20_000 + Math.floor(Math.random() * 9_000);
  const child: ChildProcess = spawn(
    '/usr/bin/turnserver',
    [
      '-c',
      join(dir, 'turnserver.conf'),
      '-n',
      '--listening-ip=127.0.0.1',
      `--listening-port=${port}`,
      '--relay-ip=127.0.0.1',
      `--min-port=${relay}`,
      `--max-port=${relay + 100}`,
      '--use-auth-secret',
      `--static-auth-secret=${secret}`,
      `--realm=${realm}`,
      '--no-tls',
      '--no-dtls',
      '--no-cli',
      '--no-rfc5780',
      // uclient's two ends are relays on loopback too.
      '--allow-loopback-peers',
      `--pidfile=${join(dir, 'turnserver.pid')}`,
      `--userdb=${join(dir, 'turndb.sqlite')}`,
      '--log-file=stdout',
      '--simple-log',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([
      stunBinding('127.0.0.1', port, 60_000),
      exited.then(() => {
        throw new Error('turnserver exited');
      }),
    ]);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; turnserver said:\n${out.slice(-3000)}`);
  }
  return { port, output: () => out, stop };
}

export interface UclientResult {
  code: number | null;
  output: string;
}

/** One TURN allocation with turnutils_uclient (UDP, or TCP with `tcp`), sending a few packets between two relays. */
export function uclient(port: number, username: string, password: string, tcp = false): Promise<UclientResult> {
  const args = ['-y', '-c', '-n', '2', '-m', '1', '-u', username, '-w', password, '-p', String(port)];
  if (tcp) args.unshift('-t');
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/turnutils_uclient', [...args, '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}
