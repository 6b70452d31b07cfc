// Debian's redis-server for a test file: on a free loopback port, no
// persistence, its folder in a temp dir, stopped by the PID it was started
// with. It starts in milliseconds, so each file that needs one has its own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, PeerProcess } from './peer-process.ts';

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-redis-'));
  const port = await freePort();
  const proc = new PeerProcess('redis-server', '/usr/bin/redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes',
  ]);
  await proc.waitOutput(/Ready to accept connections/, 'redis ready');
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
