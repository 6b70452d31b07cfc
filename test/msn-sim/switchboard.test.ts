// Switchboard conversations between raw MSNP11 clients.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RawClient } from './raw-client.ts';
import { MsnSimulator, type SimulatorOptions } from './simulator.ts';
import { type LoggedIn, login } from './test-flows.ts';

async function withSim(
  fn: (sim: MsnSimulator) => Promise<void>,
  options: SimulatorOptions = {},
): Promise<void> {
  const sim = new MsnSimulator({ challengeAfterLogin: false, ...options });
  for (const [email, nick] of [
    ['alice@example.com', 'Alice'],
    ['bob@example.com', 'Bob'],
    ['carol@example.com', 'Carol'],
  ] as const) {
    sim.addAccount(email, 'pw', { nickname: nick });
  }
  sim.makeFriends('alice@example.com', 'bob@example.com');
  sim.makeFriends('alice@example.com', 'carol@example.com');
  sim.makeFriends('bob@example.com', 'carol@example.com');
  await sim.start();
  try {
    await fn(sim);
  } finally {
    await sim.stop();
  }
}

/** XFR SB on the NS, then USR on the switchboard. */
async function openSwitchboard(ns: LoggedIn, email: string): Promise<RawClient> {
  const t = ns.trid++;
  ns.client.send(`XFR ${t} SB`);
  const xfr = /^XFR (\d+) SB 127\.0\.0\.1:(\d+) CKI (\S+)$/.exec(
    (await ns.client.waitForLine(`XFR ${t} `)).line,
  );
  assert.ok(xfr);
  const sb = await RawClient.connect('127.0.0.1', Number(xfr[2]));
  sb.send(`USR 1 ${email} ${xfr[3]}`);
  assert.match(await sb.nextLine(), new RegExp(`^USR 1 OK ${email.replace('.', '\\.')} \\S+$`));
  return sb;
}

/** Waits for RNG on the NS and answers it with ANS; returns the SB client and the IRO lines. */
async function answerRing(ns: LoggedIn, email: string): Promise<{ sb: RawClient; iro: string[] }> {
  const rng = /^RNG (\d+) 127\.0\.0\.1:(\d+) CKI (\S+) (\S+) (\S+)$/.exec(
    (await ns.client.waitForLine('RNG ')).line,
  );
  assert.ok(rng);
  const sb = await RawClient.connect('127.0.0.1', Number(rng[2]));
  sb.send(`ANS 1 ${email} ${rng[3]} ${rng[1]}`);
  const iro: string[] = [];
  for (;;) {
    const line = await sb.nextLine();
    if (line === 'ANS 1 OK') break;
    iro.push(line);
  }
  return { sb, iro };
}

