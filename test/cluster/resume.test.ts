// XEP-0198 resumption on another cluster node, with a real client
// (@xmpp/client, stream management on) against three `jabberfly start`
// processes sharing Debian's PostgreSQL and redis-server on loopback.
// alice's connection to node 1 drops without a closing stream; bob (node 2)
// writes to her meanwhile; her client reconnects to node 2 with the same
// state and resumes: node 1 hands the session over, the messages arrive
// once, carol (node 3) never sees alice go, node 3 routes alice's full JID
// to node 2, and a message sent there afterwards arrives. The user's home
// node moves with her session: fran's PEP publishes reach gus and herself
// after her move, ivy's MSN login moves along (the MSN simulator hears her
// from node 2). hank writes to fran once per event-loop turn while she
// moves back: each message arrives once. A stale announcement of fran's
// session from the node she left changes nothing, and a command sent there
// for her session follows it. Then node 1 is
// killed with SIGKILL under dave's session: his resumption on node 2 fails
// with item-not-found, his client binds anew, and what bob sent him while
// node 1 was down reaches the fresh session (through offline storage).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { client, type Client, xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { adminCall } from '../../src/admin/client.ts';
import { AccountStore } from '../../src/storage/accounts.ts';
import { PgBackend } from '../../src/storage/pg.ts';
import { RosterStore } from '../../src/storage/roster.ts';
import { clusterAdminSocket, type NodeStatus, startClusterNode, untilStatus as untilNodeStatus } from '../helpers/cluster.ts';
import { freePort, type PeerProcess } from '../helpers/peer-process.ts';
import { type TestDatabase, testDatabase } from '../helpers/postgres.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { type RawSocket, rawLogin, securedStream, streamHeader } from '../helpers/raw-socket.ts';
import { connect, hideSasl2, type TestClient, waitInList } from '../helpers/xmpp-client.ts';
import { Redis } from 'ioredis';
import { eventItems, pepClient, publish, verOf } from '../pep/pep-helpers.ts';
import { MsnSession } from '../../src/msnp/index.ts';
import { MsnSimulator, type SimulatorEndpoints } from '../msn-sim/simulator.ts';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const SM = 'urn:xmpp:sm:3';
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NICK = 'http://jabber.org/protocol/nick';
const MSN_DOMAIN = 'msn.localhost';
const PAL = 'pal%hotmail.com@msn.localhost';
const WAIT = 30_000;
/** `p`, or a failure after WAIT: a bound on the wait for an event. */
const within = <T>(p: Promise<T>, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT).unref())]);
const presenceFrom = (jid: string) => (s: Element) => s.is('presence') && s.attrs.from === jid;

/** An @xmpp/client with stream management whose connection the test drops and re-opens, on another node. */
interface Resuming {
  xmpp: Client;
  sm: NodeJS.EventEmitter & { enabled: boolean; id: string };
  received: Element[];
  /** The stream-management nonzas the server sent (<resumed/>, <failed/>, ...). */
  nonzas: Element[];
  waitFor(pred: (s: Element) => boolean, what: string): Promise<Element>;
  /** Drops the TCP connection without closing the stream; resolves once the client noticed. */
  drop(): Promise<void>;
  /** Connects to `port` with the same client state (SM-ID, counters) and opens the stream. */
  reconnectTo(port: number): Promise<void>;
}

