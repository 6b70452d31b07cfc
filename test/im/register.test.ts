// XEP-0077 in-band registration: a raw client registers before logging in
// and slixmpp then logs in with the new account; closed registration and
// the per-IP limit refuse; logged-in users change their password and remove
// their account (data deleted, sessions closed with not-authorized).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { VcardStore } from '../../src/storage/vcard.ts';
import { type RawSocket, rawLogin, securedStream, } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const REGISTER = 'jabber:iq:register';

/** Sends an iq and resolves with the raw reply carrying its id. */
async function rawIq(s: RawSocket, id: string, iq: string): Promise<string> {
  s.write(iq);
  const [reply] = await s.waitFor(new RegExp(`<iq[^>]*id="${id}"[^>]*?(/>|>.*?</iq>)`, 's'));
  return reply;
}

function registerSet(id: string, username: string, password: string): string {
  return `<iq type='set' id='${id}'><query xmlns='${REGISTER}'><username>${username}</username><password>${password}</password></query></iq>`;
}

async function slixLogin(jid: string, password: string, port: number): Promise<void> {
  const c = new SlixClient({ jid, password, port });
  try {
    assert.equal(await c.started(), jid);
  } finally {
    await c.stop();
  }
}

describe('in-band registration, open', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer({ registration: { open: true, perIpPerHour: 2 } });
    await ts.addUser('alice', 'pw');
  });
  after(() => ts.stop());

  it('offers the stream feature and the form, creates the account, and slixmpp logs in with it', async () => {
    const { s, features } = await securedStream(ts.port);
    try {
      assert.match(features, /<register xmlns="http:\/\/jabber.org\/features\/iq-register"\/>/);
      const form = await rawIq(s, 'r1', `<iq type='get' id='r1'><query xmlns='${REGISTER}'/></iq>`);
      assert.match(form, /type="result"/);
      assert.match(form, /<instructions>[^<]+<\/instructions>/);
      assert.match(form, /<username\/>/);
      assert.match(form, /<password\/>/);
      const done = await rawIq(s, 'r2', registerSet('r2', 'Newbie', 's3cret &amp; long'));
      assert.match(done, /type="result"/);
    } finally {
      s.destroy();
    }
    // The username is normalised (RFC 7622 case mapping).
    await slixLogin('newbie@localhost/slix', 's3cret & long', ts.port);
  });

  it('refuses a taken username, missing fields and removal before login', async () => {
    const { s } = await securedStream(ts.port);
    try {
      const taken = await rawIq(s, 'c1', registerSet('c1', 'alice', 'x'));
      assert.match(taken, /type="error".*<error type="cancel"><conflict /s);
      assert.doesNotMatch(taken, /<password>/, 'the password is not echoed');
      const missing = await rawIq(s, 'c2', registerSet('c2', 'someone', ''));
      assert.match(missing, /<error type="modify"><not-acceptable /);
      const remove = await rawIq(
        s,
        'c3',
        `<iq type='set' id='c3'><query xmlns='${REGISTER}'><remove/></query></iq>`,
      );
      assert.match(remove, /<error type="auth"><registration-required /);
    } finally {
      s.destroy();
    }
    assert.equal(await ts.server.accounts.exists('someone'), false);
  });

  it('limits new accounts per IP per hour (policy-violation, wait)', async () => {
    const { s } = await securedStream(ts.port);
    try {
      // newbie used one of the two registrations allowed for 127.0.0.1.
      assert.match(await rawIq(s, 'l1', registerSet('l1', 'second', 'pw')), /type="result"/);
      const refused = await rawIq(s, 'l2', registerSet('l2', 'third', 'pw'));
      assert.match(refused, /<error type="wait"><policy-violation /);
    } finally {
      s.destroy();
    }
    assert.equal(await ts.server.accounts.exists('third'), false);
  });
});

