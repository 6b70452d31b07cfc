// Users of another server reaching the transport over s2s, when the admin
// allows it (msn.allowRemoteUsers): their roster cannot be written
// in-process, so contacts come as roster-subsync offers, which their own
// server accepts because they registered with this gateway; their vCard
// (nickname, picture for MSN) is read from their own server with an iq.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { MsnSimulator } from '../msn-sim/simulator.ts';
import { MsnSession } from '../../src/msnp/index.ts';
import { nextEvent } from './msn-harness.ts';

const GW = 'msn.a.test';
const BOB = 'bob%hotmail.com@msn.a.test';
const SUBSYNC = 'http://delx.cjb.net/protocol/roster-subsync';

describe('MSN transport for users of another server', () => {
  let sim: MsnSimulator;
  let a: TestServer;
  let b: TestServer;
  let romeo: TestClient;
  let bob: MsnSession;

  const s2sPort = (ts: TestServer) => ts.server.service(S2SService)!.ports.starttls;

  before(async () => {
    sim = new MsnSimulator();
    sim.addAccount('alice@hotmail.com', 'alicepw');
    sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bob' });
    sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
    const ep = await sim.start();
    a = await startServer({
      domain: 'a.test',
      s2s: { port: 0 },
      msn: { enabled: true, server: `127.0.0.1:${ep.nsPort}`, nexus: ep.nexusUrl, allowRemoteUsers: true },
    });
    b = await startServer({ domain: 'b.test', s2s: { port: 0 } });
    a.config.s2s.routes['b.test'] = `127.0.0.1:${s2sPort(b)}`;
    b.config.s2s.routes['a.test'] = `127.0.0.1:${s2sPort(a)}`;
    b.config.s2s.routes[GW] = `127.0.0.1:${s2sPort(a)}`;
    await b.addUser('romeo', 'pw');
    romeo = await connect({ port: b.port, domain: 'b.test', username: 'romeo', password: 'pw' });
    await romeo.send(xml('iq', { type: 'get', id: 'r0' }, xml('query', { xmlns: 'jabber:iq:roster' })));
    await romeo.waitFor((s) => s.attrs.id === 'r0', 'roster');
    await romeo.send(xml('presence'));
    bob = new MsnSession({ email: 'bob@hotmail.com', password: 'bobpw', server: `127.0.0.1:${ep.nsPort}`, nexusUrl: ep.nexusUrl });
    bob.on('error', () => {});
    await bob.login();
  });
  after(async () => {
    await romeo?.stop();
    await bob?.logout().catch(() => {});
    await b?.stop();
    await a?.stop();
    await sim?.stop();
  });

  it('registers over s2s, gets contacts as roster-subsync offers its server trusts, and chats', async () => {
    // The transport reads a remote user's vCard from the user's own server (an iq over s2s).
    await romeo.send(xml('iq', { type: 'set', id: 'vc' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('NICKNAME', {}, 'Romeo M.'))));
    assert.equal((await romeo.waitFor((s) => s.attrs.id === 'vc', 'vCard stored')).attrs.type, 'result');
    const renamed = nextEvent(bob, 'nickname', (n) => n.email === 'alice@hotmail.com' && n.nickname === 'Romeo M.', 20000);
    await romeo.send(
      xml(
        'iq',
        { type: 'set', id: 'reg', to: GW },
        xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'alice@hotmail.com'), xml('password', {}, 'alicepw')),
      ),
    );
    const reg = await romeo.waitFor((s) => s.attrs.id === 'reg', 'registration result', 15000);
    assert.equal(reg.attrs.type, 'result');
    // The gateway asks to be a contact; the user's client accepts and asks back.
    await romeo.waitFor((s) => s.attrs.from === GW && s.attrs.type === 'subscribe', 'gateway subscribe', 10000);
    await romeo.send(xml('presence', { to: GW, type: 'subscribed' }));
    await romeo.send(xml('presence', { to: GW, type: 'subscribe' }));
    // Once subscribed, the user's presence reaches the gateway, which logs in to MSN.
    await romeo.waitFor((s) => s.attrs.from === GW && !s.attrs.type, 'gateway online', 15000);
    await renamed;
    const offer = await romeo.waitFor((s) => s.attrs.from === BOB && s.attrs.type === 'subscribe', 'contact offer', 15000);
    // romeo's own server kept the payload: the offer comes from a gateway romeo is subscribed to.
    assert.equal(offer.getChild('x', SUBSYNC)?.getChild('item')?.attrs.subscription, 'both');

    await romeo.send(xml('presence', { to: BOB, type: 'subscribed' }));
    await romeo.send(xml('presence', { to: BOB, type: 'subscribe' }));
    const heard = nextEvent(bob, 'message', (m) => m.from === 'alice@hotmail.com' && m.text === 'from afar');
    await romeo.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, 'from afar')));
    await heard;
    const reply = romeo.waitFor((s) => s.attrs.from === BOB && s.getChildText('body') === 'welcome', 'reply over s2s', 10000);
    await bob.sendMessage('alice@hotmail.com', 'welcome');
    await reply;
  });

  it('refuses remote registrations when the admin does not allow them', async () => {
    a.config.msn.allowRemoteUsers = false;
    await romeo.send(xml('iq', { type: 'get', id: 'form', to: GW }, xml('query', { xmlns: 'jabber:iq:register' })));
    const r = await romeo.waitFor((s) => s.attrs.id === 'form', 'form reply', 10000);
    assert.equal(r.attrs.type, 'error');
    assert.ok(r.getChild('error').getChild('not-allowed', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });
});
