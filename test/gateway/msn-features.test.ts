// Transport features beyond PyMSNt's set, end to end (@xmpp/client ⇄
// jabberfly ⇄ MSN simulator ⇄ MsnSession buddy): debug traces and
// per-user state for operators, XEP-0184 receipts from switchboard ACKs,
// nudges as XEP-0224 attention, invisibility (the buddy never sees the user
// online), and vCard requests made while the MSN login is still running.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { msnTransportStatus } from '../../src/gateway/msn/status.ts';
import type { MsnSession, PresenceEvent } from '../../src/msnp/index.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { type MsnWorld, nextEvent, registeredUser, simLogs, startMsnWorld } from './msn-harness.ts';

const MSN = 'msn.localhost';
const BOB = 'bob%hotmail.com@msn.localhost';
const CAROL = 'carol%hotmail.com@msn.localhost';
const RECEIPTS = 'urn:xmpp:receipts';
const ATTENTION = 'urn:xmpp:attention:0';
const INVISIBLE = 'urn:xmpp:invisible:0';

let world: MsnWorld;
let juliet: TestClient;
let bob: MsnSession;
let n = 0;

interface StatusBody {
  msn: { online: number; users: Array<{ user: string; email: string; state: string; protocol?: string; since: string }> };
}

function getJson(port: number, path: string): Promise<{ status: number; body: StatusBody }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function iq(c: TestClient, type: 'get' | 'set', to: string | undefined, payload: Element): Promise<Element> {
  const id = `f${++n}`;
  await c.send(xml('iq', { type, to, id }, payload));
  return c.waitFor((s) => s.is('iq') && s.attrs.id === id, `iq ${id}`, 20000);
}

/** Every presence Bob's client is told about `email`, from now on. */
function watch(email: string): PresenceEvent[] {
  const seen: PresenceEvent[] = [];
  bob.on('presence', (p) => {
    if (p.email === email) seen.push(p);
  });
  return seen;
}

