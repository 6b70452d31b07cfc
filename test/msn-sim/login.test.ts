// Notification-server login, written as raw transcripts of a MSNP11 client.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RawClient, httpGet } from './raw-client.ts';
import { MsnSimulator, type SimulatorOptions } from './simulator.ts';
import { login, passportLogin } from './test-flows.ts';

/** The worked example of the MSNP11 Challenges page and its answer. */
const CHL = '22210219642164014968';
const QRY_ANSWER = '85ecb0db8f32113df79ce0892b9a102c';

async function withSim(
  fn: (sim: MsnSimulator) => Promise<void>,
  options: SimulatorOptions = {},
): Promise<void> {
  const sim = new MsnSimulator({ challengeGenerator: () => CHL, ...options });
  sim.addAccount('alice@example.com', 'alice-pw', { nickname: 'Alice Example' });
  sim.addAccount('bob@example.com', 'b0b,pw:%', { nickname: 'Bob' });
  await sim.start();
  try {
    await fn(sim);
  } finally {
    await sim.stop();
  }
}

describe('nexus and login2.srf', () => {
  it('nexus names the login server in PassportURLs', () =>
    withSim(async (sim) => {
      const ep = sim.endpoints();
      const res = await httpGet(ep.nexusUrl);
      assert.equal(res.status, 200);
      const urls = String(res.headers.passporturls);
      assert.ok(urls.startsWith(`DARealm=Passport.Net,DALogin=127.0.0.1:${ep.httpPort}/login2.srf,`), urls);
      assert.equal(`http://${/DALogin=([^,]+)/.exec(urls)![1]}`, ep.loginUrl);
    }));

  it('answers 401 da-status=failed for a wrong password, and 200 with a ticket for the right one', () =>
    withSim(async (sim) => {
      const ep = sim.endpoints();
      const challenge =
        'lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=1,kpp=1,kv=5,ver=2.1.0173.1,tpf=00';
      // A challenge the NS never issued is refused even with the right password.
      const forged = await passportLogin(ep, 'bob@example.com', 'b0b,pw:%', challenge);
      assert.equal(forged.status, 401);

      const client = await RawClient.connect(ep.nsHost, ep.nsPort);
      client.send('VER 1 MSNP11 CVR0');
      assert.equal(await client.nextLine(), 'VER 1 MSNP11');
      client.send('USR 2 TWN I bob@example.com');
      const real = /^USR 2 TWN S (.+)$/.exec(await client.nextLine())![1]!;
      assert.match(real, /^lc=1033,id=507,.*tpf=[0-9a-f]+$/);

      const wrong = await passportLogin(ep, 'bob@example.com', 'nope', real);
      assert.equal(wrong.status, 401);
      assert.match(wrong.wwwAuthenticate!, /^Passport1\.4 da-status=failed,/);

      // The password has characters that must be URL-decoded by the server.
      const right = await passportLogin(ep, 'bob@example.com', 'b0b,pw:%', real);
      assert.equal(right.status, 200);
      assert.match(right.ticket!, /^t=[^&']+&p=[^&']+$/);
      client.destroy();
    }));
});

