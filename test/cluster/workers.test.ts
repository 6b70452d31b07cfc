// `jabberfly start --workers 2`: two workers sharing one client port, as
// one cluster over Debian's redis-server and PostgreSQL (loopback, started
// for this file). Connections are spread over both workers, users on
// different workers chat, `jabberfly status` sees the whole cluster, and a
// worker killed with SIGKILL is started again and serves again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { AccountStore } from '../../src/storage/accounts.ts';
import { PgBackend } from '../../src/storage/pg.ts';
import { BIN, runCli } from '../helpers/cli.ts';
import { freePort, PeerProcess } from '../helpers/peer-process.ts';
import { type TestDatabase, testDatabase } from '../helpers/postgres.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const WAIT = 30_000;
const body = (text: string) => (s: Element) => s.is('message') && s.getChildText('body') === text;

interface ClusterStatus {
  node: string;
  nodes: string[];
  localSessions: number;
  remoteSessions: number;
}

describe('jabberfly start --workers 2', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let root: string;
  let config: string;
  let port: number;
  let server: PeerProcess;
  const clients: TestClient[] = [];

  const login = async (user: string, resource: string) => {
    const c = await connect({ port, username: user, password: `${user}-pw`, resource });
    clients.push(c);
    return c;
  };
  const status = async (): Promise<ClusterStatus> => {
    const r = await runCli(['status', '--json', '-c', config]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { cluster: ClusterStatus }).cluster;
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'jabberfly-workers-'));
    [db, redis] = await Promise.all([testDatabase(), startRedis()]);
    port = await freePort();
    const backend = await PgBackend.open(db.url);
    const accounts = new AccountStore(backend);
    for (const u of ['alice', 'bob', 'carol', 'dave']) await accounts.setPassword(u, `${u}-pw`);
    await backend.close();
    config = join(root, 'jabberfly.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        domain: 'localhost',
        listen: ['127.0.0.1'],
        storage: { backend: 'postgres', url: db.url, path: join(root, 'store') },
        tls: { dir: join(root, 'certs') },
        c2s: { port, directTlsPort: false },
        s2s: { port: false },
        http: { port: false },
        https: { port: false },
        msn: { enabled: false },
        upload: { enabled: false },
        cluster: { redis: redis.url, node: 'box', heartbeat: 1, nodeTimeout: 3 },
      }),
    );
    server = new PeerProcess('jabberfly --workers 2', process.execPath, [BIN, 'start', '--workers', '2', '-c', config]);
    await server.waitOutput(/all workers started workers=2 started=2/, 'both workers', 90_000);
  });

  after(async () => {
    for (const c of clients) await c.stop().catch(() => {});
    await server?.stop();
    await redis?.stop();
    await db?.release();
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses --workers without cluster mode, with the reason', async () => {
    const plain = join(root, 'plain.yaml');
    writeFileSync(plain, JSON.stringify({ storage: { path: join(root, 'plain') } }));
    const r = await runCli(['start', '--workers', '2', '-c', plain]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--workers needs cluster mode: set cluster\.redis/);
  });

  it('spreads connections over both workers, and users on different workers chat', async () => {
    const users = [await login('alice', 'a'), await login('bob', 'b'), await login('carol', 'c'), await login('dave', 'd')];
    const st = await status();
    assert.equal(st.node, 'box-w1');
    assert.equal(st.nodes.length, 2, st.nodes.join());
    assert.equal(st.localSessions + st.remoteSessions, 4);
    assert.ok(st.localSessions >= 1 && st.remoteSessions >= 1, `both workers serve: ${JSON.stringify(st)}`);
    // Every pair chats, whichever worker each one is on.
    for (const from of users) {
      for (const to of users) {
        if (from === to) continue;
        const text = `${from.jid} to ${to.jid}`;
        await from.send(xml('message', { to: to.jid, type: 'chat' }, xml('body', {}, text)));
        const got = await to.waitFor(body(text), text, WAIT);
        assert.equal(got.attrs.from, from.jid);
      }
    }
  });

  it('starts a killed worker again, and it rejoins the cluster', async () => {
    const pid = Number(server.output.match(/worker started worker=2 pid=(\d+)/)?.[1]);
    assert.ok(pid > 0);
    const old = (await status()).nodes.find((n) => n.startsWith('box-w2#'));
    assert.ok(old);
    process.kill(pid, 'SIGKILL');
    const m = await server.waitOutput(/worker started worker=2 pid=\d+[\s\S]*worker started worker=2 pid=(\d+)/, 'worker 2 again', 60_000);
    assert.notEqual(Number(m[1]), pid);
    // The killed instance times out of the member list (nodeTimeout 3 s), the new one is in it.
    const deadline = Date.now() + WAIT;
    let st = await status();
    while ((st.nodes.includes(old) || st.nodes.length !== 2) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      st = await status();
    }
    assert.deepEqual(st.nodes.filter((n) => n.startsWith('box-w2#') && n !== old).length, 1, st.nodes.join());
    assert.equal(st.nodes.length, 2, st.nodes.join());
    // And it serves: a new login lands on one worker or the other and reaches alice.
    const carol2 = await login('carol', 'again');
    await carol2.send(xml('message', { to: clients[0]!.jid, type: 'chat' }, xml('body', {}, 'after the restart')));
    await clients[0]!.waitFor(body('after the restart'), 'message after the restart', WAIT);
  });
});
