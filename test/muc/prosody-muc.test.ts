// Rooms across federation with Debian's Prosody 0.12: a Prosody user
// (slixmpp with its MUC plugin) joins a room at conference.jf.example and
// talks with a jabberfly user, and a jabberfly user joins a room on
// Prosody's own MUC component (conference.pros.example). Links authenticate
// with Server Dialback; Prosody finds jabberfly's domains (jf.example and
// conference.jf.example) through the test's loopback DNS server, jabberfly
// finds Prosody's through static routes (see test/s2s/prosody.test.ts).
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { generateSelfSigned } from '../../src/tls/certs.ts';
import { freePort, Prosody, prosodyConfig, prosodyIds } from '../helpers/prosody.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { FakeDns } from '../s2s/fake-dns.ts';

const PROSODY_DOMAIN = 'pros.example';
const PROSODY_MUC = `conference.${PROSODY_DOMAIN}`;
const JF_DOMAIN = 'jf.example';
const JF_MUC = `conference.${JF_DOMAIN}`;
const MUC = 'http://jabber.org/protocol/muc';
const MUC_USER = `${MUC}#user`;

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

function statusCodes(s: Stanza): number[] {
  return (s.getChild('x', MUC_USER)?.getChildren('status') ?? [])
    .map((c: Stanza) => Number(c.attrs.code))
    .sort();
}

