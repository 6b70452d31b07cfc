// A three-node cluster on one machine: three `jabberfly start` processes
// sharing Debian's PostgreSQL and redis-server (both on loopback, started
// for this file). alice is on node 1, bob on node 2, alice's second
// resource on node 3: they subscribe, see each other's presence, chat,
// carbons cross nodes; an XEP-0114 component on node 3 is reached from
// node 1; bob's MSN session (the transport, against the MSN simulator)
// runs on his home node and his resource on node 3 goes through it; node 2
// is killed with SIGKILL, its session leaves
// the registry within the configured bound (alice sees bob go offline),
// messages sent to bob meanwhile and afterwards are stored offline, and
// bob gets them from node 2 restarted; a persistent room of the dead node
// is taken over as stored; blocklists and archiving preferences set on one
// node hold on another; and with Redis stopped, node 1 still serves its
// clients, stores a message for another node offline before acknowledging
// it, and exits cleanly on SIGTERM. Last, what nodes keep in memory per
// user (blocklists, archiving preferences) follows a change made on
// another node.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { Redis } from 'ioredis';
import type { Element } from '@xmpp/xml';
import { adminCall } from '../../src/admin/client.ts';
import { MsnSession } from '../../src/msnp/index.ts';
import { AccountStore } from '../../src/storage/accounts.ts';
import { MsnSimulator, type SimulatorEndpoints } from '../msn-sim/simulator.ts';
import { PgBackend } from '../../src/storage/pg.ts';
import { clusterAdminSocket, startClusterNode, untilStatus } from '../helpers/cluster.ts';
import { bodyOf, iq, MAM, query } from '../helpers/mam.ts';
import { freePort, type PeerProcess } from '../helpers/peer-process.ts';
import { type TestDatabase, testDatabase } from '../helpers/postgres.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { RawComponent } from '../helpers/raw-component.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const CARBONS = 'urn:xmpp:carbons:2';
const WAIT = 30_000;
const MSN_DOMAIN = 'msn.localhost';
const PAL = 'pal%hotmail.com@msn.localhost';
const withTimeout = <T>(p: Promise<T>, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT).unref())]);
const COMPONENT = 'echo.localhost';
const COMPONENT_SECRET = 'component-secret';

const body = (text: string) => (s: Element) => s.is('message') && s.getChildText('body') === text;
const presenceFrom = (jid: string, type?: string) => (s: Element) =>
  s.is('presence') && s.attrs.from === jid && s.attrs.type === type;

const MUC = 'http://jabber.org/protocol/muc';
const ROOM = 'crash@conference.localhost';
const statusCodes = (p: Element) => (p.getChild('x', `${MUC}#user`)?.getChildren('status') ?? []).map((s: Element) => s.attrs.code as string);
/** Joins ROOM; resolves with the self-presence (status 110) or an error presence. */
async function enterRoom(c: TestClient, nick: string): Promise<Element> {
  await c.send(xml('presence', { to: `${ROOM}/${nick}` }, xml('x', { xmlns: MUC })));
  return c.waitFor(
    (s) => s.is('presence') && s.attrs.from === `${ROOM}/${nick}` && (s.attrs.type === 'error' || statusCodes(s).includes('110')),
    `joining ${ROOM}`,
    WAIT,
  );
}

