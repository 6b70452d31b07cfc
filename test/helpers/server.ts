// Starts a real jabberfly Server for a test: its own temp storage and
// certificates, ephemeral ports on 127.0.0.1, logs captured.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { Server } from '../../src/server.ts';

// Test clients connect to self-signed certificates generated per test server.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

export interface TestServer {
  server: Server;
  config: Config;
  dir: string;
  logs: string[];
  port: number;
  directTlsPort: number;
  /** Creates an account; returns its bare JID. */
  addUser(name: string, password: string): Promise<string>;
  /** Stops the server (storage kept unless `clean`). */
  stop(clean?: boolean): Promise<void>;
  /** Stops then starts again on the same storage and config. */
  restart(): Promise<TestServer>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export async function startServer(overrides: DeepPartial<Config> = {}, dir?: string): Promise<TestServer> {
  const root = dir ?? mkdtempSync(join(tmpdir(), 'jabberfly-test-'));
  const base = {
    listen: ['127.0.0.1'],
    storage: { path: join(root, 'storage') },
    tls: { dir: join(root, 'certs') },
    c2s: { port: 0, directTlsPort: 0 },
    s2s: { port: false },
    http: { port: false },
    https: { port: false },
    msn: { enabled: false },
    upload: { path: join(root, 'uploads') },
    log: { level: 'debug' },
  };
  const config = buildConfig(merge(base, overrides as Record<string, unknown>));
  const logs: string[] = [];
  const server = await Server.start(config, { logSink: (l) => logs.push(l) });
  const ts: TestServer = {
    server,
    config,
    dir: root,
    logs,
    port: server.c2s.ports.starttls ?? 0,
    directTlsPort: server.c2s.ports.directTls ?? 0,
    async addUser(name, password) {
      await server.accounts.setPassword(name, password);
      return `${name}@${config.domain}`;
    },
    async stop(clean = true) {
      await server.stop();
      if (clean) rmSync(root, { recursive: true, force: true });
    },
    async restart() {
      await server.stop();
      const again = await startServer(
        merge(overrides as Record<string, unknown>, {
          c2s: { port: ts.port, directTlsPort: ts.directTlsPort },
        }) as DeepPartial<Config>,
        root,
      );
      return again;
    },
  };
  return ts;
}