async function resumingClient(port: number, username: string, resource: string, sasl2: boolean, features: string[] = []): Promise<Resuming> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${port}`, domain: 'localhost', username, password: `${username}-pw`, resource, timeout: 10000 });
  xmpp.on('error', () => {});
  // XEP-0115: what its caps claim (its presence carries them, see capsPresence), answered on whichever node asks.
  const claimed = [DISCO_INFO, ...features];
  xmpp.iqCallee.get(DISCO_INFO, 'query', () =>
    xml('query', { xmlns: DISCO_INFO }, xml('identity', { category: 'client', type: 'pc' }), ...claimed.map((f) => xml('feature', { var: f }))),
  );
  // The test reconnects it itself, to the node it chooses.
  xmpp.reconnect.stop();
  if (!sasl2) hideSasl2(xmpp);
  const received: Element[] = [];
  const nonzas: Element[] = [];
  const waiters: Array<() => void> = [];
  const wake = () =>
    setImmediate(() => {
      for (const w of [...waiters]) w();
    });
  xmpp.on('stanza', (s: Element) => {
    received.push(s);
    wake();
  });
  // <resumed/> and <failed/> arrive as nonzas on a plain stream, inside <success/> with SASL2.
  xmpp.on('element', (e: Element) => {
    if (e.attrs.xmlns === SM) nonzas.push(e);
    for (const c of e.getChildren('resumed', SM).concat(e.getChildren('failed', SM))) nonzas.push(c);
    wake();
  });
  const waitFor = (pred: (s: Element) => boolean, what: string, list = received) => waitInList(list, waiters, pred, what, WAIT);
  await xmpp.start();
  const sm = (xmpp as unknown as { streamManagement: Resuming['sm'] }).streamManagement;
  // Enabled after binding: the test starts from an enabled, resumable session.
  if (!sm.enabled) await within(new Promise<void>((r) => waiters.push(() => sm.enabled && r())), 'stream management enabled');
  assert.ok(sm.id, 'resumable session');
  return {
    xmpp,
    sm,
    received,
    nonzas,
    waitFor: (pred, what) => waitFor(pred, what),
    async drop() {
      const gone = new Promise((r) => xmpp.once('disconnect', r));
      (xmpp as unknown as { socket: { socket: { destroy(): void } } }).socket.socket.destroy();
      await within(gone, 'the client noticing its connection dropped');
    },
    async reconnectTo(p: number) {
      (xmpp.options as { service: string }).service = `xmpp://127.0.0.1:${p}`;
      await (xmpp.reconnect as unknown as { reconnect(): Promise<void> }).reconnect();
    },
  };
}

/** A raw client that authenticated (PLAIN) and did not bind: ready for <resume/>. */
async function authenticated(port: number, user: string): Promise<RawSocket> {
  const { s } = await securedStream(port);
  s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${user}-pw`).toString('base64')}</auth>`);
  await s.waitFor(/<success/);
  s.input = '';
  s.write(streamHeader());
  await s.waitFor(/<\/stream:features>/);
  return s;
}
/** Available presence with XEP-0115 caps for a client claiming `features` (besides disco#info). */
const capsPresence = (features: string[]) =>
  xml('presence', {}, xml('c', { xmlns: 'http://jabber.org/protocol/caps', hash: 'sha-1', node: 'https://jabberfly.test/client', ver: verOf([DISCO_INFO, ...features]) }));
const nickPublish = (nick: string) => publish(NICK, 'current', xml('nick', { xmlns: NICK }, nick));
/** A PEP notification of `user`'s nick `nick`. */
const nickEvent = (user: string, nick: string) => (s: Element) =>
  s.attrs.from === user && eventItems(s, NICK)?.getChild('item')?.getChildText('nick', NICK) === nick;

