// A whole room's life with Debian's slixmpp and its own MUC plugin
// (xep_0045, xep_0249) against the real `jabberfly` command: create a
// room, configure it persistent and members-only, invite, join, talk,
// history on rejoin, kick, ban, a direct invitation, and the room (with
// its members, outcasts and history) still there after `jabberfly` is
// stopped and started again.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AccountStore } from '../../src/storage/accounts.ts';
import { LevelBackend } from '../../src/storage/level.ts';
import type { Element } from '../../src/xml/element.ts';
import { exited, startCli } from '../helpers/cli.ts';
import { SlixClient } from '../helpers/slixmpp.ts';

const ROOM = 'team@conference.localhost';
const MUC_USER = 'http://jabber.org/protocol/muc#user';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function statusCodes(s: Element): number[] {
  return (s.getChild('x', MUC_USER)?.getChildren('status') ?? []).map((c) => Number(c.attrs.code)).sort();
}

describe('a room’s life with slixmpp, across a jabberfly restart', { timeout: 240_000 }, () => {
  let dir: string;
  let configFile: string;
  let port: number;
  let server: { child: ChildProcess; output: () => string } | null = null;
  const clients: SlixClient[] = [];

  const start = async () => {
    server = await startCli(['--config', configFile]);
  };
  const stop = async () => {
    if (!server) return;
    server.child.kill('SIGTERM');
    assert.equal(await exited(server.child), 0, 'jabberfly stops cleanly');
    server = null;
  };
  const slix = async (user: string, resource = 'slix'): Promise<SlixClient> => {
    const c = new SlixClient({
      jid: `${user}@localhost/${resource}`,
      password: 'pw',
      port,
      plugins: ['xep_0045', 'xep_0249'],
    });
    clients.push(c);
    await c.started(30000);
    c.send('<presence/>');
    return c;
  };
  const invitation = (c: SlixClient) =>
    c.waitStanza(
      (s) => s.name === 'message' && s.getChild('x', MUC_USER)?.getChild('invite') !== undefined,
      'invitation',
      20000,
    );

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-muc-slix-'));
    port = await freePort();
    configFile = join(dir, 'jabberfly.yaml');
    writeFileSync(
      configFile,
      [
        'domain: localhost',
        'listen: ["127.0.0.1"]',
        `storage: { path: "${join(dir, 'storage')}" }`,
        `tls: { dir: "${join(dir, 'certs')}" }`,
        `c2s: { port: ${port}, directTlsPort: false }`,
        's2s: { port: false }',
        'http: { port: false }',
        'https: { port: false }',
        'msn: { enabled: false }',
        'log: { level: info }',
        '',
      ].join('\n'),
    );
    const backend = await LevelBackend.open(join(dir, 'storage'));
    const accounts = new AccountStore(backend);
    for (const u of ['alice', 'bob', 'carol', 'dave']) await accounts.setPassword(u, 'pw');
    await backend.close();
    await start();
  });

  after(async () => {
    for (const c of clients) await c.stop();
    await stop().catch(() => server?.child.kill('SIGKILL'));
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates and configures a members-only persistent room, invites, talks, kicks and bans', async () => {
    const alice = await slix('alice');
    const bob = await slix('bob');
    const carol = await slix('carol');
    const dave = await slix('dave');

    const created = await alice.op('muc_join', { room: ROOM, nick: 'Alice' });
    assert.ok(created.ok, `alice creates the room: ${created.condition} ${created.text}`);
    const self = await alice.waitStanza(
      (s) => s.name === 'presence' && s.attrs.from === `${ROOM}/Alice`,
      'self-presence',
    );
    assert.deepEqual(statusCodes(self), [110, 170, 201], 'a new room, archived');
    const configured = await alice.op('muc_configure', {
      room: ROOM,
      fields: {
        'muc#roomconfig_roomname': 'The Team',
        'muc#roomconfig_persistentroom': true,
        'muc#roomconfig_membersonly': true,
      },
    });
    assert.ok(configured.ok, `configuration accepted: ${configured.condition} ${configured.text}`);

    const refused = await bob.op('muc_join', { room: ROOM, nick: 'Bob' });
    assert.equal(refused.ok, false);
    assert.equal(refused.condition, 'registration-required');

    assert.ok((await alice.op('muc_invite', { room: ROOM, jid: 'bob@localhost', reason: 'welcome' })).ok);
    const invite = await invitation(bob);
    assert.equal(invite.attrs.from, ROOM);
    assert.equal(invite.getChild('x', MUC_USER)!.getChild('invite')!.attrs.from, 'alice@localhost');

    const bobIn = await bob.op('muc_join', { room: ROOM, nick: 'Bob' });
    assert.ok(bobIn.ok, `bob joins: ${bobIn.condition} ${bobIn.text}`);
    assert.deepEqual(bobIn.value!.occupants, ['Alice', 'Bob'], 'slixmpp saw Alice, then itself');
    assert.deepEqual(
      (await alice.op('muc_affiliations', { room: ROOM, affiliation: 'member' })).value!.jids,
      ['bob@localhost'],
    );

    assert.ok((await alice.op('muc_message', { room: ROOM, body: 'hello team' })).ok);
    const heard = await bob.waitStanza(
      (s) => s.name === 'message' && s.attrs.type === 'groupchat' && s.getChildText('body') === 'hello team',
      'message at bob',
    );
    assert.equal(heard.attrs.from, `${ROOM}/Alice`);

    // Bob leaves and comes back: the message is in the history slixmpp collects.
    bob.send(`<presence to='${ROOM}/Bob' type='unavailable'/>`);
    await bob.waitStanza(
      (s) => s.name === 'presence' && s.attrs.type === 'unavailable' && s.attrs.from === `${ROOM}/Bob`,
      'left',
    );
    const back = await bob.op('muc_join', { room: ROOM, nick: 'Bob', maxstanzas: 10 });
    assert.ok(back.ok);
    assert.deepEqual(back.value!.history, ['hello team']);

    // Carol is invited, joins, is kicked (and may return), then banned (and may not).
    await alice.op('muc_invite', { room: ROOM, jid: 'carol@localhost' });
    await invitation(carol);
    assert.ok((await carol.op('muc_join', { room: ROOM, nick: 'Carol' })).ok);
    assert.ok(
      (await alice.op('muc_set_role', { room: ROOM, nick: 'Carol', role: 'none', reason: 'cool down' })).ok,
    );
    const kicked = await carol.waitStanza(
      (s) => s.name === 'presence' && s.attrs.type === 'unavailable' && statusCodes(s).includes(307),
      'kicked',
    );
    assert.deepEqual(statusCodes(kicked), [110, 307]);
    await bob.waitStanza(
      (s) => s.name === 'presence' && s.attrs.from === `${ROOM}/Carol` && statusCodes(s).includes(307),
      'bob sees the kick',
    );
    assert.ok(
      (await carol.op('muc_join', { room: ROOM, nick: 'Carol' })).ok,
      'a kicked member may come back',
    );
    assert.ok(
      (
        await alice.op('muc_set_affiliation', {
          room: ROOM,
          jid: 'carol@localhost',
          affiliation: 'outcast',
          reason: 'enough',
        })
      ).ok,
    );
    const banned = await carol.waitStanza(
      (s) => s.name === 'presence' && s.attrs.type === 'unavailable' && statusCodes(s).includes(301),
      'banned',
    );
    assert.deepEqual(statusCodes(banned), [110, 301]);
    const again = await carol.op('muc_join', { room: ROOM, nick: 'Carol' });
    assert.equal(again.condition, 'forbidden');

    // A direct invitation (XEP-0249) travels user to user.
    assert.ok(
      (await alice.op('direct_invite', { room: ROOM, jid: 'dave@localhost', reason: 'have a look' })).ok,
    );
    const direct = await dave.waitStanza(
      (s) => s.name === 'message' && s.getChild('x', 'jabber:x:conference') !== undefined,
      'direct invitation',
    );
    assert.equal(direct.getChild('x', 'jabber:x:conference')!.attrs.jid, ROOM);
    assert.equal(direct.attrs.from, 'alice@localhost/slix');
  });

  it('the room, its members, outcasts and history survive a jabberfly restart', async () => {
    for (const c of clients.splice(0)) await c.stop();
    await stop();
    await start();
    assert.match(server!.output(), /persistent rooms loaded .*rooms=1/);
    const bob = await slix('bob', 'again');
    const back = await bob.op('muc_join', { room: ROOM, nick: 'Bob', maxstanzas: 10 });
    assert.ok(back.ok, `bob rejoins after the restart: ${back.condition} ${back.text}`);
    assert.deepEqual(back.value!.history, ['hello team']);
    const self = await bob.waitStanza(
      (s) => s.name === 'presence' && s.attrs.from === `${ROOM}/Bob` && !s.attrs.type,
      'self-presence',
    );
    assert.equal(self.getChild('x', MUC_USER)!.getChild('item')!.attrs.affiliation, 'member');
    const carol = await slix('carol', 'again');
    assert.equal(
      (await carol.op('muc_join', { room: ROOM, nick: 'Carol' })).condition,
      'forbidden',
      'still banned',
    );
    const dave = await slix('dave', 'again');
    assert.equal(
      (await dave.op('muc_join', { room: ROOM, nick: 'Dave' })).condition,
      'registration-required',
      'still members-only',
    );
    dave.send(
      `<iq type='get' id='info1' to='${ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
    );
    const info = await dave.waitStanza((s) => s.name === 'iq' && s.attrs.id === 'info1', 'room info');
    assert.equal(info.getChild('query')!.getChild('identity')!.attrs.name, 'The Team');
    const features = info
      .getChild('query')!
      .getChildren('feature')
      .map((f) => f.attrs.var);
    assert.ok(features.includes('muc_persistent') && features.includes('muc_membersonly'));
  });
});
