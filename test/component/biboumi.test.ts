// A real gateway as an XEP-0114 component: Debian's biboumi (XMPP ⇄ IRC)
// connects to jabberfly's component port, Debian's ngircd is the IRC
// server (each with its own configuration in a temp folder, on loopback and
// free ports), and a tiny raw-socket IRC client sits in the channel. A
// local user (@xmpp/client) points biboumi's `irc.local` at ngircd with
// biboumi's own ad-hoc command, joins `#chan%irc.local@biboumi.localhost`,
// and messages cross both ways. A second biboumi with the wrong secret is
// refused while the first stays connected.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { ComponentService } from '../../src/component/component-service.ts';
import { IrcClient } from '../helpers/irc-client.ts';
import { freePort, PeerProcess, userIds } from '../helpers/peer-process.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const BIBOUMI = 'biboumi.localhost';
const SECRET = 'bib-secret';
const ROOM = `#chan%irc.local@${BIBOUMI}`;
const COMMANDS = 'http://jabber.org/protocol/commands';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const fail = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, fail]).finally(() => clearTimeout(timer));
}

function ngircdConfig(dir: string, port: number): string {
  return `[Global]
Name = irc.local
Info = jabberfly test IRC server
AdminInfo1 = test
AdminInfo2 = test
AdminEMail = test@localhost
Listen = 127.0.0.1
Ports = ${port}
PidFile = ${join(dir, 'run', 'ngircd.pid')}
MotdPhrase = "test"
[Options]
PAM = no
Ident = no
DNS = no
`;
}

function biboumiConfig(dir: string, name: string, componentPort: number, secret: string): string {
  const file = join(dir, `${name}.cfg`);
  writeFileSync(
    file,
    [
      `hostname=${BIBOUMI}`,
      `password=${secret}`,
      'xmpp_server_ip=127.0.0.1',
      `port=${componentPort}`,
      `db_name=${join(dir, `${name}.sqlite`)}`,
      // No identd on port 113: loopback test, no privileged ports.
      'identd_port=0',
      'log_level=0',
      `policy_directory=${dir}`,
      '',
    ].join('\n'),
  );
  return file;
}