const RESUMED = /<resumed xmlns=["']urn:xmpp:sm:3["'][^>]*\/>/;
const FAILED = /<failed xmlns=["']urn:xmpp:sm:3["'][\s\S]*?<\/failed>/;

describe('XEP-0198 resumption on another cluster node', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let root: string;
  let sim: MsnSimulator;
  let msn: SimulatorEndpoints;
  let buddy: MsnSession | null = null;
  const ports: number[] = [];
  const nodes: Array<PeerProcess | null> = [null, null, null];
  const clients: TestClient[] = [];
  const resuming: Resuming[] = [];

  async function startNode(i: number): Promise<void> {
    nodes[i] = await startClusterNode({
      root,
      index: i,
      databaseUrl: db.url,
      redisUrl: redis.url,
      c2sPort: ports[i]!,
      // One transport key for all nodes (docs/scaling.md): each must open the MSN passwords stored by another.
      extra: {
        msn: { enabled: true, server: `127.0.0.1:${msn.dispatchPort}`, nexus: msn.nexusUrl, keyFile: join(root, 'transport.key') },
        // The burst of messages during a move may outrun the client's acknowledgements: the limit is not what is tested.
        sm: { maxUnacked: 100_000 },
      },
    });
  }
  const untilStatus = (i: number, pred: (status: NodeStatus) => boolean, what: string) => untilNodeStatus(root, i, pred, what, WAIT);
  /** Node status: the node routes `jid` to a session on `node` (its session directory). */
  const routedTo = (jid: string, node: string) => (status: NodeStatus) =>
    (status.cluster?.remoteSessionList ?? []).some((l) => l.startsWith(`${jid} ${node}#`));

  async function plain(node: number, user: string, resource: string): Promise<TestClient> {
    const c = await connect({ port: ports[node]!, username: user, password: `${user}-pw`, resource });
    clients.push(c);
    return c;
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'jabberfly-cluster-resume-'));
    [db, redis] = await Promise.all([testDatabase(), startRedis()]);
    // The MSN side: the project's simulator (test/msn-sim/), in this process.
    sim = new MsnSimulator();
    sim.addAccount('ivy@hotmail.com', 'ivymsnpw', { nickname: 'Ivy' });
    sim.addAccount('pal@hotmail.com', 'palpw', { nickname: 'Pal' });
    sim.makeFriends('ivy@hotmail.com', 'pal@hotmail.com');
    msn = await sim.start();
    for (let i = 0; i < 3; i++) ports.push(await freePort());
    // Accounts and rosters straight into the shared database (no node running yet).
    const backend = await PgBackend.open(db.url);
    const accounts = new AccountStore(backend);
    for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'fran', 'gus', 'hank', 'ivy']) await accounts.setPassword(u, `${u}-pw`);
    const rosters = new RosterStore(backend);
    const pairs = [['alice', 'carol'], ['carol', 'alice'], ['dave', 'carol'], ['carol', 'dave'], ['fran', 'gus'], ['gus', 'fran']] as const;
    for (const [a, b] of pairs) {
      await rosters.setItem(`${a}@localhost`, { jid: `${b}@localhost`, subscription: 'both', groups: [] });
    }
    await backend.close();
    writeFileSync(join(root, 'transport.key'), randomBytes(32).toString('base64'), { mode: 0o600 });
    await Promise.all([0, 1, 2].map(startNode));
  });

  after(async () => {
    for (const r of resuming) await r.xmpp.stop().catch(() => {});
    for (const c of clients) await c.stop();
    for (const n of nodes) await n?.stop();
    await buddy?.logout().catch(() => {});
    await sim?.stop();
    await redis?.stop();
    await db?.release();
    rmSync(root, { recursive: true, force: true });
  });

  it('resumes on node 2 a session dropped on node 1: queued messages once, no presence flap, routed to node 2 after', async () => {
    const carol = await plain(2, 'carol', 'desk');
    await carol.send(xml('presence'));
    const bob = await plain(1, 'bob', 'phone');
    // Over TLS @xmpp/client logs in with SASL2 + Bind2 and resumes inline (XEP-0388).
    const alice = await resumingClient(ports[0]!, 'alice', 'laptop', true);
    resuming.push(alice);
    const full = alice.xmpp.jid!.toString();
    await alice.xmpp.send(xml('presence', {}, xml('status', {}, 'on node 1')));
    await carol.waitFor(presenceFrom(full), "alice's presence on node 3", WAIT);
    // Node 2 must know alice's session on node 1 before bob writes to her full JID.
    await untilStatus(1, routedTo(full, 'n1'), 'node 2 routes alice to node 1');

    await alice.drop();
    for (let i = 1; i <= 3; i++) await bob.send(xml('message', { to: full, type: 'chat', id: `q${i}` }, xml('body', {}, `meanwhile ${i}`)));
    // A reply on bob's stream: his messages are in node 1's inbox (forwarding holds later replies),
    // so node 1 handles them before the takeover that comes after them.
    await bob.send(xml('iq', { type: 'get', id: 'p1', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    await bob.waitFor((s) => s.is('iq') && s.attrs.id === 'p1', 'ping result', WAIT);

    const resumed = new Promise<void>((resolve) => alice.sm.once('resumed', () => resolve()));
    // More while the session moves: whether they reach node 1 before or after the handover,
    // each arrives once on the resumed session (none diverted to offline storage, none twice).
    const during = (async () => {
      for (let i = 4; i <= 6; i++) await bob.send(xml('message', { to: full, type: 'chat', id: `q${i}` }, xml('body', {}, `meanwhile ${i}`)));
    })();
    await alice.reconnectTo(ports[1]!);
    await within(resumed, 'resumption on node 2');
    await during;
    const answer = alice.nonzas.find((n) => n.is('resumed', SM));
    assert.ok(answer, 'the server answered <resumed/>');
    assert.equal(answer.attrs.previd, alice.sm.id);
    assert.equal(alice.xmpp.jid!.toString(), full, 'the same full JID');
    for (let i = 1; i <= 6; i++) await alice.waitFor((s) => s.attrs.id === `q${i}`, `message ${i} after the resumption`);

    // The session directory: node 3 routes alice's full JID to node 2 now.
    await untilStatus(2, routedTo(full, 'n2'), 'node 3 routes alice to node 2');
    await carol.send(xml('message', { to: full, type: 'chat', id: 'after' }, xml('body', {}, 'after the move')));
    await alice.waitFor((s) => s.attrs.id === 'after', 'message to the full JID after the resumption');
    // Once each: node 1 resent nothing itself, node 2 resent what the client had not acknowledged.
    for (let i = 1; i <= 6; i++) assert.equal(alice.received.filter((s) => s.attrs.id === `q${i}`).length, 1, `message ${i} once`);
    // And alice's stanzas go out through node 2: carol gets her message.
    await alice.xmpp.send(xml('message', { to: 'carol@localhost', type: 'chat', id: 'back' }, xml('body', {}, 'from node 2')));
    await carol.waitFor((s) => s.attrs.id === 'back', "alice's message from node 2", WAIT);
    // carol never saw alice go, nor come again: her presence moved with the session.
    assert.deepEqual(carol.received.filter(presenceFrom(full)).map((p) => p.toString()), [], 'no presence from alice after the first');
    const moved = (await adminCall(clusterAdminSocket(root, 1), { op: 'status' })) as { cluster: { sessionsMovedIn: number } };
    assert.equal(moved.cluster.sessionsMovedIn, 1);
  });

  it('two resumptions of one session on two other nodes at once: one wins; another user and a bad h fail', async () => {
    const phone = await rawLogin(ports[0]!, 'erin', 'erin-pw', 'phone');
    phone.write(`<enable xmlns='${SM}' resume='true'/>`);
    const [enabled] = await phone.waitFor(/<enabled[^>]*\/>/);
    const id = /id=["']([^"']+)/.exec(enabled!)![1]!;
    // The node holding it is recorded in Redis (written after <enabled/>): wait for the record.
    const r = new Redis(redis.url);
    try {
      const deadline = Date.now() + WAIT;
      while (!(await r.get(`jf:claim:sm:${id}`))?.startsWith('n1#')) {
        assert.ok(Date.now() < deadline, 'the SM-ID recorded as held by node 1');
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      r.disconnect();
    }
    // Another user cannot take it: item-not-found, and erin's session is untouched.
    const thief = await authenticated(ports[1]!, 'bob');
    thief.write(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    assert.match((await thief.waitFor(FAILED, WAIT))[0], /item-not-found/);
    thief.destroy();
    phone.destroy();

    const [a, b] = await Promise.all([authenticated(ports[1]!, 'erin'), authenticated(ports[2]!, 'erin')]);
    a.write(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    b.write(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    const answer = (s: RawSocket) => s.waitFor(new RegExp(`${RESUMED.source}|${FAILED.source}`), WAIT).then((m) => m[0]);
    const answers = await Promise.all([answer(a), answer(b)]);
    assert.equal(answers.filter((x) => RESUMED.test(x)).length, 1, `one resumed: ${answers.join(' / ')}`);
    const lost = answers.find((x) => FAILED.test(x))!;
    assert.match(lost, /item-not-found/);
    const [winner, loser, loserPort] = RESUMED.test(answers[0]!) ? [a, b, ports[2]!] : [b, a, ports[1]!];
    // The winner has the session: a ping round trip on it.
    winner.write(`<iq type='get' id='w1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await winner.waitFor(/<iq[^>]*id=["']w1["'][^>]*type=["']result["']|<iq[^>]*type=["']result["'][^>]*id=["']w1["']/, WAIT);
    loser.destroy();

    // Resumed again from the other node with an h above what was sent: refused as on one node, and the session ends.
    winner.destroy();
    const greedy = await authenticated(loserPort, 'erin');
    greedy.write(`<resume xmlns='${SM}' previd='${id}' h='99'/>`);
    const [f] = await greedy.waitFor(FAILED, WAIT);
    assert.match(f!, /undefined-condition/);
    assert.match(f!, /handled-count-too-high/);
    greedy.destroy();
    const late = await authenticated(loserPort, 'erin');
    late.write(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    assert.match((await late.waitFor(FAILED, WAIT))[0], /item-not-found/);
    late.destroy();
  });

  it("a resumed user's home moves with her session: her PEP publishes on node 2 reach her contact and her own resource", async () => {
    const notify = [`${NICK}+notify`];
    const gus = await pepClient(ports[2]!, 'gus', 'desk');
    clients.push(gus);
    await gus.available(notify);
    const fran = await resumingClient(ports[0]!, 'fran', 'laptop', false, notify);
    resuming.push(fran);
    const full = fran.xmpp.jid!.toString();
    await fran.xmpp.send(capsPresence(notify));
    await gus.waitFor(presenceFrom(full), "fran's presence on node 3", WAIT);
    // On node 1 (her home node), a publish reaches gus and her own resource: what caps learned there works.
    await fran.xmpp.iqCaller.request(xml('iq', { type: 'set' }, nickPublish('Fran on node 1')));
    await gus.waitFor(nickEvent('fran@localhost', 'Fran on node 1'), 'the nick published on node 1 at gus', WAIT);
    await fran.waitFor(nickEvent('fran@localhost', 'Fran on node 1'), 'the nick published on node 1 at fran');

    await fran.drop();
    const resumed = new Promise<void>((resolve) => fran.sm.once('resumed', () => resolve()));
    await fran.reconnectTo(ports[1]!);
    await within(resumed, 'resumption on node 2');
    // Node 2 is her home node now (it handles stanzas to her bare JID, PEP included): it learned who is present to her.
    await fran.xmpp.iqCaller.request(xml('iq', { type: 'set' }, nickPublish('Fran on node 2')));
    await gus.waitFor(nickEvent('fran@localhost', 'Fran on node 2'), 'the nick published on node 2 at gus', WAIT);
    await fran.waitFor(nickEvent('fran@localhost', 'Fran on node 2'), 'the nick published on node 2 at fran');
    // gus never saw her go.
    assert.equal(gus.received.filter((s) => presenceFrom(full)(s) && s.attrs.type === 'unavailable').length, 0, 'no unavailable from fran');
  });

  it('messages sent to a session while it moves (one per event-loop turn, full and bare JID) arrive once each on the resumed session', async () => {
    const hank = await plain(2, 'hank', 'desk');
    const fran = resuming.find((r) => r.xmpp.jid?.toString().startsWith('fran@'))!;
    const full = fran.xmpp.jid!.toString();
    // Node 3 routes fran to node 2 (the previous test moved her there); she moves back to node 1 now.
    await untilStatus(2, routedTo(full, 'n2'), 'node 3 routes fran to node 2');
    // What the nodes tell each other meanwhile (jf:events).
    const events: Array<{ t: string; j?: string; to?: string; st?: { j: string } }> = [];
    const listener = new Redis(redis.url);
    await listener.subscribe('jf:events');
    listener.on('message', (_c: string, m: string) => events.push(JSON.parse(m)));
    await fran.drop();
    let resumedNow = false;
    const resumed = new Promise<void>((resolve) =>
      fran.sm.once('resumed', () => {
        resumedNow = true;
        resolve();
      }),
    );
    let n = 0;
    // A message per turn from the moment the client asks to resume until it is resumed (and one turn
    // more), alternately to her full and her bare JID: they reach node 3's routing before, during and
    // after the move.
    const burst = async () => {
      for (;;) {
        const done = resumedNow;
        n++;
        hank.send(xml('message', { to: n % 2 ? full : 'fran@localhost', type: 'chat', id: `m${n}` }, xml('body', {}, `move ${n}`))).catch(() => {});
        if (done || n >= 20_000) return;
        await new Promise((r) => setImmediate(r));
      }
    };
    const run: { sending: Promise<void> | null } = { sending: null };
    const onSend = (e: Element) => {
      if (e.is('resume', SM) && !run.sending) run.sending = burst();
    };
    fran.xmpp.on('send', onSend);
    await fran.reconnectTo(ports[0]!);
    await within(resumed, 'resumption on node 1');
    fran.xmpp.removeListener('send', onSend);
    assert.ok(run.sending, 'the client sent <resume/>');
    await run.sending;
    assert.ok(n < 20_000, `resumed before ${n} messages were sent`);
    // A round trip on hank's stream after the last one: every message left node 3.
    await hank.send(xml('iq', { type: 'get', id: 'h1', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    await hank.waitFor((s) => s.is('iq') && s.attrs.id === 'h1', 'ping result', WAIT);
    for (let i = 1; i <= n; i++) await fran.waitFor((s) => s.attrs.id === `m${i}`, `message m${i} of ${n} on the resumed session`);
    for (let i = 1; i <= n; i++) assert.equal(fran.received.filter((s) => s.attrs.id === `m${i}`).length, 1, `m${i} once`);
    // (A message diverted to offline storage would never reach it: a resumed session sends no initial presence.)
    // No node was told the session ended, even for a moment: it was told it moved, to node 1.
    listener.disconnect();
    assert.deepEqual(events.filter((e) => e.t === 'g' && e.j === full), [], 'no "session ended" event');
    assert.ok(events.some((e) => e.t === 'm' && e.st?.j === full && e.to?.startsWith('n1#')), 'a "moved to node 1" event');
  });

  it('a stale announcement of a moved session from the node it left changes nothing; commands sent there for it follow it', async () => {
    const fran = resuming.find((r) => r.xmpp.jid?.toString().startsWith('fran@'))!;
    const full = fran.xmpp.jid!.toString();
    const r = new Redis(redis.url);
    try {
      const instanceOf = async (i: number) => ((await adminCall(clusterAdminSocket(root, i), { op: 'status' })) as { cluster: { instance: string } }).cluster.instance;
      const [n1, n2] = [await instanceOf(0), await instanceOf(1)];
      // fran is on node 1 now (the previous test); she moves to node 2 again, so node 1 is the node she left.
      await fran.drop();
      const resumed = new Promise<void>((resolve) => fran.sm.once('resumed', () => resolve()));
      await fran.reconnectTo(ports[1]!);
      await within(resumed, 'resumption on node 2');
      const deadline = Date.now() + WAIT;
      let json = await r.hget(`jf:sessions:${n2}`, full);
      while (!json) {
        assert.ok(Date.now() < deadline, "fran's session in node 2's registry");
        await new Promise((res) => setTimeout(res, 50));
        json = await r.hget(`jf:sessions:${n2}`, full);
      }
      const state = JSON.parse(json) as { s: string; v: number; d: unknown[] };

      // What node 1 announced of her before the move, arriving late (a delayed event, a resync reading
      // its registry before the entry went): same session id, same bind order, a high version.
      await r.publish('jf:events', JSON.stringify({ t: 's', i: n1, st: { ...state, v: state.v + 1000 } }));
      // A marker session announced after it: once the nodes mirror the marker, they handled the stale state.
      const marker = { ...state, j: 'marker@localhost/x', s: 'marker-session', b: 1, v: 1, d: [] };
      await r.publish('jf:events', JSON.stringify({ t: 's', i: n1, st: marker }));
      for (const i of [1, 2]) await untilStatus(i, routedTo('marker@localhost/x', 'n1'), `node ${i + 1} mirrors the marker`);
      await r.publish('jf:events', JSON.stringify({ t: 'g', i: n1, j: marker.j, s: marker.s }));
      // fran's session on node 2 lives (no conflict), node 3 still routes her there.
      await fran.xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
      await untilStatus(2, routedTo(full, 'n2'), 'node 3 routes fran to node 2');
      const status3 = (await adminCall(clusterAdminSocket(root, 2), { op: 'status' })) as NodeStatus;
      assert.ok(!status3.cluster!.remoteSessionList!.some((l) => l.startsWith(`${full} n1#`)), 'no ghost of fran on node 1');

      // A module on node 1 (or a node whose view is behind) changes her session data through node 1: it reaches node 2.
      await r.xadd(`jf:inbox:${n1}`, '*', 'm', JSON.stringify({ t: 'data', j: full, s: state.s, k: 'test:followed', v: 'yes' }));
      const dataDeadline = Date.now() + WAIT;
      for (;;) {
        const now = JSON.parse((await r.hget(`jf:sessions:${n2}`, full)) ?? '{"d":[]}') as { d: Array<[string, unknown]> };
        if (now.d.some(([k, v]) => k === 'test:followed' && v === 'yes')) break;
        assert.ok(Date.now() < dataDeadline, 'the data command sent to node 1 reached the session on node 2');
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      r.disconnect();
    }
  });

  it("a resumed user's MSN login moves with her home node: her messages to an MSN contact go out from node 2", async () => {
    const ivy = await resumingClient(ports[0]!, 'ivy', 'laptop', false);
    resuming.push(ivy);
    await ivy.xmpp.send(xml('presence'));
    // Registered on node 1 (her home node): the transport logs her in to MSN there.
    const reg = await ivy.xmpp.iqCaller.request(
      xml('iq', { type: 'set', to: MSN_DOMAIN }, xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'ivy@hotmail.com'), xml('password', {}, 'ivymsnpw'))),
    );
    assert.equal(reg.attrs.type, 'result');
    await ivy.waitFor((s) => s.is('presence') && s.attrs.from === MSN_DOMAIN && !s.attrs.type, 'transport online');
    buddy = new MsnSession({ email: 'pal@hotmail.com', password: 'palpw', server: `127.0.0.1:${msn.nsPort}`, nexusUrl: msn.nexusUrl });
    buddy.on('error', () => {});
    await buddy.login();
    await ivy.waitFor((s) => s.is('presence') && s.attrs.from?.split('/')[0] === PAL && !s.attrs.type, 'the MSN contact online');

    await ivy.drop();
    const resumed = new Promise<void>((resolve) => ivy.sm.once('resumed', () => resolve()));
    await ivy.reconnectTo(ports[1]!);
    await within(resumed, 'resumption on node 2');
    // Her message to the MSN contact is handled on node 2 now, through a login of its own there.
    const heard = new Promise<string>((resolve) => buddy!.on('message', (m) => m.from === 'ivy@hotmail.com' && resolve(m.text)));
    await ivy.xmpp.send(xml('message', { to: PAL, type: 'chat', id: 'to-pal' }, xml('body', {}, 'after the move')));
    assert.equal(await within(heard, 'the MSN contact hears ivy after the move'), 'after the move');
    // Node 1 logged out: one login of hers is left on MSN.
    const deadline = Date.now() + WAIT;
    while (sim.onlineUsers().filter((e) => e === 'ivy@hotmail.com').length !== 1) {
      assert.ok(Date.now() < deadline, `one MSN login of ivy's: ${sim.onlineUsers().join(', ')}`);
      await new Promise((res) => setTimeout(res, 50));
    }
    // Nobody told her the transport or her contact went away.
    assert.ok(!ivy.received.some((s) => s.is('presence') && s.attrs.type === 'unavailable' && (s.attrs.from === MSN_DOMAIN || s.attrs.from?.startsWith(PAL))), 'no unavailable from MSN');
  });

  it('a resumption of a session on a node killed with SIGKILL fails with item-not-found; nothing sent meanwhile is lost', async () => {
    const bob = clients.find((c) => c.jid.startsWith('bob@'))!;
    // Without SASL2 this time: <resume/> on the stream (the other path into the same code).
    const dave = await resumingClient(ports[0]!, 'dave', 'tablet', false);
    resuming.push(dave);
    const full = dave.xmpp.jid!.toString();
    const fails: Element[] = [];
    dave.sm.on('fail', (s: Element) => fails.push(s));
    await untilStatus(1, routedTo(full, 'n1'), 'node 2 routes dave to node 1');

    // The kill drops dave's connection (the kernel closes the dead process's sockets).
    const gone = new Promise((r) => dave.xmpp.once('disconnect', r));
    await nodes[0]!.kill('SIGKILL');
    await within(gone, "dave's connection closed by the kill");
    for (let i = 1; i <= 3; i++) await bob.send(xml('message', { to: full, type: 'chat', id: `k${i}` }, xml('body', {}, `while node 1 is down ${i}`)));
    await bob.send(xml('message', { to: 'dave@localhost', type: 'chat', id: 'k4' }, xml('body', {}, 'to the bare JID')));

    // Node 2 asks node 1 (still a member until its heartbeat deadline, or already cleaned up): no session comes.
    const online = new Promise<void>((resolve) => dave.xmpp.once('online', () => resolve()));
    await dave.reconnectTo(ports[1]!);
    await within(online, 'dave online again on node 2');
    const failed = dave.nonzas.find((n) => n.is('failed', SM));
    assert.ok(failed, 'the server answered <failed/>');
    assert.ok(failed.getChild('item-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'), failed.toString());
    assert.ok(!dave.nonzas.some((n) => n.is('resumed', SM)), 'not resumed');
    assert.equal(dave.xmpp.jid!.toString().split('/')[0], 'dave@localhost', 'a fresh session bound');
    // The fresh session asks for what waited for it: offline messages come with the initial presence.
    await dave.xmpp.send(xml('presence'));
    for (const id of ['k1', 'k2', 'k3', 'k4']) await dave.waitFor((s) => s.attrs.id === id, `message ${id} on the fresh session`);
    for (const id of ['k1', 'k2', 'k3', 'k4']) assert.equal(dave.received.filter((s) => s.attrs.id === id).length, 1, `${id} once`);
  });
});
