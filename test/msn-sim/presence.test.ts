// Presence fan-out, privacy and list editing between raw MSNP11 clients.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MsnSimulator } from './simulator.ts';
import { login } from './test-flows.ts';

const MSNOBJ =
  '%3Cmsnobj%20Creator%3D%22bob%40example.com%22%20Size%3D%2225235%22%20Type%3D%223%22%20Location%3D%22TFR2C.tmp%22%20Friendly%3D%22AAA%3D%22%20SHA1D%3D%22vP1ppB%2BxiFQ8ceZivRe0uCaYLIQ%3D%22%2F%3E';

async function withSim(fn: (sim: MsnSimulator) => Promise<void>): Promise<void> {
  const sim = new MsnSimulator({ challengeAfterLogin: false });
  sim.addAccount('alice@example.com', 'pw', { nickname: 'Alice' });
  sim.addAccount('bob@example.com', 'pw', { nickname: 'Bob' });
  sim.addAccount('carol@example.com', 'pw', { nickname: 'Carol' });
  await sim.start();
  try {
    await fn(sim);
  } finally {
    await sim.stop();
  }
}

describe('presence', () => {
  it('two clients see each other come online, change, go invisible and leave', () =>
    withSim(async (sim) => {
      sim.makeFriends('alice@example.com', 'bob@example.com');
      const alice = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
      const bob = await login(sim, 'bob@example.com', 'pw');

      bob.client.send(`CHG ${bob.trid} NLN 1342177280`);
      assert.equal(await bob.client.nextLine(), `CHG ${bob.trid} NLN 1342177280`);
      assert.equal(await bob.client.nextLine(), `ILN ${bob.trid} NLN alice@example.com Alice 0`);
      bob.trid++;
      assert.equal(await alice.client.nextLine(), 'NLN NLN bob@example.com Bob 1342177280');

      // Personal message: UUX from alice becomes UBX at bob, byte for byte.
      const psm = '<Data><PSM>Ça va? ✓</PSM><CurrentMedia></CurrentMedia></Data>';
      alice.client.send(`UUX ${alice.trid++} ${Buffer.byteLength(psm)}`, psm);
      assert.equal(await alice.client.nextLine(), `UUX ${alice.trid - 1} 0`);
      const ubx = await bob.client.next();
      assert.equal(ubx.line, `UBX alice@example.com ${Buffer.byteLength(psm)}`);
      assert.equal(ubx.payload!.toString('utf8'), psm);

      // Status with an MSNObject (display picture).
      bob.client.send(`CHG ${bob.trid++} AWY 1342177280 ${MSNOBJ}`);
      assert.equal(await bob.client.nextLine(), `CHG ${bob.trid - 1} AWY 1342177280 ${MSNOBJ}`);
      assert.equal(await alice.client.nextLine(), `NLN AWY bob@example.com Bob 1342177280 ${MSNOBJ}`);

      // A new friendly name propagates as a fresh NLN.
      bob.client.send(`PRP ${bob.trid++} MFN Bobby%20%E2%98%83`);
      assert.equal(await bob.client.nextLine(), `PRP ${bob.trid - 1} MFN Bobby%20%E2%98%83`);
      assert.equal(
        await alice.client.nextLine(),
        `NLN AWY bob@example.com Bobby%20%E2%98%83 1342177280 ${MSNOBJ}`,
      );
      assert.equal(sim.getLists('bob@example.com').blp, 'AL');
      assert.equal(sim.getPresence('bob@example.com')?.friendlyName, 'Bobby ☃');

      // Appear offline: watchers get FLN; back online: NLN again.
      bob.client.send(`CHG ${bob.trid++} HDN 1342177280`);
      assert.equal(await bob.client.nextLine(), `CHG ${bob.trid - 1} HDN 1342177280`);
      assert.equal(await alice.client.nextLine(), 'FLN bob@example.com');
      bob.client.send(`CHG ${bob.trid++} BSY 1342177280`);
      await bob.client.waitForLine(`CHG ${bob.trid - 1} BSY`);
      assert.equal(await alice.client.nextLine(), 'NLN BSY bob@example.com Bobby%20%E2%98%83 1342177280');

      bob.client.send('OUT');
      assert.equal(await alice.client.nextLine(), 'FLN bob@example.com');
      assert.equal(sim.isOnline('bob@example.com'), false);

      // Logging in again, alice's ILN comes with her stored personal message.
      const bob2 = await login(sim, 'bob@example.com', 'pw');
      bob2.client.send(`CHG ${bob2.trid} NLN 0`);
      assert.equal(await bob2.client.nextLine(), `CHG ${bob2.trid} NLN 0`);
      assert.equal(await bob2.client.nextLine(), `ILN ${bob2.trid} NLN alice@example.com Alice 0`);
      assert.equal((await bob2.client.next()).payload?.toString('utf8'), psm);
      alice.client.destroy();
      bob2.client.destroy();
    }));

  it('invisible users stay hidden from contacts that log in later', () =>
    withSim(async (sim) => {
      sim.makeFriends('alice@example.com', 'bob@example.com');
      const alice = await login(sim, 'alice@example.com', 'pw', { status: 'HDN' });
      const bob = await login(sim, 'bob@example.com', 'pw');
      bob.client.send(`CHG ${bob.trid} NLN 0`);
      assert.equal(await bob.client.nextLine(), `CHG ${bob.trid} NLN 0`);
      // Alice (HDN) still sees bob arrive.
      assert.equal(await alice.client.nextLine(), 'NLN NLN bob@example.com Bob 0');
      bob.client.send('PNG');
      assert.equal(await bob.client.nextLine(), 'QNG 50'); // no ILN for alice came before it
      // ...and cannot start conversations while invisible.
      alice.client.send(`XFR ${alice.trid} SB`);
      assert.equal(await alice.client.nextLine(), `913 ${alice.trid}`);
      alice.client.destroy();
      bob.client.destroy();
    }));

  it('blocking and BLP decide who sees whom', () =>
    withSim(async (sim) => {
      sim.makeFriends('alice@example.com', 'bob@example.com');
      const alice = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
      const bob = await login(sim, 'bob@example.com', 'pw', { status: 'NLN' });
      await alice.client.waitForLine('NLN NLN bob@example.com');
      await bob.client.waitForLine(`ILN ${bob.trid - 1} NLN alice@example.com`);
      let t = alice.trid;

      alice.client.send(`ADC ${t} BL N=bob@example.com`);
      assert.equal(await alice.client.nextLine(), `219 ${t}`); // bob is on her AL
      t++;
      alice.client.send(`REM ${t} AL bob@example.com`);
      assert.equal(await alice.client.nextLine(), `REM ${t} AL bob@example.com`);
      t++;
      alice.client.send(`ADC ${t} BL N=bob@example.com`);
      assert.equal(await alice.client.nextLine(), `ADC ${t} BL N=bob@example.com`);
      t++;
      assert.equal(await bob.client.nextLine(), 'FLN alice@example.com');
      assert.deepEqual(sim.getLists('alice@example.com').BL, ['bob@example.com']);

      alice.client.send(`REM ${t} BL bob@example.com`);
      assert.equal(await alice.client.nextLine(), `REM ${t} BL bob@example.com`);
      t++;
      assert.equal(await bob.client.nextLine(), 'NLN NLN alice@example.com Alice 0');

      // BLP BL: only the allow list may see her; bob is on neither list now.
      alice.client.send(`BLP ${t} BL`);
      assert.equal(await alice.client.nextLine(), `BLP ${t} BL`);
      t++;
      assert.equal(await bob.client.nextLine(), 'FLN alice@example.com');
      alice.client.send(`BLP ${t} BL`);
      assert.equal(await alice.client.nextLine(), `218 ${t}`);
      t++;
      alice.client.send(`ADC ${t} AL N=bob@example.com`);
      assert.equal(await alice.client.nextLine(), `ADC ${t} AL N=bob@example.com`);
      assert.equal(await bob.client.nextLine(), 'NLN NLN alice@example.com Alice 0');
      alice.client.destroy();
      bob.client.destroy();
    }));

  it('ADC FL tells the added user (RL) and sends ILN; REM FL undoes it', () =>
    withSim(async (sim) => {
      const alice = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
      const carol = await login(sim, 'carol@example.com', 'pw', { status: 'NLN' });
      let t = carol.trid;
      carol.client.send(`ADC ${t} FL N=alice@example.com F=Alice%20A.`);
      const adc = await carol.client.nextLine();
      const guid = sim.getLists('carol@example.com').contacts[0]!.guid;
      assert.equal(adc, `ADC ${t} FL N=alice@example.com F=Alice%20A. C=${guid}`);
      assert.equal(await carol.client.nextLine(), `ILN ${t} NLN alice@example.com Alice 0`);
      t++;
      assert.equal(await alice.client.nextLine(), 'ADC 0 RL N=carol@example.com F=Carol');
      assert.deepEqual(sim.getLists('alice@example.com').RL, ['carol@example.com']);

      carol.client.send(`ADC ${t} FL N=alice@example.com F=again`);
      assert.equal(await carol.client.nextLine(), `215 ${t}`);
      t++;
      carol.client.send(`ADC ${t} FL N=nobody@example.com F=x`);
      assert.equal(await carol.client.nextLine(), `208 ${t}`);
      t++;
      carol.client.send(`ADC ${t} FL N=not-an-address F=x`);
      assert.equal(await carol.client.nextLine(), `201 ${t}`);
      t++;

      // Groups by GUID.
      carol.client.send(`ADG ${t} Best%20Friends`);
      const adg = /^ADG (\d+) Best%20Friends ([0-9a-f-]{36})$/.exec(await carol.client.nextLine());
      assert.equal(adg?.[1], String(t));
      const group = adg![2]!;
      t++;
      carol.client.send(`ADC ${t} FL C=${guid} ${group}`);
      assert.equal(await carol.client.nextLine(), `ADC ${t} FL C=${guid} ${group}`);
      t++;
      carol.client.send(`ADC ${t} FL C=${guid} 00000000-0000-0000-0000-000000000000`);
      assert.equal(await carol.client.nextLine(), `224 ${t}`);
      t++;
      carol.client.send(`REG ${t} ${group} Besties`);
      assert.equal(await carol.client.nextLine(), `REG ${t} ${group} Besties`);
      t++;
      assert.deepEqual(sim.getLists('carol@example.com').contacts[0]!.groups, ['Besties']);
      carol.client.send(`REM ${t} FL ${guid} ${group}`);
      assert.equal(await carol.client.nextLine(), `REM ${t} FL ${guid} ${group}`);
      t++;
      carol.client.send(`RMG ${t} ${group}`);
      assert.equal(await carol.client.nextLine(), `RMG ${t} ${group}`);
      t++;
      carol.client.send(`RMG ${t} ${group}`);
      assert.equal(await carol.client.nextLine(), `224 ${t}`);
      t++;

      carol.client.send(`REM ${t} FL ${guid}`);
      assert.equal(await carol.client.nextLine(), `REM ${t} FL ${guid}`);
      t++;
      assert.equal(await alice.client.nextLine(), 'REM 0 RL carol@example.com');
      assert.deepEqual(sim.getLists('alice@example.com').RL, []);
      carol.client.send(`REM ${t} FL ${guid}`);
      assert.equal(await carol.client.nextLine(), `216 ${t}`);
      t++;
      // Removing from one's own reverse list is not allowed at all.
      carol.client.send(`REM ${t} RL alice@example.com`);
      await carol.client.waitClosed();
      alice.client.destroy();
    }));

  it('rejects invalid CHG and PRP values', () =>
    withSim(async (sim) => {
      const { client, trid } = await login(sim, 'alice@example.com', 'pw', { status: 'NLN' });
      client.send(`CHG ${trid} FLN 0`);
      assert.equal(await client.nextLine(), `201 ${trid}`);
      client.send(`PRP ${trid + 1} XYZ 1`);
      assert.equal(await client.nextLine(), `715 ${trid + 1}`);
      client.send(`PRP ${trid + 2} PHH 555%201234`);
      assert.equal(await client.nextLine(), `PRP ${trid + 2} PHH 555%201234`);
      client.destroy();
    }));
});