describe('cluster of three nodes over PostgreSQL and Redis', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let sim: MsnSimulator;
  let msn: SimulatorEndpoints;
  let buddy: MsnSession | null = null;
  let root: string;
  const ports: number[] = [];
  const componentPorts: number[] = [];
  const nodes: Array<PeerProcess | null> = [null, null, null];
  const clients: TestClient[] = [];

  async function startNode(i: number): Promise<PeerProcess> {
    const p = await startClusterNode({
      root,
      index: i,
      databaseUrl: db.url,
      redisUrl: redis.url,
      c2sPort: ports[i]!,
      extra: {
        msn: { enabled: true, server: `127.0.0.1:${msn.dispatchPort}`, nexus: msn.nexusUrl },
        component: { port: componentPorts[i] },
        components: { [COMPONENT]: { secret: COMPONENT_SECRET } },
      },
    });
    nodes[i] = p;
    return p;
  }

  async function client(node: number, user: string, resource: string): Promise<TestClient> {
    const c = await connect({ port: ports[node]!, username: user, password: `${user}-pw`, resource });
    clients.push(c);
    await seenByAll(node, c.jid);
    return c;
  }

  /**
   * Waits until the other running nodes mirror a new session: a session is announced to
   * them over Redis, and a stanza routed there before the announcement arrives finds the
   * user offline (docs/scaling.md). Asked on each node's admin socket (what `jabberfly status` reads).
   */
  async function seenByAll(home: number, jid: string): Promise<void> {
    for (let i = 0; i < nodes.length; i++) {
      if (i === home || !nodes[i]?.running) continue;
      await untilStatus(root, i, (status) => (status.sessions?.list ?? []).some((l) => l.startsWith(`${jid} `)), `node ${i + 1} sees ${jid}`, WAIT);
    }
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'jabberfly-cluster-'));
    [db, redis] = await Promise.all([testDatabase(), startRedis()]);
    // The MSN side: Debian has no MSN server, so the project's simulator (test/msn-sim/), in this process.
    sim = new MsnSimulator();
    sim.addAccount('bob@hotmail.com', 'bobmsnpw', { nickname: 'Bob' });
    sim.addAccount('pal@hotmail.com', 'palpw', { nickname: 'Pal' });
    sim.makeFriends('bob@hotmail.com', 'pal@hotmail.com');
    msn = await sim.start();
    for (let i = 0; i < 3; i++) ports.push(await freePort());
    for (let i = 0; i < 3; i++) componentPorts.push(await freePort());
    // Accounts straight into the shared database (no node running yet).
    const backend = await PgBackend.open(db.url);
    const accounts = new AccountStore(backend);
    for (const u of ['alice', 'bob', 'carol']) await accounts.setPassword(u, `${u}-pw`);
    await backend.close();
    // Three nodes starting together agree on one schema and one set of secrets.
    await Promise.all([0, 1, 2].map(startNode));
  });

  after(async () => {
    for (const c of clients) await c.stop();
    for (const n of nodes) await n?.stop();
    await buddy?.logout().catch(() => {});
    await redis?.stop();
    await sim?.stop();
    await db?.release();
    rmSync(root, { recursive: true, force: true });
  });

  let alice: TestClient;
  let alice3: TestClient;
  let bob: TestClient;

  it('subscribes, shows presence and chats across nodes', async () => {
    alice = await client(0, 'alice', 'laptop');
    bob = await client(1, 'bob', 'phone');
    // Interested resources (roster requested) get roster pushes.
    await iq(alice, 'get', xml('query', { xmlns: 'jabber:iq:roster' }));
    await iq(bob, 'get', xml('query', { xmlns: 'jabber:iq:roster' }));
    await alice.send(xml('presence'));
    await bob.send(xml('presence'));

    await alice.send(xml('presence', { to: 'bob@localhost', type: 'subscribe' }));
    await bob.waitFor(presenceFrom('alice@localhost', 'subscribe'), 'subscription request on node 2', WAIT);
    await bob.send(xml('presence', { to: 'alice@localhost', type: 'subscribed' }));
    await bob.send(xml('presence', { to: 'alice@localhost', type: 'subscribe' }));
    await alice.waitFor(presenceFrom('bob@localhost', 'subscribe'), 'subscription request on node 1', WAIT);
    await alice.send(xml('presence', { to: 'bob@localhost', type: 'subscribed' }));

    // Roster pushes on both sides end at "both".
    const pushBoth = (jid: string) => (s: Element) =>
      s.is('iq') && s.attrs.type === 'set' && s.getChild('query')?.getChild('item')?.attrs.jid === jid && s.getChild('query')?.getChild('item')?.attrs.subscription === 'both';
    await alice.waitFor(pushBoth('bob@localhost'), 'roster push (both) for alice', WAIT);
    await bob.waitFor(pushBoth('alice@localhost'), 'roster push (both) for bob', WAIT);
    // Presence crosses once the subscriptions are there (the approval sends it).
    await alice.waitFor(presenceFrom('bob@localhost/phone'), "bob's presence on node 1", WAIT);
    await bob.waitFor(presenceFrom('alice@localhost/laptop'), "alice's presence on node 2", WAIT);

    await alice.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'c1' }, xml('body', {}, 'hello from node 1')));
    const got = await bob.waitFor(body('hello from node 1'), 'message on node 2', WAIT);
    assert.equal(got.attrs.from, 'alice@localhost/laptop');
    await bob.send(xml('message', { to: 'alice@localhost/laptop', type: 'chat', id: 'c2' }, xml('body', {}, 'hello from node 2')));
    assert.equal((await alice.waitFor(body('hello from node 2'), 'reply on node 1', WAIT)).attrs.from, 'bob@localhost/phone');
  });

  it('sends carbons to a resource on a third node', async () => {
    alice3 = await client(2, 'alice', 'tablet');
    await alice3.send(xml('presence'));
    await bob.waitFor(presenceFrom('alice@localhost/tablet'), "alice's second resource seen on node 2", WAIT);
    for (const c of [alice, alice3]) {
      const r = await iq(c, 'set', xml('enable', { xmlns: CARBONS }));
      assert.equal(r.attrs.type, 'result');
    }
    // To the laptop's full JID: the tablet (node 3) gets a received carbon.
    await bob.send(xml('message', { to: 'alice@localhost/laptop', type: 'chat', id: 'c3' }, xml('body', {}, 'carbon me')));
    await alice.waitFor(body('carbon me'), 'message on node 1', WAIT);
    const carbon = await alice3.waitFor((s) => s.is('message') && s.getChild('received', CARBONS) !== undefined, 'carbon on node 3', WAIT);
    const inner = carbon.getChild('received', CARBONS)?.getChild('forwarded')?.getChild('message');
    assert.equal(inner?.getChildText('body'), 'carbon me');
  });

  it('reaches an external component connected to another node, both ways', async () => {
    const component = await RawComponent.connect(componentPorts[2]!, COMPONENT, COMPONENT_SECRET);
    // The node holding the link claims the component's domain in Redis: wait for that, not for time.
    const r = new Redis(redis.url);
    try {
      const deadline = Date.now() + WAIT;
      while (!(await r.get(`jf:claim:component:${COMPONENT}`))?.startsWith('n3#')) {
        assert.ok(Date.now() < deadline, 'component claimed by node 3');
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      r.disconnect();
    }
    await alice.send(xml('message', { to: `bot@${COMPONENT}`, type: 'chat', id: 'k1' }, xml('body', {}, 'to the component')));
    const got = await component.waitFor((s) => s.name === 'message' && s.getChildText('body') === 'to the component', 'message at the component', WAIT);
    assert.equal(got.attrs.from, 'alice@localhost/laptop');
    component.send(`<message from='bot@${COMPONENT}' to='alice@localhost/laptop' type='chat'><body>from the component</body></message>`);
    assert.equal((await alice.waitFor(body('from the component'), 'component reply on node 1', WAIT)).attrs.from, `bot@${COMPONENT}`);
    component.destroy();
  });

  it("runs a user's MSN session on their home node, reached from their resource on another node", async () => {
    // bob (home: node 2, his oldest session) registers with the transport: it logs in to MSN there.
    const reg = await iq(bob, 'set', xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'bob@hotmail.com'), xml('password', {}, 'bobmsnpw')), MSN_DOMAIN);
    assert.equal(reg.attrs.type, 'result');
    await bob.waitFor((s) => s.is('presence') && s.attrs.from === MSN_DOMAIN && !s.attrs.type, 'transport online', WAIT);
    buddy = new MsnSession({ email: 'pal@hotmail.com', password: 'palpw', server: `127.0.0.1:${msn.nsPort}`, nexusUrl: msn.nexusUrl });
    buddy.on('error', () => {});
    await buddy.login();
    await bob.waitFor((s) => s.is('presence') && s.attrs.from === PAL && !s.attrs.type, 'the MSN contact online', WAIT);
    // A second resource of bob's on node 3: its message to the MSN contact goes through his MSN session on node 2.
    const tablet = await client(2, 'bob', 'tablet');
    await tablet.send(xml('presence'));
    const heard = new Promise<string>((resolve) => buddy!.on('message', (m) => m.from === 'bob@hotmail.com' && resolve(m.text)));
    await tablet.send(xml('message', { to: PAL, type: 'chat' }, xml('body', {}, 'from the tablet on node 3')));
    assert.equal(await withTimeout(heard, 'MSN contact hears bob'), 'from the tablet on node 3');
    // Through the one MSN session on node 2: node 3 did not sign bob in a second time.
    assert.equal(sim.onlineUsers().filter((e) => e === 'bob@hotmail.com').length, 1);
    try {
      // The contact's answer reaches the tablet on node 3 (the resource in the conversation, or every
      // resource of equal priority: either way the tablet) from the transport on node 2.
      await buddy.sendMessage('bob@hotmail.com', 'hello bob');
      assert.equal((await tablet.waitFor(body('hello bob'), 'MSN message on node 3', WAIT)).attrs.from.split('/')[0], PAL);
    } finally {
      await tablet.stop();
    }
    await alice.waitFor(presenceFrom('bob@localhost/tablet', 'unavailable'), 'tablet gone', WAIT);
  });

  it('serves a persistent room from the node that claimed it (node 2, where bob made it)', async () => {
    // Made after every node started, so the others never loaded it: only storage knows it.
    const entered = await enterRoom(bob, 'bob');
    assert.ok(statusCodes(entered).includes('201'), `a new room: ${entered.toString()}`);
    const form = xml(
      'query',
      { xmlns: `${MUC}#owner` },
      xml(
        'x',
        { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, `${MUC}#roomconfig`)),
        xml('field', { var: 'muc#roomconfig_persistentroom' }, xml('value', {}, '1')),
        xml('field', { var: 'muc#roomconfig_roomname' }, xml('value', {}, 'Crash room')),
      ),
    );
    assert.equal((await iq(bob, 'set', form, ROOM)).attrs.type, 'result');
    await bob.send(xml('message', { to: ROOM, type: 'groupchat' }, xml('subject', {}, 'set on node 2')));
    await bob.waitFor((s) => s.is('message') && s.getChildText('subject') === 'set on node 2', 'subject reflected', WAIT);
    const r = new Redis(redis.url);
    try {
      assert.match((await r.get(`jf:claim:room:${ROOM}`)) ?? '', /^n2#/);
    } finally {
      r.disconnect();
    }
  });

  it('after node 2 is killed, its session expires and messages for bob go to offline storage, delivered when it is back', async () => {
    await nodes[1]!.kill('SIGKILL');
    // Sent before anyone noticed: it waits in node 2's inbox and is taken over.
    await alice.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'o1' }, xml('body', {}, 'right after the crash')));
    // The session leaves the registry within heartbeat + nodeTimeout (1 + 3 s) plus a check: contacts are told.
    const started = Date.now();
    await alice.waitFor(presenceFrom('bob@localhost/phone', 'unavailable'), "bob's unavailable after node 2 died", WAIT);
    const took = Date.now() - started;
    assert.ok(took < 20_000, `registry expiry took ${took} ms`);
    await alice.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'o2' }, xml('body', {}, 'while node 2 is down')));
    // A ping round trip: the offline write is durable before the answer.
    await iq(alice, 'get', xml('ping', { xmlns: 'urn:xmpp:ping' }));

    // Node 2 restarts (a new instance under the same name) and rejoins; on a fresh port, as the
    // killed one's may have been taken meanwhile on a busy machine.
    ports[1] = await freePort();
    await startNode(1);
    bob = await client(1, 'bob', 'phone');
    await bob.send(xml('presence'));
    const first = await bob.waitFor(body('right after the crash'), 'offline message 1', WAIT);
    const second = await bob.waitFor(body('while node 2 is down'), 'offline message 2', WAIT);
    for (const m of [first, second]) assert.ok(m.getChild('delay', 'urn:xmpp:delay'), 'stamped as stored offline');
    // And the cluster works again both ways.
    await alice.waitFor(presenceFrom('bob@localhost/phone'), 'bob back on node 1', WAIT);
    await alice3.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'c9' }, xml('body', {}, 'welcome back')));
    await bob.waitFor(body('welcome back'), 'message from node 3 to the restarted node 2', WAIT);
  });

  it("takes over a dead node's persistent room as stored, not as loaded at start", async () => {
    // Node 2 died holding the room; its claim went with it. alice's presence has it claimed again by a
    // node that never loaded it (they started before it was made): that node reads it from storage
    // before handling her join (without that, she would make a new room of that name).
    const entered = await enterRoom(alice, 'alice');
    assert.equal(entered.attrs.type, undefined, entered.toString());
    assert.ok(!statusCodes(entered).includes('201'), `joined the existing room, not a new one: ${entered.toString()}`);
    assert.equal(entered.getChild('x', `${MUC}#user`)?.getChild('item')?.attrs.affiliation, 'none');
    const subject = await alice.waitFor((s) => s.is('message') && s.attrs.from?.startsWith(ROOM) && s.getChild('subject') !== undefined, 'room subject', WAIT);
    assert.equal(subject.getChildText('subject'), 'set on node 2');
    const info = await iq(alice, 'get', xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), ROOM);
    assert.equal(info.getChild('query')?.getChild('identity')?.attrs.name, 'Crash room');
  });

  /** How many entries of `store` node `i` re-read after another node's change notice (its admin status). */
  async function reloads(i: number, store: string): Promise<number> {
    const status = await adminCall(clusterAdminSocket(root, i), { op: 'status' });
    const counts = (status?.cluster as { storeEntriesReloaded?: Record<string, number> } | undefined)?.storeEntriesReloaded;
    return counts?.[store] ?? 0;
  }
  async function reloaded(i: number, store: string, atLeast: number): Promise<void> {
    const deadline = Date.now() + WAIT;
    while ((await reloads(i, store)) < atLeast) {
      assert.ok(Date.now() < deadline, `node ${i + 1} re-read ${store}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  it('applies a blocklist and archiving preferences set on bob\'s home node on the node of his other resource', async () => {
    // bob's phone on node 2 is his home: his own iqs are handled there. A message to his full JID
    // bob/desk is handled on node 3, which holds that session: node 3 applies bob's blocklist and
    // archiving preferences from its memory, loaded before bob changed them on node 2.
    const desk = await client(2, 'bob', 'desk');
    await desk.send(xml('presence'));
    const carol = await client(0, 'carol', 'pc');
    const DESK = 'bob@localhost/desk';
    const archivedByBob = (m: Element) => m.getChildren('stanza-id', 'urn:xmpp:sid:0').some((sid) => sid.attrs.by === 'bob@localhost');

    // Before: node 3 delivers alice's message and archives carol's (bob's default is to archive).
    await alice.send(xml('message', { to: DESK, type: 'chat', id: 'b0' }, xml('body', {}, 'before the block')));
    await desk.waitFor(body('before the block'), "alice's message on node 3", WAIT);
    await carol.send(xml('message', { to: DESK, type: 'chat', id: 'm0' }, xml('body', {}, 'archived')));
    assert.ok(archivedByBob(await desk.waitFor(body('archived'), "carol's first message", WAIT)), 'archived while the default is always');

    const blocked = await reloads(2, 'blocklist');
    const prefs = await reloads(2, 'mam-prefs');
    assert.equal((await iq(bob, 'set', xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: 'alice@localhost' })))).attrs.type, 'result');
    assert.equal((await iq(bob, 'set', xml('prefs', { xmlns: MAM, default: 'never' }, xml('always'), xml('never')))).attrs.type, 'result');
    // The change is stored on node 2, announced, and re-read by node 3 (docs/scaling.md: the window in between).
    await reloaded(2, 'blocklist', blocked + 1);
    await reloaded(2, 'mam-prefs', prefs + 1);

    // Blocked on node 3: alice gets service-unavailable (XEP-0191 §3.5), the desk nothing.
    await alice.send(xml('message', { to: DESK, type: 'chat', id: 'b1' }, xml('body', {}, 'while blocked')));
    const bounce = await alice.waitFor((st) => st.is('message') && st.attrs.id === 'b1' && st.attrs.type === 'error', 'error for the blocked message', WAIT);
    assert.ok(bounce.getChild('error')?.getChild('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    // Not archived on node 3: no stanza-id of bob's on it, and his archive (read on node 2) holds only the first.
    const unarchived = await carol.send(xml('message', { to: DESK, type: 'chat', id: 'm1' }, xml('body', {}, 'not archived'))).then(() =>
      desk.waitFor(body('not archived'), "carol's second message", WAIT),
    );
    assert.ok(!archivedByBob(unarchived), 'not archived once the default is never');
    const archive = await query(desk, { with: 'carol@localhost' });
    assert.deepEqual(archive.results.map(bodyOf), ['archived']);

    // Unblocked on node 2: node 3 delivers again.
    const unblocks = await reloads(2, 'blocklist');
    assert.equal((await iq(bob, 'set', xml('unblock', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: 'alice@localhost' })))).attrs.type, 'result');
    await reloaded(2, 'blocklist', unblocks + 1);
    await alice.send(xml('message', { to: DESK, type: 'chat', id: 'b2' }, xml('body', {}, 'after the unblock')));
    await desk.waitFor(body('after the unblock'), "alice's message after the unblock", WAIT);
    assert.ok(!desk.received.some(body('while blocked')), 'the blocked message never reached the desk');
  });

  it('keeps serving its own clients while Redis is down, stores a message for another node offline, and still stops cleanly', async () => {
    await redis.stop();
    assert.equal((await iq(alice, 'get', xml('ping', { xmlns: 'urn:xmpp:ping' }))).attrs.type, 'result');
    // bob's session is on node 2, which node 1 cannot reach without Redis: stored offline, not lost.
    await alice.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'r1' }, xml('body', {}, 'while Redis is down')));
    // A later reply on the stream: the offline write is durable (the durability barrier).
    assert.equal((await iq(alice, 'get', xml('ping', { xmlns: 'urn:xmpp:ping' }))).attrs.type, 'result');
    const backend = await PgBackend.open(db.url);
    try {
      const offline = await backend.list<string>('offline').list('bob@localhost');
      assert.ok(offline.some((m) => m.includes('while Redis is down')), `bob's offline messages: ${offline.join('\n')}`);
    } finally {
      await backend.close();
    }
    // SIGTERM: the node gives up on Redis after nodeTimeout (3 s here) and exits by itself,
    // before the 5 s after which PeerProcess.stop would kill it.
    const node1 = nodes[0]!;
    await node1.stop();
    assert.equal(node1.exitCode, 0, node1.output.slice(-2000));
    assert.match(node1.output, /leaving the cluster cleanly failed/);
  });
});
