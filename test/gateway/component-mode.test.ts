// The MSN transport as an XEP-0114 component of another server (here a
// second jabberfly, whose own transport is off), the way `jabberfly
// transport` runs it: the users' server grants it roster access (XEP-0356),
// so contacts are written into the user's roster with no client action;
// the user's vCard is read with an iq; messages and presence cross; the
// link drops and comes back (the transport probes its users and logs them
// in again); unregistering takes the contacts out of the roster again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { ComponentService } from '../../src/component/component-service.ts';
import { buildConfig } from '../../src/config/load.ts';
import type { MsnSession } from '../../src/msnp/index.ts';
import { TransportServer } from '../../src/transport/transport-server.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { MsnSimulator } from '../msn-sim/simulator.ts';
import { nextEvent } from './msn-harness.ts';

const GW = 'msn.localhost';
const BOB = `bob%hotmail.com@${GW}`;
const ROSTER = 'jabber:iq:roster';

describe('MSN transport as a component of another server (roster privilege granted)', () => {
  let sim: MsnSimulator;
  let host: TestServer;
  let transport: TransportServer;
  let dir: string;
  let juliet: TestClient;
  let bob: MsnSession;
  const logs: string[] = [];

  const rosterPush = (jid: string, pred: (item: Element) => boolean = () => true, ms = 15000) =>
    juliet
      .waitFor((s) => {
        const item = s.is('iq') && s.attrs.type === 'set' ? s.getChild('query', ROSTER)?.getChild('item') : undefined;
        return item?.attrs.jid === jid && pred(item);
      }, `roster push for ${jid}`, ms)
      .then((s) => s.getChild('query', ROSTER).getChild('item') as Element);

  before(async () => {
    sim = new MsnSimulator();
    sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
    sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bobby' });
    sim.addContact('alice@hotmail.com', 'bob@hotmail.com', ['FL', 'AL'], { nickname: 'Bobby', groups: ['Friends'] });
    sim.addContact('bob@hotmail.com', 'alice@hotmail.com');
    const ep = await sim.start();
    // The users' server: no transport of its own, the component configured with roster access.
    host = await startServer({
      component: { port: 0 },
      components: { [GW]: { secret: 'msn-secret', privileges: { roster: 'both' } } },
    });
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-transport-'));
    const port = host.server.service(ComponentService)!.port!;
    transport = await TransportServer.start(
      buildConfig({
        domain: 'localhost',
        storage: { path: join(dir, 'storage') },
        msn: { domain: GW, server: `127.0.0.1:${ep.dispatchPort}`, nexus: ep.nexusUrl },
        transport: { component: `127.0.0.1:${port}`, secret: 'msn-secret' },
        log: { level: 'debug' },
      }),
      { logSink: (l) => logs.push(l) },
    );
    await host.addUser('juliet', 'pw');
    juliet = await connect({ port: host.port, username: 'juliet', password: 'pw', resource: 'laptop' });
    await juliet.send(xml('iq', { type: 'get', id: 'r0' }, xml('query', { xmlns: ROSTER })));
    await juliet.waitFor((s) => s.attrs.id === 'r0', 'roster');
    await juliet.send(xml('iq', { type: 'set', id: 'v0' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('NICKNAME', {}, 'Juliet C.'))));
    await juliet.waitFor((s) => s.attrs.id === 'v0', 'vCard stored');
    await juliet.send(xml('presence'));
    bob = await new Promise<MsnSession>((resolve, reject) => {
      import('../../src/msnp/index.ts').then(({ MsnSession }) => {
        const s = new MsnSession({ email: 'bob@hotmail.com', password: 'bobpw', server: `127.0.0.1:${ep.nsPort}`, nexusUrl: ep.nexusUrl });
        s.on('error', () => {});
        s.login().then(() => resolve(s), reject);
      }, reject);
    });
  });

  after(async () => {
    if (process.env.TRANSPORT_DEBUG) (await import('node:fs')).writeFileSync(process.env.TRANSPORT_DEBUG, `${logs.join('\n')}\n---\n${host?.logs.join('\n')}`);
    await juliet?.stop();
    await bob?.logout().catch(() => {});
    await transport?.stop();
    await host?.stop();
    await sim?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is told its privileges by the users\' server', () => {
    assert.ok(logs.some((l) => /privileges granted server=localhost roster=both/.test(l)), logs.join('\n'));
  });

  it('registers a user and writes the gateway and the MSN contacts into the roster itself', async () => {
    const gateway = rosterPush(GW, (i) => i.attrs.subscription === 'both');
    const contact = rosterPush(BOB);
    const online = juliet.waitFor((s) => s.is('presence') && s.attrs.from === GW && !s.attrs.type, 'gateway online', 20000);
    // The user's vCard is read from the users' server: its nickname becomes the MSN name.
    const renamed = nextEvent(bob, 'nickname', (n) => n.email === 'alice@hotmail.com' && n.nickname === 'Juliet C.', 20000);
    await juliet.send(
      xml(
        'iq',
        { type: 'set', to: GW, id: 'reg' },
        xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'alice@hotmail.com'), xml('password', {}, 'alicepw')),
      ),
    );
    const r = await juliet.waitFor((s) => s.attrs.id === 'reg', 'registration result', 20000);
    assert.equal(r.attrs.type, 'result');
    await gateway;
    await online;
    const item = await contact;
    assert.equal(item.attrs.subscription, 'both');
    assert.equal(item.attrs.name, 'Bobby');
    assert.deepEqual(item.getChildren('group').map((g: Element) => g.getText()), ['Friends']);
    await renamed;
    // No subscription requests were needed.
    assert.equal(juliet.received.some((s) => s.is('presence') && s.attrs.type === 'subscribe'), false);
  });

  it('carries presence and messages both ways', async () => {
    const away = juliet.waitFor((s) => s.is('presence') && s.attrs.from === BOB && s.getChildText('show') === 'away', 'bob away', 15000);
    await bob.setStatus('AWY');
    await away;
    const heard = nextEvent(bob, 'message', (m) => m.from === 'alice@hotmail.com' && m.text === 'hello over a component');
    await juliet.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, 'hello over a component')));
    await heard;
    const reply = juliet.waitFor((s) => s.is('message') && s.attrs.from === BOB && s.getChildText('body') === 'hi back', 'reply', 15000);
    await bob.sendMessage('alice@hotmail.com', 'hi back');
    await reply;
  });

  it('logs the user in again after the link to the users\' server drops', async () => {
    const gone = nextEvent(bob, 'presence', (p) => p.email === 'alice@hotmail.com' && p.status === 'FLN', 20000);
    const back = nextEvent(bob, 'presence', (p) => p.email === 'alice@hotmail.com' && p.status === 'NLN', 30000);
    for (const s of host.server.service(ComponentService)!.streams) s.close('system-shutdown', 'test: dropping the link');
    await gone;
    // Reconnected, the transport probes its users; juliet is online, so she is logged in again.
    await back;
    const reply = juliet.waitFor((s) => s.is('message') && s.attrs.from === BOB && s.getChildText('body') === 'welcome back', 'message after reconnect', 15000);
    await bob.sendMessage('alice@hotmail.com', 'welcome back');
    await reply;
  });

  it('unregisters and takes the transport\'s contacts out of the roster', async () => {
    const removedBob = rosterPush(BOB, (i) => i.attrs.subscription === 'remove');
    const removedGw = rosterPush(GW, (i) => i.attrs.subscription === 'remove');
    await juliet.send(xml('iq', { type: 'set', to: GW, id: 'unreg' }, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove'))));
    assert.equal((await juliet.waitFor((s) => s.attrs.id === 'unreg', 'unregister result', 15000)).attrs.type, 'result');
    await removedBob;
    await removedGw;
  });
});
