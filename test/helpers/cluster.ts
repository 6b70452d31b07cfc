// Cluster nodes for tests (test/cluster/): `jabberfly start` processes
// sharing one PostgreSQL database and one Redis, each with its folder under
// the test's root, and waits on their admin sockets (what `jabberfly
// status` reads) for what the cluster agrees on.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminCall } from '../../src/admin/client.ts';
import { BIN } from './cli.ts';
import { PeerProcess } from './peer-process.ts';

export interface ClusterNodeOptions {
  root: string;
  /** Node index from 0: named n1, n2, ...; its folder is root/node<i+1>. */
  index: number;
  databaseUrl: string;
  redisUrl: string;
  c2sPort: number;
  /** More top-level config keys (msn, components, ...). */
  extra?: Record<string, unknown>;
}

/** Starts node `index` (heartbeat 1 s, nodeTimeout 3 s) and resolves once it serves. */
export async function startClusterNode(o: ClusterNodeOptions): Promise<PeerProcess> {
  const n = o.index + 1;
  const file = join(o.root, `node${n}.yaml`);
  writeFileSync(
    file,
    JSON.stringify({
      domain: 'localhost',
      listen: ['127.0.0.1'],
      storage: { backend: 'postgres', url: o.databaseUrl, path: join(o.root, `node${n}`) },
      tls: { dir: join(o.root, `certs${n}`) },
      c2s: { port: o.c2sPort, directTlsPort: false },
      s2s: { port: false },
      http: { port: false },
      https: { port: false },
      msn: { enabled: false },
      upload: { enabled: false },
      cluster: { redis: o.redisUrl, node: `n${n}`, heartbeat: 1, nodeTimeout: 3 },
      log: { level: 'info' },
      ...o.extra,
    }),
  );
  const p = new PeerProcess(`node ${n}`, process.execPath, [BIN, 'start', '-c', file]);
  await p.waitOutput(/INFO server: started/, 'node start', 60_000);
  return p;
}

/** The admin socket of node `index`. */
export function clusterAdminSocket(root: string, index: number): string {
  return join(root, `node${index + 1}`, `admin-n${index + 1}.sock`);
}

export type NodeStatus = Record<string, unknown> & {
  sessions?: { list?: string[] };
  cluster?: { remoteSessionList?: string[]; storeEntriesReloaded?: Record<string, number>; sessionsMovedIn?: number };
};

/** Polls node `index`'s status until `pred` holds: a bound on the wait (`ms`), failing with `what`. */
export async function untilStatus(root: string, index: number, pred: (status: NodeStatus) => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const status = (await adminCall(clusterAdminSocket(root, index), { op: 'status' }).catch(() => null)) as NodeStatus | null;
    if (status && pred(status)) return;
    assert.ok(Date.now() < deadline, what);
    await new Promise((res) => setTimeout(res, 100));
  }
}