describe('rooms across federation with Prosody', { timeout: 180_000 }, () => {
  let dir: string;
  let dns: FakeDns;
  let prosody: Prosody;
  let jf: TestServer;
  let jane: TestClient;
  let pat: SlixClient;

  before(async () => {
    const ids = prosodyIds();
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-prosody-muc-'));
    chmodSync(dir, 0o755);
    const certs = join(dir, 'certs');
    mkdirSync(certs);
    mkdirSync(join(dir, 'data'));
    generateSelfSigned(
      join(certs, `${PROSODY_DOMAIN}.crt`),
      join(certs, `${PROSODY_DOMAIN}.key`),
      [PROSODY_DOMAIN, PROSODY_MUC],
      2,
    );
    for (const entry of ['certs', 'data', ...readdirSync(certs).map((f) => join('certs', f))]) {
      chownSync(join(dir, entry), ids.uid, ids.gid);
    }
    chownSync(dir, ids.uid, ids.gid);
    const c2sPort = await freePort();
    const s2sPort = await freePort();
    jf = await startServer(
      {
        domain: JF_DOMAIN,
        s2s: {
          port: 0,
          connectTimeout: 10,
          routes: { [PROSODY_DOMAIN]: `127.0.0.1:${s2sPort}`, [PROSODY_MUC]: `127.0.0.1:${s2sPort}` },
        },
      },
      join(dir, 'jabberfly'),
    );
    const jfPort = jf.server.service(S2SService)!.ports.starttls!;
    // Prosody resolves both of jabberfly's domains by SRV, as it would on the Internet.
    dns = await FakeDns.start({
      srv: Object.fromEntries(
        [JF_DOMAIN, JF_MUC].map((d) => [
          `_xmpp-server._tcp.${d}`,
          [{ priority: 0, weight: 0, port: jfPort, target: 'jf-host.example' }],
        ]),
      ),
      a: { 'jf-host.example': '127.0.0.1' },
    });
    const configFile = join(dir, 'prosody.cfg.lua');
    writeFileSync(
      configFile,
      prosodyConfig({
        domain: PROSODY_DOMAIN,
        dir,
        c2sPort,
        s2sPort,
        dnsPort: dns.port,
        secureAuth: false,
        extra: `Component "${PROSODY_MUC}" "muc"\n`,
      }),
    );
    chownSync(configFile, ids.uid, ids.gid);
    prosody = new Prosody(configFile, ids, dir, PROSODY_DOMAIN);
    prosody.register('pat', 'pw');
    await prosody.start(s2sPort);
    await jf.addUser('jane', 'pw');
    jane = await connect({
      port: jf.port,
      domain: JF_DOMAIN,
      username: 'jane',
      password: 'pw',
      resource: 'jf',
    });
    await jane.send(xml('presence'));
    pat = new SlixClient({
      jid: `pat@${PROSODY_DOMAIN}/slix`,
      password: 'pw',
      port: c2sPort,
      plugins: ['xep_0045'],
    });
    await pat.started(30000);
    pat.send('<presence/>');
  });

  after(async () => {
    if (process.env.S2S_DEBUG)
      writeFileSync(`${process.env.S2S_DEBUG}.muc`, `${prosody?.output}\n-----\n${jf?.logs.join('\n')}`);
    await pat?.stop();
    await jane?.stop();
    await prosody?.stop();
    await jf?.stop(false);
    await dns?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a Prosody user joins a jabberfly room and both talk', async () => {
    const room = `lounge@${JF_MUC}`;
    await jane.send(xml('presence', { to: `${room}/Jane` }, xml('x', { xmlns: MUC })));
    const created = await jane.waitFor(
      (s) => s.is('presence') && s.attrs.from === `${room}/Jane`,
      'room created',
      10000,
    );
    assert.deepEqual(statusCodes(created), [110, 170, 201]);
    const id = 'instant1';
    await jane.send(
      xml(
        'iq',
        { type: 'set', to: room, id },
        xml('query', { xmlns: `${MUC}#owner` }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' })),
      ),
    );
    const unlocked = await jane.waitFor((s) => s.is('iq') && s.attrs.id === id, 'instant room', 10000);
    assert.equal(unlocked.attrs.type, 'result');

    const joined = await pat.op('muc_join', { room, nick: 'Pat' });
    assert.ok(joined.ok, `pat joins over s2s: ${joined.condition} ${joined.text}`);
    assert.deepEqual(joined.value!.occupants, ['Jane', 'Pat']);
    // Jane moderates, so she sees Pat's real JID.
    const patHere = await jane.waitFor(
      (s) => s.is('presence') && s.attrs.from === `${room}/Pat` && !s.attrs.type,
      'pat arrives',
      20000,
    );
    assert.equal(patHere.getChild('x', MUC_USER).getChild('item').attrs.jid, `pat@${PROSODY_DOMAIN}/slix`);

    assert.ok((await pat.op('muc_message', { room, body: 'hello from prosody' })).ok);
    const heard = await jane.waitFor(
      (s) => s.is('message') && s.getChildText('body') === 'hello from prosody',
      'message at jane',
      20000,
    );
    assert.equal(heard.attrs.from, `${room}/Pat`);
    assert.ok(heard.getChild('occupant-id', 'urn:xmpp:occupant-id:0'));
    await jane.send(xml('message', { to: room, type: 'groupchat' }, xml('body', {}, 'hello from jabberfly')));
    const back = await pat.waitStanza(
      (s) => s.name === 'message' && s.getChildText('body') === 'hello from jabberfly',
      'message at pat',
      20000,
    );
    assert.equal(back.attrs.from, `${room}/Jane`);

    // Rooms here are created by this server's users only (muc.roomCreation: local).
    const refused = await pat.op('muc_join', { room: `patsroom@${JF_MUC}`, nick: 'Pat' });
    assert.equal(refused.condition, 'not-allowed');
    assert.match(refused.text ?? '', /only users of jf\.example may create rooms/);

    pat.send(`<presence to='${room}/Pat' type='unavailable'/>`);
    await jane.waitFor(
      (s) => s.is('presence') && s.attrs.from === `${room}/Pat` && s.attrs.type === 'unavailable',
      'pat leaves',
      20000,
    );
  });

  it('a jabberfly user joins a room on Prosody’s MUC component', async () => {
    const room = `cafe@${PROSODY_MUC}`;
    const made = await pat.op('muc_join', { room, nick: 'Pat' });
    assert.ok(made.ok, `pat creates a room on prosody: ${made.condition} ${made.text}`);
    assert.ok((await pat.op('muc_configure', { room, fields: {} })).ok);
    await jane.send(xml('presence', { to: `${room}/Jane` }, xml('x', { xmlns: MUC })));
    const self = await jane.waitFor(
      (s) =>
        s.is('presence') &&
        s.attrs.from === `${room}/Jane` &&
        (s.attrs.type === 'error' || statusCodes(s).includes(110)),
      'joined the prosody room',
      20000,
    );
    assert.equal(self.attrs.type, undefined, self.toString());
    await jane.send(xml('message', { to: room, type: 'groupchat' }, xml('body', {}, 'jabberfly visiting')));
    const heard = await pat.waitStanza(
      (s) => s.name === 'message' && s.getChildText('body') === 'jabberfly visiting',
      'at pat',
      20000,
    );
    assert.equal(heard.attrs.from, `${room}/Jane`);
    assert.ok((await pat.op('muc_message', { room, body: 'welcome' })).ok);
    await jane.waitFor(
      (s) => s.is('message') && s.attrs.from === `${room}/Pat` && s.getChildText('body') === 'welcome',
      'at jane',
      20000,
    );
  });
});