describe('MSN transport: operators, receipts, nudges, invisibility, early vCards', () => {
  before(async () => {
    world = await startMsnWorld(
      (sim) => {
        sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
        sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bobby' });
        sim.addAccount('carol@hotmail.com', 'carolpw', { nickname: 'Carol' });
        sim.addAccount('romeo@hotmail.com', 'romeopw', { nickname: 'Romeo' });
        sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
        sim.makeFriends('alice@hotmail.com', 'carol@hotmail.com');
        sim.makeFriends('romeo@hotmail.com', 'bob@hotmail.com');
      },
      // Pinned to MSNP15: the transport logs in with SSO (RST ticket + MBI_KEY answer).
      { http: { port: 0 }, msn: { protocols: [15] } },
    );
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
    // Bob's presence has reached Juliet: the contact list is in place.
    await juliet.waitFor((s) => s.is('presence') && s.attrs.from === BOB && !s.attrs.type, 'Bob online', 15000);
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('logs every MSNP line at debug with tickets and cookies redacted, and every state change', async () => {
    const got = nextEvent(bob, 'message', (m) => m.from === 'alice@hotmail.com');
    await juliet.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, 'traced')));
    await got;
    const lines = world.ts.logs.filter((l) => l.includes('user=juliet@localhost'));
    assert.ok(lines.some((l) => l.includes('msnp >> NS') && /line="VER \d+ MSNP15 CVR0"/.test(l)), 'only MSNP15 offered');
    assert.ok(lines.some((l) => l.includes('msnp >> NS') && /line="USR \d+ SSO I alice@hotmail.com"/.test(l)), 'USR SSO I traced');
    assert.ok(lines.some((l) => /line="USR \d+ SSO S \[redacted\]"/.test(l)), 'the SSO ticket and answer are redacted');
    assert.ok(lines.some((l) => l.includes('msnp >> HTTP') && l.includes('/RST.srf')), 'the token service was asked');
    assert.ok(lines.some((l) => l.includes('msnp << NS') && l.includes('line="CHL 0')), 'server commands traced');
    assert.ok(lines.some((l) => l.includes('msnp >> SB') && /line="USR \d+ alice@hotmail.com \[redacted\]"/.test(l)), 'SB cookie redacted');
    assert.ok(lines.some((l) => l.includes('msnp >> SB') && /line="MSG \d+ A \d+"/.test(l)), 'the MSG line, not its text');
    assert.ok(lines.some((l) => l.includes('msn session state') && l.includes('from=connecting') && l.includes('to=online')));
    const all = world.ts.logs.join('\n');
    assert.equal(all.includes('alicepw'), false, 'no password');
    assert.equal(/t=[A-Za-z0-9_-]{20,}/.test(all), false, 'no Passport ticket');
    assert.equal(all.includes('traced'), false, 'no message text');
  });

  it('shows each user\'s transport state on /status to the operator, and through msnTransportStatus()', async () => {
    const port = world.ts.server.service(HttpService)!.ports.http!;
    const { status, body } = await getJson(port, '/status');
    assert.equal(status, 200);
    const entry = body.msn.users.find((u) => u.user === 'juliet@localhost')!;
    assert.equal(entry.email, 'alice@hotmail.com');
    assert.equal(entry.state, 'online');
    assert.equal(entry.protocol, 'MSNP15');
    assert.ok(!Number.isNaN(Date.parse(entry.since)));
    assert.equal(body.msn.online, 1);
    assert.deepEqual(msnTransportStatus(world.ts.server)?.users, body.msn.users);
    // The admin channel's 'msn' section (jabberfly status) shows the same.
    const sections = await world.ts.server.statusSections.collect();
    assert.deepEqual(sections.msn?.users, body.msn.users);
  });

  it('advertises receipts and attention on contact JIDs', async () => {
    const info = await iq(juliet, 'get', BOB, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    const features = info.getChild('query').getChildren('feature').map((f: Element) => f.attrs.var);
    assert.ok(features.includes(RECEIPTS));
    assert.ok(features.includes(ATTENTION));
  });

  it('answers a receipt request once the switchboard ACKed the message; a message left offline gets none', async () => {
    const got = nextEvent(bob, 'message', (m) => m.text === 'with a receipt');
    await juliet.send(xml('message', { to: BOB, type: 'chat', id: 'r-1' }, xml('body', {}, 'with a receipt'), xml('request', { xmlns: RECEIPTS })));
    const receipt = await juliet.waitFor((s) => s.is('message') && !!s.getChild('received', RECEIPTS), 'receipt', 15000);
    await got;
    assert.equal(receipt.attrs.from, BOB);
    assert.equal(receipt.getChild('received', RECEIPTS).attrs.id, 'r-1');
    // Carol is offline: the message is stored as an offline message (MSNP15), which is not a delivery.
    const stored = simLogs(world, /^OIM stored for carol@hotmail\.com$/);
    await juliet.send(xml('message', { to: CAROL, type: 'chat', id: 'r-2' }, xml('body', {}, 'anyone?'), xml('request', { xmlns: RECEIPTS })));
    await stored;
    // A message to Bob behind it: its receipt comes after anything the gateway would have sent for r-2.
    await juliet.send(xml('message', { to: BOB, type: 'chat', id: 'r-3' }, xml('body', {}, 'marker'), xml('request', { xmlns: RECEIPTS })));
    await juliet.waitFor((s) => s.getChild('received', RECEIPTS)?.attrs.id === 'r-3', 'receipt for the marker', 15000);
    assert.deepEqual(world.sim.accounts.get('carol@hotmail.com')?.oims.map((o) => o.text), ['anyone?']);
    assert.equal(juliet.received.some((s) => s.attrs.id === 'r-2'), false, 'no error for r-2');
    assert.equal(juliet.received.some((s) => s.getChild('received', RECEIPTS)?.attrs.id === 'r-2'), false, 'no receipt for r-2');
  });

  it('turns XEP-0224 attention into a nudge and a nudge into attention', async () => {
    const nudged = nextEvent(bob, 'nudge', (e) => e.from === 'alice@hotmail.com');
    await juliet.send(xml('message', { to: BOB, type: 'headline' }, xml('attention', { xmlns: ATTENTION })));
    await nudged;
    const attention = juliet.waitFor((s) => s.is('message') && s.attrs.from === BOB && !!s.getChild('attention', ATTENTION), 'attention');
    await bob.sendNudge('alice@hotmail.com');
    const m = await attention;
    assert.equal(m.attrs.type, 'headline');
    assert.match(m.getChildText('body') ?? '', /Bobby sent you a nudge/);
  });

  it('answers a contact vCard, and sends a message, asked for while the MSN login is still running', async () => {
    const romeo = await registeredUser(world, 'romeo', 'romeo@hotmail.com', 'romeopw');
    await romeo.stop();
    // Logged out of MSN once the last resource is gone.
    await nextEvent(bob, 'presence', (p) => p.email === 'romeo@hotmail.com' && p.status === 'FLN', 15000).catch(() => {});
    const again = await connect({ port: world.ts.port, username: 'romeo', password: 'pw', resource: 'phone' });
    try {
      // Presence (which starts the MSN login), the vCard request and a message leave together.
      const early = nextEvent(bob, 'message', (m) => m.from === 'romeo@hotmail.com' && m.text === 'written at once', 30000);
      await again.send(xml('presence'));
      const id = 'early-vcard';
      await again.send(xml('iq', { type: 'get', to: BOB, id }, xml('vCard', { xmlns: 'vcard-temp' })));
      await again.send(xml('message', { to: BOB, type: 'chat', id: 'early-msg' }, xml('body', {}, 'written at once')));
      const r = await again.waitFor((s) => s.attrs.id === id, 'vCard result', 30000);
      assert.equal(r.attrs.type, 'result', r.toString());
      assert.equal(r.getChild('vCard', 'vcard-temp').getChildText('NICKNAME'), 'Bobby');
      // The message waited for the login too, instead of bouncing.
      await early;
      assert.equal(again.received.some((s) => s.attrs.id === 'early-msg' && s.attrs.type === 'error'), false);
    } finally {
      await again.stop();
    }
  });

  it('stays invisible on MSN (XEP-0186 and presence type=invisible): the buddy never sees the user online', async () => {
    await nextEvent(bob, 'presence', (p) => p.email === 'romeo@hotmail.com' && p.status === 'FLN', 15000).catch(() => {});
    const seen = watch('romeo@hotmail.com');
    const romeo = await connect({ port: world.ts.port, username: 'romeo', password: 'pw', resource: 'desk' });
    try {
      const r = await iq(romeo, 'set', undefined, xml('invisible', { xmlns: INVISIBLE }));
      assert.equal(r.attrs.type, 'result');
      await romeo.send(xml('presence', {}, xml('status', {}, 'hiding')));
      await romeo.waitFor((s) => s.is('presence') && s.attrs.from === MSN && !s.attrs.type, 'logged in to MSN', 20000);
      assert.equal(world.sim.getPresence('romeo@hotmail.com')?.status, 'HDN');
      // Becoming visible restores the status on MSN.
      const online = nextEvent(bob, 'presence', (p) => p.email === 'romeo@hotmail.com' && p.status === 'NLN');
      assert.equal((await iq(romeo, 'set', undefined, xml('visible', { xmlns: INVISIBLE }))).attrs.type, 'result');
      await online;
      const first = seen.findIndex((p) => p.status !== 'FLN');
      assert.equal(seen[first]?.status, 'NLN', 'the first presence Bob sees is the one after becoming visible');
      // Invisible again through the gateway presence: Bob sees Romeo go offline.
      const gone = nextEvent(bob, 'presence', (p) => p.email === 'romeo@hotmail.com' && p.status === 'FLN');
      await romeo.send(xml('presence', { to: MSN, type: 'invisible' }));
      await gone;
      assert.equal(world.sim.getPresence('romeo@hotmail.com')?.status, 'HDN');
      // A plain presence again: visible.
      const back = nextEvent(bob, 'presence', (p) => p.email === 'romeo@hotmail.com' && p.status === 'AWY');
      await romeo.send(xml('presence', {}, xml('show', {}, 'away')));
      await back;
    } finally {
      await romeo.stop();
    }
  });

  it('keeps the last error per user: a refused password stops reconnecting and says why', async () => {
    const account = world.sim.accounts.get('alice@hotmail.com')!;
    account.password = 'changed-elsewhere';
    world.sim.disconnect('alice@hotmail.com', 'SSD');
    await juliet.waitFor(
      (s) => s.is('message') && s.attrs.from === MSN && /refused your address or password/.test(s.getChildText('body') ?? ''),
      'password refused notice',
      30000,
    );
    const entry = msnTransportStatus(world.ts.server)?.users.find((u) => u.user === 'juliet@localhost');
    assert.equal(entry?.state, 'offline');
    assert.match(entry?.lastError?.message ?? '', /refused the credentials/);
  });
});
