/**
 * MsnSession against the simulator for what MSNP12-18 change: how each
 * version logs in (Passport 1.4 TWN up to 12, the SOAP token service from
 * 13, SSO with the MBI_KEY challenge from 15), where the lists live (SYN up
 * to 12; address book, sharing service and ADL/RML from 13), offline
 * messages both ways (13+), several endpoints per account (16+), and the
 * handle and capability formats of 14, 16 and 18 — with clients of
 * different versions talking to each other. (MSNP8-11: session.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MsnAuthError, MsnError, MsnSession, type MsnSessionEvents } from '../../src/msnp/index.ts';
import { mbiKeyResponse } from '../../src/msnp/sso.ts';
import { MsnSimulator, type SimulatorEndpoints } from '../msn-sim/simulator.ts';
import { checkSsoResponse } from '../msn-sim/tokens.ts';

type EventName = keyof MsnSessionEvents;

function next<K extends EventName>(
  s: MsnSession,
  event: K,
  match: (...args: MsnSessionEvents[K]) => boolean = () => true,
  ms = 5000,
): Promise<MsnSessionEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.off(event, listener as never);
      reject(new Error(`timed out waiting for ${String(event)} on ${s.email}`));
    }, ms);
    const listener = (...args: MsnSessionEvents[K]) => {
      if (!match(...args)) return;
      clearTimeout(timer);
      s.off(event, listener as never);
      resolve(args[0]);
    };
    s.on(event, listener as never);
  });
}

describe('MSNP12-18 with the simulator', () => {
  let sim: MsnSimulator;
  let ep: SimulatorEndpoints;
  const lines: string[] = [];
  const open: MsnSession[] = [];

  function client(email: string, password: string, version: number | number[], machineGuid?: string): MsnSession {
    const versions = Array.isArray(version) ? version : [version];
    const s = new MsnSession({
      email,
      password,
      server: `${ep.dispatchHost}:${ep.dispatchPort}`,
      nexusUrl: ep.nexusUrl,
      protocols: versions.map((v) => `MSNP${v}`),
      machineGuid,
      timeouts: { request: 4000, join: 4000, login: 10000 },
      reconnect: { enabled: false },
    });
    s.on('error', () => {});
    open.push(s);
    return s;
  }

  /** Resolves with the next simulator log line matching `pattern`. */
  function simLog(pattern: RegExp, ms = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        sim.off('log', onLog);
        reject(new Error(`timed out waiting for the simulator to log ${pattern}`));
      }, ms);
      const onLog = (e: { text: string }) => {
        if (!pattern.test(e.text)) return;
        clearTimeout(timer);
        sim.off('log', onLog);
        resolve(e.text);
      };
      sim.on('log', onLog);
    });
  }

  /** Simulator lines for one account since `from`. */
  const seen = (email: string, from: number) => lines.slice(from).filter((l) => l.includes(` ${email} `) || l.includes(`${email}:`));

  before(async () => {
    sim = new MsnSimulator({ log: (e) => lines.push(`${e.server} ${e.direction} ${e.email ?? '-'} ${e.text}`) });
    for (const [email, nick] of [
      ['ann@hotmail.com', 'Ann'],
      ['ben@hotmail.com', 'Ben'],
      ['cat@hotmail.com', 'Cat'],
      ['dan@hotmail.com', 'Dan'],
    ] as const) {
      sim.addAccount(email, `${nick.toLowerCase()}-pw`, { nickname: nick });
    }
    sim.makeFriends('ann@hotmail.com', 'ben@hotmail.com');
    sim.makeFriends('ann@hotmail.com', 'cat@hotmail.com');
    ep = await sim.start();
  });

  after(async () => {
    await Promise.all(open.map((s) => s.logout().catch(() => {})));
    await sim.stop();
  });

  for (const v of [12, 13, 14, 15, 16, 17, 18]) {
    it(`MSNP${v}: logs in the documented way, sees its contacts, chats both ways`, async () => {
      const mark = lines.length;
      const ann = client('ann@hotmail.com', 'ann-pw', v);
      const ben = client('ben@hotmail.com', 'ben-pw', v);
      await ann.login();
      assert.equal(ann.protocol, `MSNP${v}`);
      const log = seen('ann@hotmail.com', mark).join('\n');
      if (v >= 15) {
        assert.match(lines.slice(mark).join('\n'), /USR \d+ SSO S MBI_KEY_OLD \S+/, 'SSO policy challenge');
        assert.match(log, /RST\.srf: 5 tokens/);
      } else if (v >= 13) {
        assert.match(lines.slice(mark).join('\n'), /USR \d+ TWN I ann@hotmail\.com/);
        assert.match(log, /RST\.srf: 4 tokens/);
      } else {
        assert.match(lines.slice(mark).join('\n'), /login2\.srf 200/, 'Passport 1.4');
      }
      if (v >= 13) {
        assert.match(log, /abservice ABFindAll/);
        assert.match(log, /SharingService FindMembership/);
        assert.doesNotMatch(log, /NS in ann@hotmail\.com SYN/);
      } else {
        assert.match(log, /NS in ann@hotmail\.com SYN/);
      }
      assert.deepEqual(ann.getContact('ben@hotmail.com')?.lists.sort(), ['AL', 'FL', 'RL']);
      assert.equal(ann.getContact('ben@hotmail.com')?.nickname, 'Ben');

      const online = next(ann, 'presence', (p) => p.email === 'ben@hotmail.com' && p.status === 'NLN');
      await ben.login();
      const p = await online;
      assert.equal(p.nickname, 'Ben');
      assert.equal(p.clientId, 0x40000024, 'capabilities read in every format');
      if (v >= 18) assert.match(lines.slice(mark).join('\n'), /NS out ann@hotmail\.com NLN NLN 1:ben@hotmail\.com Ben \d+:\d+/);
      else if (v >= 14) assert.match(lines.slice(mark).join('\n'), /NS out ann@hotmail\.com NLN NLN ben@hotmail\.com 1 Ben/);

      const psm = next(ben, 'personalMessage', (m) => m.email === 'ann@hotmail.com' && m.text === `on ${v}`);
      await ann.setPersonalMessage(`on ${v}`);
      await psm;

      const got = next(ben, 'message', (m) => m.from === 'ann@hotmail.com');
      await ann.sendMessage('ben@hotmail.com', `hello over MSNP${v} ✓`);
      assert.equal((await got).text, `hello over MSNP${v} ✓`);
      const back = next(ann, 'message', (m) => m.from === 'ben@hotmail.com');
      await ben.sendMessage('ann@hotmail.com', 'and back');
      assert.equal((await back).text, 'and back');

      const gone = next(ann, 'presence', (m) => m.email === 'ben@hotmail.com' && m.status === 'FLN');
      await ben.logout();
      await gone;
      await ann.logout();
    });
  }

  it('MSNP18 and MSNP11 clients chat with each other (each sees its own dialect)', async () => {
    const ann = client('ann@hotmail.com', 'ann-pw', 18);
    const cat = client('cat@hotmail.com', 'cat-pw', 11);
    await ann.login();
    const online = next(ann, 'presence', (p) => p.email === 'cat@hotmail.com' && p.status === 'NLN');
    await cat.login();
    await online;
    const got = next(cat, 'message', (m) => m.from === 'ann@hotmail.com');
    await ann.sendMessage('cat@hotmail.com', 'across versions');
    assert.equal((await got).text, 'across versions');
    const typing = next(ann, 'typing', (t) => t.from === 'cat@hotmail.com');
    await cat.sendTyping('ann@hotmail.com');
    await typing;
    await cat.logout();
    await ann.logout();
  });

  it('MSNP15 SSO: a wrong password fails at the token service; a wrong MBI_KEY answer is refused', async () => {
    const bad = client('ann@hotmail.com', 'wrong', 15);
    await assert.rejects(bad.login(), (err: unknown) => err instanceof MsnAuthError);
    assert.equal(sim.isOnline('ann@hotmail.com'), false);
    // The answer is checked against the ticket's proof key (two independent implementations agree).
    const secret = Buffer.alloc(24, 7).toString('base64');
    const nonce = 'c29tZSBub25jZSB0aGF0IHRoZSBzZXJ2ZXIgc2VudA==';
    assert.equal(checkSsoResponse(secret, nonce, mbiKeyResponse(secret, nonce)), true);
    assert.equal(checkSsoResponse(Buffer.alloc(24, 8).toString('base64'), nonce, mbiKeyResponse(secret, nonce)), false);
    assert.equal(checkSsoResponse(secret, `${nonce}x`, mbiKeyResponse(secret, nonce)), false);
  });

  for (const v of [13, 18]) {
    it(`MSNP${v}: the address book holds the lists (add, group, block, remove), and RL changes are pushed`, async () => {
      const ann = client('ann@hotmail.com', 'ann-pw', v);
      const dan = client('dan@hotmail.com', 'dan-pw', v);
      await ann.login();
      await dan.login();
      const asked = next(dan, 'addedBy', (a) => a.email === 'ann@hotmail.com');
      await ann.addContact('dan@hotmail.com');
      assert.equal((await asked).nickname, 'Ann');
      let lists = sim.getLists('ann@hotmail.com');
      assert.ok(lists.FL.includes('dan@hotmail.com') && lists.AL.includes('dan@hotmail.com'));
      await assert.rejects(ann.addContact('dan@hotmail.com'), (e: unknown) => e instanceof MsnError && e.code === 215);
      const group = await ann.addGroup('Pals');
      await ann.moveContact('dan@hotmail.com', group.id);
      assert.deepEqual(sim.getLists('ann@hotmail.com').contacts.find((c) => c.email === 'dan@hotmail.com')?.groups, ['Pals']);
      await ann.renameGroup(group.id, 'Friends');
      assert.ok(sim.getLists('ann@hotmail.com').groups.some((g) => g.name === 'Friends'));
      await ann.block('dan@hotmail.com');
      lists = sim.getLists('ann@hotmail.com');
      assert.ok(lists.BL.includes('dan@hotmail.com') && !lists.AL.includes('dan@hotmail.com'));
      await ann.unblock('dan@hotmail.com');
      const dropped = next(dan, 'contactRemoved', (c) => c.email === 'ann@hotmail.com' && c.list === 'RL');
      await ann.removeContact('dan@hotmail.com');
      await dropped;
      assert.equal(sim.getLists('ann@hotmail.com').FL.includes('dan@hotmail.com'), false);
      await ann.removeGroup(group.id);
      await ann.removeContact('dan@hotmail.com', 'AL');
      await dan.logout();
      await ann.logout();
    });
  }

  for (const v of [13, 18]) {
    it(`MSNP${v}: offline messages both ways (Store2 with the lock key, Mail-Data at login and while online)`, async () => {
      const ann = client('ann@hotmail.com', 'ann-pw', v);
      await ann.login();
      assert.equal(ann.offlineMessagesSupported, true);
      // Ben is offline: two messages wait for him, in order.
      await ann.sendOfflineMessage('ben@hotmail.com', 'first, while you were out');
      await ann.sendOfflineMessage('ben@hotmail.com', 'second ✓');
      assert.deepEqual(sim.accounts.get('ben@hotmail.com')?.oims.map((o) => o.sequence), [1, 2]);
      const ben = client('ben@hotmail.com', 'ben-pw', v);
      const received: MsnSessionEvents['offlineMessage'][0][] = [];
      ben.on('offlineMessage', (m) => received.push(m));
      const second = next(ben, 'offlineMessage', (m) => m.text === 'second ✓');
      const deleted = simLog(/^rsi DeleteMessages$/);
      await ben.login();
      await second;
      assert.deepEqual(
        received.map((m) => [m.from, m.nickname, m.text]),
        [
          ['ann@hotmail.com', 'Ann', 'first, while you were out'],
          ['ann@hotmail.com', 'Ann', 'second ✓'],
        ],
      );
      assert.ok(received.every((m) => Math.abs(m.sent.getTime() - Date.now()) < 60_000));
      // Read, then deleted on the server.
      await deleted;
      assert.equal(sim.accounts.get('ben@hotmail.com')?.oims.length, 0);
      // While Ben appears offline (HDN), a new one is announced and fetched at once.
      await ben.setStatus('HDN');
      const live = next(ben, 'offlineMessage', (m) => m.text === 'you look offline');
      await ann.sendOfflineMessage('ben@hotmail.com', 'you look offline');
      await live;
      await ben.logout();
      await ann.logout();
    });
  }

  it('MSNP12 has no offline messages: sendOfflineMessage refuses', async () => {
    const ann = client('ann@hotmail.com', 'ann-pw', 12);
    await ann.login();
    assert.equal(ann.offlineMessagesSupported, false);
    await assert.rejects(ann.sendOfflineMessage('ben@hotmail.com', 'x'), (e: unknown) => e instanceof MsnError && e.code === 502);
    await ann.logout();
  });

  it('MSNP16+: one account on two endpoints at once (MPOP); an older client still replaces both', async () => {
    const home = client('ann@hotmail.com', 'ann-pw', 18, '11111111-1111-1111-1111-111111111111');
    const work = client('ann@hotmail.com', 'ann-pw', 16, '22222222-2222-2222-2222-222222222222');
    await home.login();
    const sees = next(home, 'endpoints', (e) => e.endpoints.some((x) => x.id === '{22222222-2222-2222-2222-222222222222}'));
    await work.login();
    await sees;
    assert.equal(home.connected && work.connected, true, 'neither was kicked');
    // A contact's message reaches every endpoint; neither takes the other's for the contact's.
    const ben = client('ben@hotmail.com', 'ben-pw', 18);
    await ben.login();
    const atHome = next(home, 'message', (m) => m.from === 'ben@hotmail.com');
    const atWork = next(work, 'message', (m) => m.from === 'ben@hotmail.com');
    await ben.sendMessage('ann@hotmail.com', 'to all of you');
    assert.equal((await atHome).text, 'to all of you');
    assert.equal((await atWork).text, 'to all of you');
    // Home answers; the conversation stays one-to-one (work's endpoint is not a third party).
    const reply = next(ben, 'message', (m) => m.from === 'ann@hotmail.com');
    await home.sendMessage('ben@hotmail.com', 'from home');
    assert.equal((await reply).text, 'from home');
    assert.deepEqual(home.conversations, []);
    // The same machine GUID again replaces that endpoint only.
    const workKicked = next(work, 'disconnected');
    const again = client('ann@hotmail.com', 'ann-pw', 18, '22222222-2222-2222-2222-222222222222');
    await again.login();
    assert.equal((await workKicked).reason, 'otherLogin');
    assert.equal(home.connected, true);
    // An MSNP11 login knows nothing of endpoints: it replaces all of them.
    const homeKicked = next(home, 'disconnected');
    const old = client('ann@hotmail.com', 'ann-pw', 11);
    await old.login();
    assert.equal((await homeKicked).reason, 'otherLogin');
    await old.logout();
    await ben.logout();
  });
});