describe('biboumi (IRC gateway) as an external component', () => {
  let dir: string;
  let ts: TestServer;
  let service: ComponentService;
  let ngircd: PeerProcess;
  let biboumi: PeerProcess;
  let impostor: PeerProcess | undefined;
  let ircPort: number;
  let alice: TestClient;
  let bob: IrcClient | undefined;

  const connected = () =>
    new Promise<void>((resolve) => {
      if (service.connected(BIBOUMI)) return resolve();
      service.onConnect((d) => d === BIBOUMI && resolve());
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-biboumi-'));
    ts = await startServer({ component: { port: 0 }, components: { [BIBOUMI]: { secret: SECRET } } });
    service = ts.server.service(ComponentService)!;
    // ngircd drops root for `nobody`; its pid file goes where that user may write.
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'run'));
    const nobody = userIds('nobody');
    chownSync(join(dir, 'run'), nobody.uid, nobody.gid);
    ircPort = await freePort();
    writeFileSync(join(dir, 'ngircd.conf'), ngircdConfig(dir, ircPort));
    ngircd = new PeerProcess('ngircd', 'ngircd', ['-n', '-f', join(dir, 'ngircd.conf')]);
    await ngircd.waitOutput(new RegExp(`Now listening on \\[127\\.0\\.0\\.1\\]:${ircPort}`), 'ngircd listening');
    const up = connected();
    biboumi = new PeerProcess('biboumi', 'biboumi', [biboumiConfig(dir, 'biboumi', service.port!, SECRET)]);
    await withTimeout(Promise.race([up, biboumi.exitedEarly()]), 30000, 'biboumi to connect');
    await ts.addUser('alice', 'pw');
    alice = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'laptop' });
    await alice.send(xml('presence'));
  });

  after(async () => {
    bob?.close();
    await alice?.stop();
    await impostor?.stop();
    await biboumi?.stop();
    await ngircd?.stop();
    await ts?.stop();
    if (process.env.BIBOUMI_DEBUG) writeFileSync(process.env.BIBOUMI_DEBUG, `${biboumi?.output}\n---\n${ngircd?.output}\n---\n${impostor?.output}`);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function iq(stanza: Element, id: string): Promise<Element> {
    await alice.send(stanza);
    return alice.waitFor((s) => s.is('iq') && s.attrs.id === id, `iq ${id}`, 20000);
  }

  it('is connected and listed in the server\'s disco#items', async () => {
    assert.equal(service.connected(BIBOUMI), true);
    const r = await iq(
      xml('iq', { type: 'get', to: 'localhost', id: 'items' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' })),
      'items',
    );
    const jids = r.getChild('query').getChildren('item').map((i: Element) => i.attrs.jid);
    assert.ok(jids.includes(BIBOUMI));
    // biboumi answers disco#info for its own domain, through jabberfly.
    const info = await iq(
      xml('iq', { type: 'get', to: BIBOUMI, id: 'info' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
      'info',
    );
    assert.equal(info.attrs.type, 'result');
    assert.equal(info.getChild('query').getChild('identity').attrs.category, 'conference');
  });

  it('points irc.local at the local ngircd with biboumi\'s own ad-hoc command', async () => {
    const server = `irc.local@${BIBOUMI}`;
    const form = await iq(
      xml('iq', { type: 'set', to: server, id: 'cfg1' }, xml('command', { xmlns: COMMANDS, node: 'configure', action: 'execute' })),
      'cfg1',
    );
    const command = form.getChild('command', COMMANDS);
    assert.equal(command.attrs.status, 'executing');
    const done = await iq(
      xml(
        'iq',
        { type: 'set', to: server, id: 'cfg2' },
        xml(
          'command',
          { xmlns: COMMANDS, node: 'configure', sessionid: command.attrs.sessionid },
          xml(
            'x',
            { xmlns: 'jabber:x:data', type: 'submit' },
            xml('field', { var: 'address' }, xml('value', {}, '127.0.0.1')),
            xml('field', { var: 'ports' }, xml('value', {}, String(ircPort))),
            xml('field', { var: 'tls_ports' }),
          ),
        ),
      ),
      'cfg2',
    );
    assert.equal(done.attrs.type, 'result');
    assert.equal(done.getChild('command', COMMANDS).attrs.status, 'completed');
  });

  it('carries a local user\'s message to the IRC channel and an IRC reply back', async () => {
    bob = await IrcClient.register(ircPort, 'ircbob');
    bob.send('JOIN #chan');
    await bob.waitLine(/^:ircbob!\S+ JOIN :?#chan$/, 'bob joined');
    // Joining the room (XEP-0045): biboumi connects to ngircd for alice and joins #chan.
    await alice.send(xml('presence', { to: `${ROOM}/alice` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
    const self = await alice.waitFor(
      (s) =>
        s.is('presence') &&
        s.attrs.from === `${ROOM}/alice` &&
        !s.attrs.type &&
        !!s.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChildren('status').some((st: Element) => st.attrs.code === '110'),
      'joined the room',
      30000,
    );
    assert.ok(self);
    await bob.waitLine(/^:alice!\S+ JOIN :?#chan$/, 'alice joined on IRC');

    await alice.send(xml('message', { to: ROOM, type: 'groupchat', id: 'x1' }, xml('body', {}, 'hello from jabberfly')));
    const line = await bob.waitLine(/PRIVMSG #chan :hello from jabberfly$/, 'message on IRC');
    assert.match(line, /^:alice!/);

    bob.send('PRIVMSG #chan :hello from IRC');
    const reply = await alice.waitFor(
      (s) => s.is('message') && s.attrs.type === 'groupchat' && s.getChildText('body') === 'hello from IRC',
      'IRC reply',
      20000,
    );
    assert.equal(reply.attrs.from, `${ROOM}/ircbob`);
  });

  it('refuses a second biboumi with the wrong secret and keeps the first', async () => {
    impostor = new PeerProcess('biboumi (wrong secret)', 'biboumi', [biboumiConfig(dir, 'impostor', service.port!, 'wrong')]);
    await impostor.waitOutput(/RECEIVING: <error [^\n]*<not-authorized /, 'the refusal at biboumi');
    assert.ok(ts.logs.some((l) => /component handshake refused: wrong secret domain=biboumi\.localhost/.test(l)));
    assert.equal(service.connected(BIBOUMI), true);
    // The room still works through the first one.
    await alice.send(xml('message', { to: ROOM, type: 'groupchat' }, xml('body', {}, 'still here')));
    await bob!.waitLine(/PRIVMSG #chan :still here$/, 'message after the refusal');
  });
});