describe('in-band registration, closed', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer();
  });
  after(() => ts.stop());

  it('neither offers nor performs registration', async () => {
    const { s, features } = await securedStream(ts.port);
    try {
      assert.doesNotMatch(features, /iq-register/);
      const form = await rawIq(s, 'g', `<iq type='get' id='g'><query xmlns='${REGISTER}'/></iq>`);
      assert.match(form, /<error type="cancel"><service-unavailable /);
      const set = await rawIq(s, 's', registerSet('s', 'mallory', 'pw'));
      assert.match(set, /<error type="cancel"><service-unavailable /);
    } finally {
      s.destroy();
    }
    assert.equal(await ts.server.accounts.exists('mallory'), false);
  });
});

describe('account management after login', () => {
  let ts: TestServer;
  let bob: TestClient;
  before(async () => {
    ts = await startServer();
    await ts.addUser('bob', 'old pw');
    await ts.addUser('dave', 'pw');
    bob = await connect({ port: ts.port, username: 'bob', password: 'old pw', resource: 'main' });
  });
  after(async () => {
    await bob?.stop();
    await ts.stop();
  });

  const change = (username: string, password: string) =>
    bob.xmpp.iqCaller.request(
      xml(
        'iq',
        { type: 'set' },
        xml('query', { xmlns: REGISTER }, xml('username', {}, username), xml('password', {}, password)),
      ),
    );

  it('shows the account as registered', async () => {
    const q = (
      await bob.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: REGISTER })))
    ).getChild('query');
    assert.ok(q.getChild('registered'));
    assert.equal(q.getChildText('username'), 'bob');
  });

  it('refuses an empty password and changing another user', async () => {
    await assert.rejects(change('bob', ''), (e: { condition?: string }) => e.condition === 'bad-request');
    await assert.rejects(change('dave', 'x'), (e: { condition?: string }) => e.condition === 'bad-request');
    await slixLogin('dave@localhost/slix', 'pw', ts.port);
  });

  it('changes the password: other sessions are reset, the new one logs in, the old one no more', async () => {
    const other = await rawLogin(ts.port, 'bob', 'old pw', 'other');
    try {
      await change('bob', 'new pw');
      await other.waitFor(/<stream:error><reset xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
      await other.waitClosed();
    } finally {
      other.destroy();
    }
    await slixLogin('bob@localhost/slix', 'new pw', ts.port);
    await assert.rejects(connect({ port: ts.port, username: 'bob', password: 'old pw' }), /not-authorized/);
  });

  it('removes the account: data deleted, sessions closed with not-authorized, the JID gone', async () => {
    const dave = await rawLogin(ts.port, 'dave', 'pw', 'a');
    const second = await rawLogin(ts.port, 'dave', 'pw', 'b');
    try {
      assert.match(
        await rawIq(dave, 'v', "<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Dave</FN></vCard></iq>"),
        /type="result"/,
      );
      assert.ok(await ts.server.store(VcardStore).get('dave@localhost'));

      const removed = await rawIq(
        dave,
        'rm',
        `<iq type='set' id='rm'><query xmlns='${REGISTER}'><remove/></query></iq>`,
      );
      assert.match(removed, /type="result"/);
      for (const s of [dave, second]) {
        await s.waitFor(/<stream:error><not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
        await s.waitClosed();
      }
    } finally {
      dave.destroy();
      second.destroy();
    }
    assert.equal(await ts.server.store(VcardStore).get('dave@localhost'), undefined);
    assert.equal(await ts.server.accounts.exists('dave'), false);
    const vcardGet = xml('iq', { type: 'get', to: 'dave@localhost' }, xml('vCard', { xmlns: 'vcard-temp' }));
    await assert.rejects(
      bob.xmpp.iqCaller.request(vcardGet),
      (e: { condition?: string }) => e.condition === 'service-unavailable',
    );
    await assert.rejects(connect({ port: ts.port, username: 'dave', password: 'pw' }), /not-authorized/);
  });
});
