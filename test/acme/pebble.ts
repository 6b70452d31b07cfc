// Debian's pebble (a real ACME test CA) on loopback for the ACME tests, with
// pebble-challtestsrv as its DNS server (every name → 127.0.0.1). Pebble's
// HTTPS certificate is made here (the Debian package ships no test CA); its
// HTTP-01 and TLS-ALPN-01 validations go to the ports the test names.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Pebble {
  directory: string;
  /** Pebble's own HTTPS certificate (trust it for the directory). */
  caFile: string;
  /** The root that issued certificates chain to. */
  root(): Promise<string>;
  stop(): Promise<void>;
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d;
      if (pattern.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}: ${out}`)));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export async function startPebble(validation: { httpPort: number; tlsPort: number }): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-pebble-'));
  const [acmePort, mgmtPort, dnsPort, dnsMgmtPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const cert = join(dir, 'pebble.crt');
  const key = join(dir, 'pebble.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=pebble',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'pipe' },
  );
  writeFileSync(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: cert,
        privateKey: key,
        httpPort: validation.httpPort,
        tlsPort: validation.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const dns = spawn(
    'pebble-challtestsrv',
    [
      '-dns01',
      `127.0.0.1:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `127.0.0.1:${dnsMgmtPort}`,
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const pebble = spawn(
    'pebble',
    ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`, '-strict=false'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Full speed and no deliberate nonce failures; every order validates afresh.
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    },
  );
  try {
    await Promise.all([
      waitForLine(dns, /Starting challenge servers/i, 'pebble-challtestsrv'),
      waitForLine(pebble, /Listening on: 127\.0\.0\.1:\d+/, 'pebble'),
    ]);
  } catch (err) {
    await Promise.all([stopChild(pebble), stopChild(dns)]);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile: cert,
    // Pebble logs "Listening on" for its ACME port; its management port
    // (the roots) is opened by another goroutine and may come a moment
    // later: a refused connection is tried again, for a bounded time.
    root: async () => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          return await fetchRoot(mgmtPort, cert);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    async stop() {
      await Promise.all([stopChild(pebble), stopChild(dns)]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function fetchRoot(port: number, cert: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/roots/0', ca: readFileSync(cert) }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}