describe('switchboard', () => {
  it('XFR, USR, CAL/RNG, ANS/IRO/JOI, MSG relay with ACK, BYE, NAK when alone', () =>
    withSim(async (sim) => {
      const alice = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
      const bob = await login(sim, 'bob@example.com', 'pw', { status: 'NLN' });
      const sbA = await openSwitchboard(alice, 'alice@example.com');

      sbA.send('CAL 2 bob@example.com');
      const cal = /^CAL 2 RINGING (\d+)$/.exec(await sbA.nextLine());
      assert.ok(cal);
      const rng = await bob.client.waitForLine('RNG ');
      assert.match(
        rng.line,
        new RegExp(`^RNG ${cal[1]} 127\\.0\\.0\\.1:\\d+ CKI \\S+ alice@example\\.com Alice$`),
      );
      // Answer with the RNG data.
      const [, sid, addr, , cookie] = rng.line.split(' ');
      const sbB = await RawClient.connect('127.0.0.1', Number(addr!.split(':')[1]));
      sbB.send(`ANS 1 bob@example.com ${cookie} ${sid}`);
      assert.equal(await sbB.nextLine(), 'IRO 1 1 1 alice@example.com Alice');
      assert.equal(await sbB.nextLine(), 'ANS 1 OK');
      assert.equal(await sbA.nextLine(), 'JOI bob@example.com Bob');

      // A text message with UTF-8, acknowledged.
      const text =
        'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=22\r\n\r\nhéllo wörld ☃';
      sbA.send(`MSG 3 A ${Buffer.byteLength(text)}`, text);
      const got = await sbB.next();
      assert.equal(got.line, `MSG alice@example.com Alice ${Buffer.byteLength(text)}`);
      assert.equal(got.payload!.toString('utf8'), text);
      assert.equal(await sbA.nextLine(), 'ACK 3');

      // Typing notification, unacknowledged: relayed, and no ACK/NAK comes back.
      const typing =
        'MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: bob@example.com\r\n\r\n\r\n';
      sbB.send(`MSG 2 U ${Buffer.byteLength(typing)}`, typing);
      const typed = await sbA.next();
      assert.equal(typed.line, `MSG bob@example.com Bob ${Buffer.byteLength(typing)}`);
      assert.equal(typed.payload!.toString('utf8'), typing);

      // Binary P2P data (ack D) arrives byte for byte.
      const header = Buffer.from(
        'MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\n',
      );
      const binary = Buffer.alloc(48 + 20 + 4);
      for (let i = 0; i < binary.length; i++) binary[i] = (i * 37 + 0x80) & 0xff;
      binary.write('\r\n\r\n', 10, 'latin1');
      const p2p = Buffer.concat([header, binary]);
      sbA.send(`MSG 4 D ${p2p.length}`, p2p);
      const relayed = await sbB.next();
      assert.equal(relayed.line, `MSG alice@example.com Alice ${p2p.length}`);
      assert.ok(relayed.payload!.equals(p2p));
      assert.equal(await sbA.nextLine(), 'ACK 4');
      // sbB sent U only: nothing is pending for it.
      assert.deepEqual(sbB.pendingLines(), []);

      // D with a payload that is not a MIME message.
      sbA.send('MSG 5 D 3', 'abc');
      assert.equal(await sbA.nextLine(), '282 5');

      sbB.send('OUT');
      assert.equal(await sbA.nextLine(), 'BYE bob@example.com');
      await sbB.waitClosed();

      // Alone now: A and N get NAK, U gets nothing.
      sbA.send('MSG 6 U 5', 'hello');
      sbA.send('MSG 7 N 5', 'hello');
      assert.equal(await sbA.nextLine(), 'NAK 7');
      sbA.send('MSG 8 A 5', 'hello');
      assert.equal(await sbA.nextLine(), 'NAK 8');

      sbA.destroy();
      alice.client.destroy();
      bob.client.destroy();
    }));

  it('CAL: 217 offline, 216 blocked, 208 invalid, 215 already there', () =>
    withSim(async (sim) => {
      const alice = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
      const sb = await openSwitchboard(alice, 'alice@example.com');
      sb.send('CAL 2 carol@example.com'); // carol is not logged in
      assert.equal(await sb.nextLine(), '217 2');
      sb.send('CAL 3 nobody@example.com');
      assert.equal(await sb.nextLine(), '217 3');
      sb.send('CAL 4 @@a');
      assert.equal(await sb.nextLine(), '208 4');

      sim.addContact('bob@example.com', 'alice@example.com', ['BL']);
      const bob = await login(sim, 'bob@example.com', 'pw', { status: 'NLN' });
      sb.send('CAL 5 bob@example.com');
      assert.equal(await sb.nextLine(), '216 5');

      const carol = await login(sim, 'carol@example.com', 'pw', { status: 'NLN' });
      sb.send('CAL 6 carol@example.com');
      assert.match(await sb.nextLine(), /^CAL 6 RINGING \d+$/);
      sb.send('CAL 7 carol@example.com'); // still ringing
      assert.equal(await sb.nextLine(), '215 7');
      sb.send('CAL 8 alice@example.com'); // already in the conversation
      assert.equal(await sb.nextLine(), '215 8');

      // An invisible user looks offline.
      carol.client.send(`CHG ${carol.trid++} HDN 0`);
      await carol.client.waitForLine(`CHG ${carol.trid - 1} HDN`);
      const sb2 = await openSwitchboard(alice, 'alice@example.com');
      sb2.send('CAL 2 carol@example.com');
      assert.equal(await sb2.nextLine(), '217 2');

      for (const c of [sb, sb2, alice.client, bob.client, carol.client]) c.destroy();
    }));

  it('three-way conversation: IRO lists everyone, messages reach all others', () =>
    withSim(async (sim) => {
      const alice = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
      const bob = await login(sim, 'bob@example.com', 'pw', { status: 'NLN' });
      const carol = await login(sim, 'carol@example.com', 'pw', { status: 'NLN' });
      const sbA = await openSwitchboard(alice, 'alice@example.com');
      sbA.send('CAL 2 bob@example.com');
      await sbA.waitForLine('CAL 2 RINGING');
      const b = await answerRing(bob, 'bob@example.com');
      assert.deepEqual(b.iro, ['IRO 1 1 1 alice@example.com Alice']);
      sbA.send('CAL 3 carol@example.com');
      await sbA.waitForLine('CAL 3 RINGING');
      const c = await answerRing(carol, 'carol@example.com');
      assert.deepEqual(c.iro, ['IRO 1 1 2 alice@example.com Alice', 'IRO 1 2 2 bob@example.com Bob']);
      assert.equal((await sbA.waitForLine('JOI carol')).line, 'JOI carol@example.com Carol');
      assert.equal((await b.sb.waitForLine('JOI carol')).line, 'JOI carol@example.com Carol');
      assert.deepEqual(sim.switchboards()[0]!.participants.sort(), [
        'alice@example.com',
        'bob@example.com',
        'carol@example.com',
      ]);

      const text = 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi all';
      c.sb.send(`MSG 2 N ${text.length}`, text);
      for (const sb of [sbA, b.sb]) {
        const m = await sb.waitForLine('MSG ');
        assert.equal(m.line, `MSG carol@example.com Carol ${text.length}`);
        assert.equal(m.payload!.toString(), text);
      }
      for (const cl of [sbA, b.sb, c.sb, alice.client, bob.client, carol.client]) cl.destroy();
    }));

  it('closes idle switchboards with BYE ... 1', () =>
    withSim(
      async (sim) => {
        const alice = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
        const bob = await login(sim, 'bob@example.com', 'pw', { status: 'NLN' });
        const sbA = await openSwitchboard(alice, 'alice@example.com');
        sbA.send('CAL 2 bob@example.com');
        await sbA.waitForLine('CAL 2 RINGING');
        const b = await answerRing(bob, 'bob@example.com');
        await sbA.waitForLine('JOI bob');
        // Nothing is said; the server gives up on the conversation.
        const byeAtA = await sbA.waitForLine('BYE ', 3000);
        assert.equal(byeAtA.line, 'BYE bob@example.com 1');
        await sbA.waitClosed();
        await b.sb.waitClosed();
        assert.deepEqual(sim.switchboards(), []);
        alice.client.destroy();
        bob.client.destroy();
      },
      { switchboardIdleMs: 150 },
    ));

  it('rejects a USR with an unknown cookie (911)', () =>
    withSim(async (sim) => {
      const sb = await RawClient.connect('127.0.0.1', sim.endpoints().sbPort);
      sb.send('USR 1 alice@example.com 123.456.789');
      assert.equal(await sb.nextLine(), '911 1');
      await sb.waitClosed();
    }));
});