describe('notification server login (MSNP11)', () => {
  it('full transcript: VER, CVR, USR, SYN, CHG, CHL/QRY, UUX, PNG, OUT', () =>
    withSim(async (sim) => {
      sim.addContact('alice@example.com', 'bob@example.com', ['FL', 'AL'], { groups: ['Friends'] });
      sim.addContact('bob@example.com', 'alice@example.com', ['FL', 'AL']);
      const ep = sim.endpoints();
      const c = await RawClient.connect(ep.nsHost, ep.nsPort);

      c.send('VER 1 MSNP11 MSNP10 CVR0');
      assert.equal(await c.nextLine(), 'VER 1 MSNP11');
      c.send('CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0816 MSMSGS alice@example.com');
      assert.match(
        await c.nextLine(),
        /^CVR 2 \d+\.\d+\.\d+ \d+\.\d+\.\d+ \d+\.\d+\.\d+ http:\/\/\S+ http:\/\/\S+$/,
      );
      c.send('USR 3 TWN I alice@example.com');
      const usr = await c.nextLine();
      const challenge = /^USR 3 TWN S (lc=1033,id=507,\S+)$/.exec(usr)?.[1];
      assert.ok(challenge, usr);

      const pp = await passportLogin(ep, 'alice@example.com', 'alice-pw', challenge);
      assert.equal(pp.status, 200);
      c.send(`USR 4 TWN S ${pp.ticket}`);
      assert.equal(await c.nextLine(), 'USR 4 OK alice@example.com 1 0');
      assert.equal(await c.nextLine(), 'SBS 0 null');
      const profile = await c.next();
      assert.equal(profile.line, `MSG Hotmail Hotmail ${profile.payload!.length}`);
      const body = profile.payload!.toString('utf8');
      assert.match(body, /^MIME-Version: 1\.0\r\nContent-Type: text\/x-msmsgsprofile; charset=UTF-8\r\n/);
      assert.ok(body.includes(`\r\nMSPAuth: ${/^t=([^&]+)/.exec(pp.ticket!)![1]}$\r\n`));
      assert.ok(body.includes('\r\nABCHMigrated: 1\r\n'));
      assert.ok(body.endsWith('\r\n\r\n'));

      c.send('SYN 5 0 0');
      const syn = /^SYN 5 (\S+) (\S+) 1 1$/.exec(await c.nextLine());
      assert.ok(syn);
      assert.equal(await c.nextLine(), 'GTC A');
      assert.equal(await c.nextLine(), 'BLP AL');
      assert.equal(await c.nextLine(), 'PRP MFN Alice%20Example');
      const lists = sim.getLists('alice@example.com');
      const group = lists.groups[0]!;
      const bob = lists.contacts.find((x) => x.email === 'bob@example.com')!;
      assert.equal(await c.nextLine(), `LSG Friends ${group.guid}`);
      assert.equal(await c.nextLine(), `LST N=bob@example.com F=Bob C=${bob.guid} 11 ${group.guid}`);

      c.send('CHG 6 NLN 0');
      assert.equal(await c.nextLine(), 'CHG 6 NLN 0');
      assert.equal(await c.nextLine(), `CHL 0 ${CHL}`);
      c.send('QRY 7 PROD0090YUAUV{2B 32', QRY_ANSWER);
      assert.equal(await c.nextLine(), 'QRY 7');
      assert.equal(sim.getPresence('alice@example.com')?.status, 'NLN');

      const psm = '<Data><PSM>héllo ☃</PSM><CurrentMedia></CurrentMedia></Data>';
      c.send(`UUX 8 ${Buffer.byteLength(psm)}`, psm);
      assert.equal(await c.nextLine(), 'UUX 8 0');
      assert.equal(sim.getPersonalData('alice@example.com'), psm);

      c.send('PNG');
      assert.equal(await c.nextLine(), 'QNG 50');

      // Cached lists: the same timestamps get a bare SYN and no list.
      c.send(`SYN 9 ${syn[1]} ${syn[2]}`);
      assert.equal(await c.nextLine(), `SYN 9 ${syn[1]} ${syn[2]}`);

      c.send('OUT');
      assert.equal(await c.nextLine(), 'OUT');
      await c.waitClosed();
      assert.deepEqual(c.pendingLines(), []);
      assert.equal(sim.isOnline('alice@example.com'), false);
    }));

  it('handles several commands in one chunk and commands split across chunks', () =>
    withSim(async (sim) => {
      const ep = sim.endpoints();
      const c = await RawClient.connect(ep.nsHost, ep.nsPort);
      c.socket.setNoDelay(true);
      c.write(
        'VER 1 MSNP11 CVR0\r\nCVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0816 MSMSGS alice@example.com\r\nUS',
      );
      assert.equal(await c.nextLine(), 'VER 1 MSNP11');
      assert.match(await c.nextLine(), /^CVR 2 /);
      c.write('R 3 TWN I alice');
      c.write('@example.com\r');
      c.write('\n');
      assert.match(await c.nextLine(), /^USR 3 TWN S lc=1033,/);
      c.destroy();
    }));

  it('wrong ticket -> 911 and disconnect', () =>
    withSim(async (sim) => {
      const ep = sim.endpoints();
      const c = await RawClient.connect(ep.nsHost, ep.nsPort);
      c.send('VER 1 MSNP11 CVR0');
      await c.nextLine();
      c.send('USR 2 TWN I alice@example.com');
      const challenge = /^USR 2 TWN S (.+)$/.exec(await c.nextLine())![1]!;
      // Wrong password: no ticket, so the client can only send garbage.
      assert.equal((await passportLogin(ep, 'alice@example.com', 'wrong', challenge)).status, 401);
      c.send('USR 3 TWN S t=made-up&p=ticket');
      assert.equal(await c.nextLine(), '911 3');
      await c.waitClosed();
      assert.equal(sim.isOnline('alice@example.com'), false);
    }));

  it("someone else's ticket -> 911", () =>
    withSim(async (sim) => {
      const ep = sim.endpoints();
      const c = await RawClient.connect(ep.nsHost, ep.nsPort);
      c.send('VER 1 MSNP11 CVR0');
      await c.nextLine();
      c.send('USR 2 TWN I alice@example.com');
      const challenge = /^USR 2 TWN S (.+)$/.exec(await c.nextLine())![1]!;
      const bobs = await passportLogin(ep, 'bob@example.com', 'b0b,pw:%', challenge);
      assert.equal(bobs.status, 200);
      c.send(`USR 3 TWN S ${bobs.ticket}`);
      assert.equal(await c.nextLine(), '911 3');
      await c.waitClosed();
    }));

  it('wrong QRY answer -> 540 and disconnect', () =>
    withSim(async (sim) => {
      const { client, trid } = await login(sim, 'alice@example.com', 'alice-pw', { status: 'NLN' });
      await client.waitForLine(`CHL 0 ${CHL}`);
      // The old MSNP10 answer is not valid in MSNP11.
      client.send(`QRY ${trid} msmsgs@msnmsgr.com 32`, '2c2aa6b11a44d5e1b5a1b2d27a8e1d52');
      assert.equal(await client.nextLine(), `540 ${trid}`);
      await client.waitClosed();
      assert.equal(sim.isOnline('alice@example.com'), false);
    }));

  it('a second login of the same account gets the first one OUT OTH', () =>
    withSim(async (sim) => {
      const first = await login(sim, 'alice@example.com', 'alice-pw', { status: 'NLN' });
      const second = await login(sim, 'alice@example.com', 'alice-pw', { status: 'BSY' });
      await first.client.waitForLine('OUT OTH');
      await first.client.waitClosed();
      assert.equal(second.client.closed, false);
      assert.equal(sim.getPresence('alice@example.com')?.status, 'BSY');
      second.client.destroy();
    }));

  it('stop() sends OUT SSD', async () => {
    const sim = new MsnSimulator();
    sim.addAccount('alice@example.com', 'pw');
    await sim.start();
    const { client } = await login(sim, 'alice@example.com', 'pw');
    await sim.stop();
    await client.waitForLine('OUT SSD');
    await client.waitClosed();
  });

  it('refuses a VER without a supported protocol', () =>
    withSim(async (sim) => {
      const ep = sim.endpoints();
      const c = await RawClient.connect(ep.nsHost, ep.nsPort);
      c.send('VER 1 MSNP21 MSNP7 CVR0');
      assert.equal(await c.nextLine(), 'VER 1 0');
      await c.waitClosed();
    }));

  it('dispatch server refers USR TWN I to the notification server', () =>
    withSim(async (sim) => {
      const ep = sim.endpoints();
      const c = await RawClient.connect(ep.dispatchHost, ep.dispatchPort);
      c.send('VER 1 MSNP11 MSNP10 CVR0');
      assert.equal(await c.nextLine(), 'VER 1 MSNP11');
      c.send('CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0816 MSMSGS alice@example.com');
      assert.match(await c.nextLine(), /^CVR 2 /);
      c.send('USR 3 TWN I alice@example.com');
      assert.equal(await c.nextLine(), `XFR 3 NS 127.0.0.1:${ep.nsPort} 0 127.0.0.1:${ep.dispatchPort}`);
      await c.waitClosed();
    }));

  it('restart() drops connections, keeps ports and lists', () =>
    withSim(async (sim) => {
      const before = sim.endpoints();
      const { client } = await login(sim, 'alice@example.com', 'alice-pw', { status: 'NLN' });
      client.send('ADG 10 Work');
      assert.match((await client.waitForLine('ADG 10 ')).line, /^ADG 10 Work [0-9a-f-]{36}$/);
      const after = await sim.restart();
      await client.waitClosed();
      assert.deepEqual(after, before);
      assert.deepEqual(
        sim.getLists('alice@example.com').groups.map((g) => g.name),
        ['Work'],
      );
      const again = await login(sim, 'alice@example.com', 'alice-pw', { sync: false });
      again.client.send('SYN 5 0 0');
      assert.match(await again.client.nextLine(), /^SYN 5 \S+ \S+ 0 1$/);
      again.client.destroy();
    }));

  it('MSNP8 clients get the old USR OK and SYN shapes and the md5 challenge', () =>
    withSim(async (sim) => {
      sim.addContact('alice@example.com', 'bob@example.com', ['FL', 'AL'], { groups: ['Friends'] });
      const ep = sim.endpoints();
      const c = await RawClient.connect(ep.nsHost, ep.nsPort);
      c.send('VER 1 MSNP8 CVR0');
      assert.equal(await c.nextLine(), 'VER 1 MSNP8');
      c.send('USR 2 TWN I alice@example.com');
      const challenge = /^USR 2 TWN S (.+)$/.exec(await c.nextLine())![1]!;
      const pp = await passportLogin(ep, 'alice@example.com', 'alice-pw', challenge);
      c.send(`USR 3 TWN S ${pp.ticket}`);
      assert.equal(await c.nextLine(), 'USR 3 OK alice@example.com Alice%20Example 1 0');
      assert.match(await c.nextLine(), /^MSG Hotmail Hotmail \d+$/);
      c.send('SYN 4 0');
      assert.match(await c.nextLine(), /^SYN 4 \d+ 1 1$/);
      assert.equal(await c.nextLine(), 'GTC A');
      assert.equal(await c.nextLine(), 'BLP AL');
      assert.equal(await c.nextLine(), 'LSG 0 Friends 0');
      assert.equal(await c.nextLine(), 'LST bob@example.com Bob 3 0');
      c.send('CHG 5 NLN 0');
      assert.equal(await c.nextLine(), 'CHG 5 NLN 0');
      assert.equal(await c.nextLine(), `CHL 0 ${CHL}`);
      c.send('QRY 6 msmsgs@msnmsgr.com 32', '8ba1bb9d6dbf624fee31a2053af5fdd0');
      // That answer belongs to 12345678901234567890, not to our challenge.
      assert.equal(await c.nextLine(), '540 6');
      await c.waitClosed();
    }));
});
