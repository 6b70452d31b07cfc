/**
 * MsnSession against the MSN simulator (test/msn-sim): login through the
 * dispatch server and Passport, lists, presence, chats, group chats, display
 * pictures over MSNSLP, auth failure and reconnection.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import {
  MsnAuthError,
  MsnError,
  MsnSession,
  type MsnSessionEvents,
  type MsnSessionOptions,
} from '../../src/msnp/index.ts';
import { MsnSimulator, type SimulatorEndpoints } from '../msn-sim/simulator.ts';

const ALICE = 'alice@hotmail.com';
const BOB = 'bob@hotmail.com';
const CAROL = 'carol@hotmail.com';
const DAVE = 'dave@hotmail.com';

type EventName = keyof MsnSessionEvents;

/** Resolves with the first `event` whose payload satisfies `match`; rejects after `ms`. */
function waitFor<K extends EventName>(
  session: MsnSession,
  event: K,
  match: (...args: MsnSessionEvents[K]) => boolean = () => true,
  ms = 4000,
): Promise<MsnSessionEvents[K][0]> {
  const emitter = session as unknown as EventEmitter;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out waiting for ${String(event)} on ${session.email}`));
    }, ms);
    const listener = (...args: unknown[]) => {
      if (!match(...(args as MsnSessionEvents[K]))) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args[0] as MsnSessionEvents[K][0]);
    };
    emitter.on(event, listener);
  });
}

describe('MsnSession with the MSN simulator', () => {
  let sim: MsnSimulator;
  let ep: SimulatorEndpoints;
  const sessions: MsnSession[] = [];

  function session(email: string, password: string, extra: Partial<MsnSessionOptions> = {}): MsnSession {
    const s = new MsnSession({
      email,
      password,
      // The dispatch server, so every login goes through XFR NS.
      server: `${ep.dispatchHost}:${ep.dispatchPort}`,
      nexusUrl: ep.nexusUrl,
      timeouts: { request: 3000, join: 3000, transfer: 5000, login: 8000 },
      reconnect: { initialDelay: 50, maxDelay: 400 },
      // The MSNP8-11 suite (MSNP12+ are in versions.test.ts).
      protocols: ['MSNP11', 'MSNP10', 'MSNP9', 'MSNP8'],
      ...extra,
    });
    sessions.push(s);
    return s;
  }

  let alice: MsnSession;
  let bob: MsnSession;

  before(async () => {
    sim = new MsnSimulator();
    ep = await sim.start();
    sim.addAccount(ALICE, 'alice-pw', { nickname: 'Alice' });
    sim.addAccount(BOB, 'bob-pw', { nickname: 'Bob' });
    sim.addAccount(CAROL, 'carol-pw', { nickname: 'Carol' });
    sim.addAccount(DAVE, 'dave-pw', { nickname: 'Dave' });
    sim.makeFriends(ALICE, CAROL);
    sim.makeFriends(BOB, CAROL);
  });

  after(async () => {
    await Promise.all(sessions.map((s) => s.logout()));
    await sim.stop();
  });

  test('logs in over MSNP11 via dispatch, nexus and Passport, answering the challenge', async () => {
    alice = session(ALICE, 'alice-pw');
    bob = session(BOB, 'bob-pw');
    const qry = new Promise<void>((resolve) => {
      const onLog = (e: { server: string; direction: string; email?: string; text: string }) => {
        if (e.server === 'NS' && e.direction === 'out' && e.email === ALICE && /^QRY \d+$/.test(e.text)) {
          sim.off('log', onLog);
          resolve();
        }
      };
      sim.on('log', onLog);
    });
    const connected = waitFor(alice, 'connected');
    const list = waitFor(alice, 'contactList');
    await Promise.all([alice.login(), bob.login()]);
    assert.equal((await connected).protocol, 'MSNP11');
    assert.deepEqual(
      (await list).contacts.map((c) => c.email),
      [CAROL],
    );
    assert.equal(alice.nickname, 'Alice');
    assert.equal(sim.getPresence(ALICE)?.status, 'NLN');
    // The simulator challenges right after login and answers QRY only when the response is right.
    await qry;
    assert.ok(alice.connected);
  });

  test('adding each other: reverse-list notice, then each sees the other online', async () => {
    const bobSeesAdd = waitFor(bob, 'addedBy', (e) => e.email === ALICE);
    const aliceSeesBob = waitFor(alice, 'presence', (p) => p.email === BOB && p.status === 'NLN');
    const added = await alice.addContact(BOB);
    assert.ok(added.lists.includes('FL') && added.lists.includes('AL'));
    assert.equal((await bobSeesAdd).nickname, 'Alice');
    assert.equal((await aliceSeesBob).nickname, 'Bob');

    const aliceSeesAdd = waitFor(alice, 'addedBy', (e) => e.email === BOB);
    const bobSeesAlice = waitFor(bob, 'presence', (p) => p.email === ALICE && p.status === 'NLN');
    await bob.addContact(ALICE);
    await aliceSeesAdd;
    await bobSeesAlice;
    assert.deepEqual(sim.getLists(ALICE).FL.sort(), [BOB, CAROL]);
    assert.ok(sim.getLists(ALICE).RL.includes(BOB));
    assert.equal(alice.getContact(BOB)?.status, 'NLN');
    assert.ok(alice.getContact(BOB)?.lists.includes('RL'));
  });

  test('status, personal message and nickname changes reach the other side', async () => {
    const away = waitFor(alice, 'presence', (p) => p.email === BOB && p.status === 'AWY');
    await bob.setStatus('AWY');
    await away;
    assert.equal(bob.status, 'AWY');

    const psm = waitFor(alice, 'personalMessage', (e) => e.email === BOB);
    await bob.setPersonalMessage('Out to <lunch> & back');
    assert.equal((await psm).text, 'Out to <lunch> & back');
    assert.equal(alice.getContact(BOB)?.personalMessage, 'Out to <lunch> & back');

    const nick = waitFor(alice, 'nickname', (e) => e.email === BOB);
    await bob.setNickname('Bobby Tables ✓');
    assert.equal((await nick).nickname, 'Bobby Tables ✓');
    assert.equal(bob.nickname, 'Bobby Tables ✓');
    assert.equal(sim.getPresence(BOB)?.friendlyName, 'Bobby Tables ✓');
  });

  test('chat over a switchboard, typing both ways, long UTF-8 message split', async () => {
    const got = waitFor(bob, 'message', (m) => m.from === ALICE);
    await alice.sendMessage(BOB, 'héllo bob 😀');
    const msg = await got;
    assert.equal(msg.text, 'héllo bob 😀');
    assert.equal(msg.conversationId, undefined);

    const bobTyping = waitFor(bob, 'typing', (t) => t.from === ALICE);
    await alice.sendTyping(BOB);
    await bobTyping;
    const aliceTyping = waitFor(alice, 'typing', (t) => t.from === BOB);
    await bob.sendTyping(ALICE);
    await aliceTyping;

    const reply = waitFor(alice, 'message', (m) => m.from === BOB);
    await bob.sendMessage(ALICE, 'hi alice');
    assert.equal((await reply).text, 'hi alice');

    // Reuses the open switchboard: no second conversation appears on the server.
    assert.equal(
      sim.switchboards().filter((s) => s.participants.includes(ALICE) && s.participants.includes(BOB)).length,
      1,
    );

    const long = `${'ü'.repeat(900)}${'x'.repeat(800)}${'🎉'.repeat(300)}`;
    const parts: string[] = [];
    const all = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('long message parts missing')), 4000);
      const on = (m: { from: string; text: string }) => {
        parts.push(m.text);
        if (parts.join('').length >= long.length) {
          clearTimeout(timer);
          bob.off('message', on);
          resolve();
        }
      };
      bob.on('message', on);
    });
    await alice.sendMessage(BOB, long);
    await all;
    assert.ok(parts.length >= 2);
    assert.equal(parts.join(''), long);
  });

  test('sending to an offline contact rejects with MsnError 217', async () => {
    await alice.addContact(DAVE);
    await assert.rejects(
      alice.sendMessage(DAVE, 'are you there?'),
      (e: unknown) => e instanceof MsnError && e.code === 217,
    );
  });

  test('groups, moving contacts, block/unblock and removal are applied on the server', async () => {
    const group = await alice.addGroup('Work mates');
    assert.ok(alice.groups.some((g) => g.id === group.id && g.name === 'Work mates'));
    assert.ok(sim.getLists(ALICE).groups.some((g) => g.guid === group.id && g.name === 'Work mates'));

    await alice.moveContact(CAROL, group.id);
    assert.deepEqual(alice.getContact(CAROL)?.groups, [group.id]);
    assert.deepEqual(sim.getLists(ALICE).contacts.find((c) => c.email === CAROL)?.groups, ['Work mates']);

    await alice.renameGroup(group.id, 'Colleagues');
    assert.ok(sim.getLists(ALICE).groups.some((g) => g.name === 'Colleagues'));

    await alice.moveContact(CAROL, null, group.id);
    assert.deepEqual(sim.getLists(ALICE).contacts.find((c) => c.email === CAROL)?.groups, []);
    await alice.removeGroup(group.id);
    assert.equal(sim.getLists(ALICE).groups.length, 0);

    await alice.block(CAROL);
    assert.ok(sim.getLists(ALICE).BL.includes(CAROL));
    assert.ok(!sim.getLists(ALICE).AL.includes(CAROL));
    assert.deepEqual(alice.getContact(CAROL)?.lists.sort(), ['BL', 'FL', 'RL']);
    await alice.unblock(CAROL);
    assert.ok(sim.getLists(ALICE).AL.includes(CAROL));
    assert.ok(!sim.getLists(ALICE).BL.includes(CAROL));

    const removed = waitFor(alice, 'contactRemoved', (e) => e.email === DAVE && e.list === 'FL');
    await alice.removeContact(DAVE);
    await removed;
    assert.ok(!sim.getLists(ALICE).FL.includes(DAVE));
    await assert.rejects(
      alice.moveContact(DAVE, 'nope'),
      (e: unknown) => e instanceof MsnError && e.code === 216,
    );
  });

  test('three-party conversation: start, message everyone, someone leaves', async () => {
    const carol = session(CAROL, 'carol-pw');
    await carol.login();
    const bobConv = waitFor(bob, 'conversation', (c) => c.participants.length === 2);
    const carolConv = waitFor(carol, 'conversation', (c) => c.participants.length === 2);
    const id = await alice.startConversation([BOB, CAROL]);
    assert.deepEqual(alice.conversations.find((c) => c.id === id)?.participants.sort(), [BOB, CAROL]);
    const bc = await bobConv;
    const cc = await carolConv;
    assert.deepEqual(bc.participants.sort(), [ALICE, CAROL]);
    assert.deepEqual(cc.participants.sort(), [ALICE, BOB]);

    const bobGets = waitFor(bob, 'message', (m) => m.conversationId === bc.id);
    const carolGets = waitFor(carol, 'message', (m) => m.conversationId === cc.id);
    await alice.sendToConversation(id, 'hello both');
    assert.equal((await bobGets).text, 'hello both');
    assert.equal((await carolGets).text, 'hello both');

    const carolHearsBob = waitFor(carol, 'message', (m) => m.from === BOB && m.conversationId === cc.id);
    const aliceHearsBob = waitFor(alice, 'message', (m) => m.from === BOB && m.conversationId === id);
    await bob.sendToConversation(bc.id, 'hi from bob');
    await carolHearsBob;
    await aliceHearsBob;

    const left = waitFor(alice, 'conversation', (c) => c.id === id && c.left === CAROL);
    await carol.leaveConversation(cc.id);
    assert.deepEqual((await left).participants, [BOB]);
    await carol.logout();
  });

  test('an idle switchboard is closed with OUT, and the next message opens a new one', async () => {
    const carol = session(CAROL, 'carol-pw', {
      timeouts: { switchboardIdle: 150, request: 3000, join: 3000 },
    });
    await carol.login();
    const out = new Promise<void>((resolve) => {
      const onLog = (e: { server: string; direction: string; email?: string; text: string }) => {
        if (e.server === 'SB' && e.direction === 'in' && e.email === CAROL && e.text === 'OUT') {
          sim.off('log', onLog);
          resolve();
        }
      };
      sim.on('log', onLog);
    });
    const first = waitFor(alice, 'message', (m) => m.from === CAROL && m.text === 'one');
    await carol.sendMessage(ALICE, 'one');
    await first;
    await out;
    const second = waitFor(alice, 'message', (m) => m.from === CAROL && m.text === 'two');
    await carol.sendMessage(ALICE, 'two');
    await second;
    await carol.logout();
  });

  test('display picture: MSNObject in presence, fetched over MSNSLP, SHA1D verified', async () => {
    const png = await sharp({
      create: { width: 96, height: 96, channels: 4, background: { r: 200, g: 40, b: 90, alpha: 1 } },
    })
      .png()
      .toBuffer();
    const announced = waitFor(alice, 'avatar', (e) => e.email === BOB && e.msnObject !== undefined);
    const obj = await bob.setAvatar(png);
    assert.ok(obj);
    const seen = (await announced).msnObject!;
    assert.equal(seen.sha1d, createHash('sha1').update(png).digest('base64'));
    assert.equal(seen.size, png.length);
    assert.equal(seen.creator, BOB);

    const data = await alice.fetchAvatar(BOB);
    assert.ok(data.equals(png));
    const meta = await sharp(data).metadata();
    assert.equal(meta.width, 96);
    // Presence keeps the status the user chose when the picture changes.
    assert.equal(sim.getPresence(BOB)?.status, 'AWY');
  });

  test('wrong password rejects with MsnAuthError and does not reconnect', async () => {
    const bad = session(ALICE, 'not-the-password');
    let reconnecting = false;
    bad.on('reconnecting', () => {
      reconnecting = true;
    });
    await assert.rejects(bad.login(), (e: unknown) => e instanceof MsnAuthError && e instanceof MsnError);
    assert.equal(bad.connected, false);
    assert.equal(reconnecting, false);
    assert.ok(alice.connected);
  });

  test('simulator restart: reconnects and restores status, personal message and nickname', async () => {
    const dropped = waitFor(bob, 'disconnected');
    const retrying = waitFor(bob, 'reconnecting');
    const bobBack = waitFor(bob, 'connected', () => true, 8000);
    const aliceBack = waitFor(alice, 'connected', () => true, 8000);
    await sim.restart();
    const d = await dropped;
    assert.equal(d.reason, 'network');
    assert.equal(d.willReconnect, true);
    assert.ok((await retrying).attempt >= 1);
    await Promise.all([bobBack, aliceBack]);
    assert.ok(bob.connected && alice.connected);
    assert.equal(sim.getPresence(BOB)?.status, 'AWY');
    assert.equal(sim.getPresence(BOB)?.friendlyName, 'Bobby Tables ✓');
    assert.match(sim.getPersonalData(BOB) ?? '', /Out to &lt;lunch&gt; &amp; back/);
    assert.ok(sim.getPresence(BOB)?.msnObject);
    // Alice sees Bob again, with his restored status, after the reconnect.
    if (alice.getContact(BOB)?.status !== 'AWY') {
      await waitFor(alice, 'presence', (p) => p.email === BOB && p.status === 'AWY');
    }
    const after = waitFor(bob, 'message', (m) => m.from === ALICE);
    await alice.sendMessage(BOB, 'welcome back');
    assert.equal((await after).text, 'welcome back');
  });

  test('OUT OTH (logged in elsewhere) disconnects without reconnecting', async () => {
    const gone = waitFor(bob, 'disconnected');
    const offline = waitFor(alice, 'presence', (p) => p.email === BOB && p.status === 'FLN');
    let retried = false;
    bob.on('reconnecting', () => {
      retried = true;
    });
    assert.ok(sim.disconnect(BOB, 'OTH'));
    const d = await gone;
    assert.equal(d.reason, 'otherLogin');
    assert.equal(d.willReconnect, false);
    assert.equal(bob.connected, false);
    await offline;
    assert.equal(retried, false);
    assert.equal(sim.isOnline(BOB), false);
  });
  for (const protocol of ['MSNP8', 'MSNP9', 'MSNP10']) {
    test(`${protocol}: logs in, answers the MD5 challenge, keeps alive with PNG, chats`, async () => {
      const dave = session(DAVE, 'dave-pw', {
        protocols: [protocol],
        timeouts: { ping: 50, request: 3000, login: 8000 },
      });
      const seen = { qry: false, qng: false };
      const both = new Promise<void>((resolve) => {
        const onLog = (e: { server: string; direction: string; email?: string; text: string }) => {
          if (e.server !== 'NS' || e.direction !== 'out' || e.email !== DAVE) return;
          if (/^QRY \d+$/.test(e.text)) seen.qry = true;
          if (/^QNG/.test(e.text)) seen.qng = true;
          if (seen.qry && seen.qng) {
            sim.off('log', onLog);
            resolve();
          }
        };
        sim.on('log', onLog);
      });
      if (!alice.getContact(DAVE)?.lists.includes('FL')) await alice.addContact(DAVE);
      const daveOnline = waitFor(alice, 'presence', (p) => p.email === DAVE && p.status === 'NLN');
      await dave.login();
      assert.equal(dave.protocol, protocol);
      assert.equal(dave.nickname, 'Dave');
      await daveOnline;
      await both;
      assert.ok(dave.connected);
      const got = waitFor(dave, 'message', (m) => m.from === ALICE);
      await alice.sendMessage(DAVE, `hello ${protocol}`);
      assert.equal((await got).text, `hello ${protocol}`);
      const offline = waitFor(alice, 'presence', (p) => p.email === DAVE && p.status === 'FLN');
      await dave.logout();
      await offline;
    });
  }
});
