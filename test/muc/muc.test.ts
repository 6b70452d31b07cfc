// The MUC service (XEP-0045 at conference.localhost) with real clients
// (@xmpp/client): creating and configuring rooms, entering with every
// check, messages, history, subjects, nicks, private messages, roles and
// affiliations, invitations, occupant ids, self-ping, iqs to occupants,
// limits, destruction, and persistent rooms across a restart.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { join } from 'node:path';
import { LevelBackend } from '../../src/storage/level.ts';
import { MucRoomStore } from '../../src/storage/muc-rooms.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

const MUC = 'http://jabber.org/protocol/muc';
const MUC_USER = `${MUC}#user`;
const MUC_ADMIN = `${MUC}#admin`;
const MUC_OWNER = `${MUC}#owner`;
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';
const OCCUPANT_ID = 'urn:xmpp:occupant-id:0';
const SERVICE = 'conference.localhost';

const roomJid = (room: string, nick?: string) => `${room}@${SERVICE}${nick ? `/${nick}` : ''}`;

function codes(s: Stanza): number[] {
  return (s.getChild('x', MUC_USER)?.getChildren('status') ?? [])
    .map((c: Stanza) => Number(c.attrs.code))
    .sort();
}

function item(s: Stanza): Record<string, string> {
  return s.getChild('x', MUC_USER)?.getChild('item')?.attrs ?? {};
}

function errorCondition(s: Stanza): string | undefined {
  const e = s.getChild('error');
  return e?.children.find(
    (c: Stanza | string) => typeof c !== 'string' && c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas',
  )?.name;
}

let seq = 0;
const nextId = () => `t${++seq}`;

/** Sends an iq and returns the reply, result or error. */
async function iq(c: TestClient, type: 'get' | 'set', to: string, payload: Stanza): Promise<Stanza> {
  const id = nextId();
  await c.send(xml('iq', { type, to, id }, payload));
  return c.waitFor((s) => s.is('iq') && s.attrs.id === id, `iq reply ${id}`, 10000);
}

/** Presence to room/nick; resolves with the self-presence (110) or the error. */
async function enter(c: TestClient, room: string, nick: string, ...x: Stanza[]): Promise<Stanza> {
  await c.send(xml('presence', { to: roomJid(room, nick) }, xml('x', { xmlns: MUC }, ...x)));
  return c.waitFor(
    (s) =>
      s.is('presence') &&
      s.attrs.from === roomJid(room, nick) &&
      (s.attrs.type === 'error' || codes(s).includes(110)),
    `self-presence from ${roomJid(room, nick)}`,
    10000,
  );
}

/** Enters, asserts success, and waits for the subject message that ends the join. */
async function joined(c: TestClient, room: string, nick: string, ...x: Stanza[]): Promise<Stanza> {
  const self = await enter(c, room, nick, ...x);
  assert.equal(self.attrs.type, undefined, `entering ${room} as ${nick}: ${self.toString()}`);
  await c.waitFor(
    (s) => s.is('message') && s.attrs.from?.startsWith(roomJid(room)) && s.getChild('subject') !== undefined,
    'subject',
  );
  return self;
}

function configForm(fields: Record<string, string>): Stanza {
  return xml(
    'query',
    { xmlns: MUC_OWNER },
    xml(
      'x',
      { xmlns: 'jabber:x:data', type: 'submit' },
      xml('field', { var: 'FORM_TYPE' }, xml('value', {}, `${MUC}#roomconfig`)),
      ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v))),
    ),
  );
}

/** Creates a room as an instant room (or with the given configuration). */
async function createRoom(
  c: TestClient,
  room: string,
  nick: string,
  fields: Record<string, string> = {},
): Promise<void> {
  const self = await enter(c, room, nick);
  assert.deepEqual(codes(self), [110, 170, 201]);
  const reply = await iq(c, 'set', roomJid(room), configForm(fields));
  assert.equal(reply.attrs.type, 'result', reply.toString());
}

async function groupchat(c: TestClient, room: string, body: string): Promise<void> {
  await c.send(xml('message', { to: roomJid(room), type: 'groupchat' }, xml('body', {}, body)));
}

const isBody = (room: string, body: string) => (s: Stanza) =>
  s.is('message') && s.attrs.from?.startsWith(`${roomJid(room)}/`) && s.getChildText('body') === body;

describe('multi-user chat', () => {
  let ts: TestServer;
  const clients: TestClient[] = [];
  const login = async (username: string, resource = 'r'): Promise<TestClient> => {
    const c = await connect({ port: ts.port, username, password: 'pw', resource });
    clients.push(c);
    await c.send(xml('presence'));
    return c;
  };

  before(async () => {
    ts = await startServer({
      msn: { enabled: true },
      muc: { maxRoomsPerUser: 6, maxOccupants: 5, historyMaxStanzas: 5, historyDefault: 3 },
    });
    for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) await ts.addUser(u, 'pw');
  });
  // Each test's clients leave (and their temporary rooms go with them).
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop();
  });
  after(async () => {
    await ts?.stop();
  });

  it('is found through the server’s disco and describes itself', async () => {
    const alice = await login('alice');
    const items = await iq(alice, 'get', 'localhost', xml('query', { xmlns: DISCO_ITEMS }));
    assert.ok(
      items
        .getChild('query')
        .getChildren('item')
        .some((i: Stanza) => i.attrs.jid === SERVICE),
    );
    const info = await iq(alice, 'get', SERVICE, xml('query', { xmlns: DISCO_INFO }));
    const q = info.getChild('query');
    assert.equal(q.getChild('identity').attrs.category, 'conference');
    assert.ok(q.getChildren('feature').some((f: Stanza) => f.attrs.var === MUC));
  });

  it('creates a locked room, keeps others out until it is configured, then lists it', async () => {
    const alice = await login('alice', 'create');
    const bob = await login('bob');
    const self = await enter(alice, 'lobby', 'Alice');
    assert.deepEqual(codes(self), [110, 170, 201]);
    assert.deepEqual(
      { affiliation: item(self).affiliation, role: item(self).role },
      { affiliation: 'owner', role: 'moderator' },
    );
    const refused = await enter(bob, 'lobby', 'Bob');
    assert.equal(errorCondition(refused), 'item-not-found');
    // The owner asks for the form, then submits it (a reserved room).
    const form = await iq(alice, 'get', roomJid('lobby'), xml('query', { xmlns: MUC_OWNER }));
    const vars = form
      .getChild('query', MUC_OWNER)
      .getChild('x', 'jabber:x:data')
      .getChildren('field')
      .map((f: Stanza) => f.attrs.var);
    for (const v of [
      'muc#roomconfig_persistentroom',
      'muc#roomconfig_membersonly',
      'muc#roomconfig_moderatedroom',
      'muc#roomconfig_roomsecret',
      'muc#roomconfig_whois',
    ]) {
      assert.ok(vars.includes(v), `form has ${v}`);
    }
    const set = await iq(
      alice,
      'set',
      roomJid('lobby'),
      configForm({ 'muc#roomconfig_roomname': 'The Lobby' }),
    );
    assert.equal(set.attrs.type, 'result');
    await joined(bob, 'lobby', 'Bob');
    const list = await iq(bob, 'get', SERVICE, xml('query', { xmlns: DISCO_ITEMS }));
    const entry = list
      .getChild('query')
      .getChildren('item')
      .find((i: Stanza) => i.attrs.jid === roomJid('lobby'));
    assert.equal(entry?.attrs.name, 'The Lobby');
    const info = await iq(bob, 'get', roomJid('lobby'), xml('query', { xmlns: DISCO_INFO }));
    const features = info
      .getChild('query')
      .getChildren('feature')
      .map((f: Stanza) => f.attrs.var);
    for (const f of [
      MUC,
      'muc_temporary',
      'muc_open',
      'muc_semianonymous',
      OCCUPANT_ID,
      'http://jabber.org/protocol/muc#self-ping-optimization',
    ]) {
      assert.ok(features.includes(f), `room advertises ${f}`);
    }
    const occupants = await iq(bob, 'get', roomJid('lobby'), xml('query', { xmlns: DISCO_ITEMS }));
    assert.deepEqual(
      occupants
        .getChild('query')
        .getChildren('item')
        .map((i: Stanza) => i.attrs.jid)
        .sort(),
      [roomJid('lobby', 'Alice'), roomJid('lobby', 'Bob')],
    );
  });

  it('relays messages with occupant ids, keeps history, and sends the subject last', async () => {
    const alice = await login('alice', 'hist');
    const bob = await login('bob', 'hist');
    await createRoom(alice, 'history', 'Alice');
    // Bob joins and sees Alice's presence first, then his own.
    await joined(bob, 'history', 'Bob');
    for (const n of [1, 2, 3, 4]) await groupchat(alice, 'history', `message ${n}`);
    const seen = await bob.waitFor(isBody('history', 'message 4'), 'fourth message at bob');
    const id = seen.getChild('occupant-id', OCCUPANT_ID)?.attrs.id;
    assert.ok(id && id.length > 8, 'messages carry the sender’s occupant id');
    // A forged occupant id from a client is replaced by the room's.
    await alice.send(
      xml(
        'message',
        { to: roomJid('history'), type: 'groupchat' },
        xml('body', {}, 'forged'),
        xml('occupant-id', { xmlns: OCCUPANT_ID, id: 'fake' }),
      ),
    );
    const forged = await bob.waitFor(isBody('history', 'forged'), 'forged at bob');
    assert.deepEqual(
      forged.getChildren('occupant-id', OCCUPANT_ID).map((o: Stanza) => o.attrs.id),
      [id],
    );
    // Carol enters afterwards: the room's 3 latest, delayed, then the subject.
    const carol = await login('carol');
    await enter(carol, 'history', 'Carol');
    const subject = await carol.waitFor(
      (s) => s.is('message') && s.getChild('subject') !== undefined,
      'subject',
    );
    const history = carol.received.filter((s) => s.is('message') && s.getChildText('body'));
    assert.deepEqual(
      history.map((s) => s.getChildText('body')),
      ['message 3', 'message 4', 'forged'],
    );
    for (const h of history)
      assert.equal(h.getChild('delay', 'urn:xmpp:delay')?.attrs.from, roomJid('history'));
    assert.equal(subject.getChildText('subject'), '');
    // maxstanzas narrows it.
    const dave = await login('dave');
    await enter(dave, 'history', 'Dave', xml('history', { maxstanzas: '1' }));
    await dave.waitFor((s) => s.is('message') && s.getChild('subject') !== undefined, 'subject');
    assert.deepEqual(
      dave.received
        .filter((s) => s.is('message') && s.getChildText('body'))
        .map((s) => s.getChildText('body')),
      ['forged'],
    );
    // seconds=0 and since in the future: nothing.
    const erin = await login('erin');
    await enter(
      erin,
      'history',
      'Erin',
      xml('history', { since: new Date(Date.now() + 60000).toISOString() }),
    );
    await erin.waitFor((s) => s.is('message') && s.getChild('subject') !== undefined, 'subject');
    assert.equal(erin.received.filter((s) => s.is('message') && s.getChildText('body')).length, 0);
  });

  it('refuses a taken nickname, and announces nick changes with 303', async () => {
    const alice = await login('alice', 'nick');
    const bob = await login('bob', 'nick');
    await createRoom(alice, 'nicks', 'Alice');
    await joined(bob, 'nicks', 'Bob');
    const conflict = await enter(bob, 'nicks', 'Alice');
    // Bob is in the room already, so this is a nick change to a taken nick.
    assert.equal(errorCondition(conflict), 'conflict');
    const carol = await login('carol', 'nick');
    const taken = await enter(carol, 'nicks', 'Bob');
    assert.equal(errorCondition(taken), 'conflict');
    await bob.send(xml('presence', { to: roomJid('nicks', 'Robert') }));
    const gone = await alice.waitFor(
      (s) => s.is('presence') && s.attrs.from === roomJid('nicks', 'Bob') && s.attrs.type === 'unavailable',
      'Bob leaves',
    );
    assert.deepEqual(codes(gone), [303]);
    assert.equal(item(gone).nick, 'Robert');
    await alice.waitFor(
      (s) => s.is('presence') && s.attrs.from === roomJid('nicks', 'Robert') && !s.attrs.type,
      'Robert appears',
    );
    const selfGone = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.from === roomJid('nicks', 'Bob'),
      'own 303',
    );
    assert.deepEqual(codes(selfGone), [110, 303]);
    const blank = await enter(carol, 'nicks', ' ');
    assert.equal(errorCondition(blank), 'jid-malformed');
  });

  it('members-only: strangers are refused; an invitation makes a member; a decline reaches the inviter', async () => {
    const alice = await login('alice', 'members');
    const bob = await login('bob', 'members');
    const carol = await login('carol', 'members');
    await createRoom(alice, 'club', 'Alice', { 'muc#roomconfig_membersonly': '1' });
    const refused = await enter(bob, 'club', 'Bob');
    assert.equal(errorCondition(refused), 'registration-required');
    await alice.send(
      xml(
        'message',
        { to: roomJid('club') },
        xml('x', { xmlns: MUC_USER }, xml('invite', { to: 'bob@localhost' }, xml('reason', {}, 'come in'))),
      ),
    );
    const invitation = await bob.waitFor(
      (s) => s.is('message') && s.getChild('x', MUC_USER)?.getChild('invite') !== undefined,
      'invitation',
    );
    assert.equal(invitation.attrs.from, roomJid('club'));
    assert.equal(invitation.getChild('x', MUC_USER).getChild('invite').attrs.from, 'alice@localhost');
    assert.equal(invitation.getChild('x', MUC_USER).getChild('invite').getChildText('reason'), 'come in');
    assert.equal(invitation.getChild('x', 'jabber:x:conference')?.attrs.jid, roomJid('club'));
    await joined(bob, 'club', 'Bob');
    const members = await iq(
      alice,
      'get',
      roomJid('club'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { affiliation: 'member' })),
    );
    assert.deepEqual(
      members
        .getChild('query')
        .getChildren('item')
        .map((i: Stanza) => i.attrs.jid),
      ['bob@localhost'],
    );
    // A member may not invite (allowinvites is off), and a decline goes back to the inviter.
    await bob.send(
      xml(
        'message',
        { to: roomJid('club') },
        xml('x', { xmlns: MUC_USER }, xml('invite', { to: 'carol@localhost' })),
      ),
    );
    const forbidden = await bob.waitFor((s) => s.is('message') && s.attrs.type === 'error', 'invite refused');
    assert.equal(errorCondition(forbidden), 'forbidden');
    await alice.send(
      xml(
        'message',
        { to: roomJid('club') },
        xml('x', { xmlns: MUC_USER }, xml('invite', { to: 'carol@localhost' })),
      ),
    );
    await carol.waitFor(
      (s) => s.is('message') && s.getChild('x', MUC_USER)?.getChild('invite') !== undefined,
      'carol invited',
    );
    await carol.send(
      xml(
        'message',
        { to: roomJid('club') },
        xml('x', { xmlns: MUC_USER }, xml('decline', { to: 'alice@localhost' }, xml('reason', {}, 'busy'))),
      ),
    );
    const declined = await alice.waitFor(
      (s) => s.is('message') && s.getChild('x', MUC_USER)?.getChild('decline') !== undefined,
      'decline',
    );
    assert.equal(declined.getChild('x', MUC_USER).getChild('decline').attrs.from, 'carol@localhost');
    assert.equal(declined.getChild('x', MUC_USER).getChild('decline').getChildText('reason'), 'busy');
  });

  it('refuses to invite an MSN contact with a clear error', async () => {
    const alice = await login('alice', 'msn');
    await createRoom(alice, 'msninvite', 'Alice');
    await alice.send(
      xml(
        'message',
        { to: roomJid('msninvite') },
        xml('x', { xmlns: MUC_USER }, xml('invite', { to: 'friend%hotmail.com@msn.localhost' })),
      ),
    );
    const err = await alice.waitFor((s) => s.is('message') && s.attrs.type === 'error', 'invite refused');
    assert.equal(errorCondition(err), 'feature-not-implemented');
    assert.match(err.getChild('error').getChildText('text'), /cannot join XMPP rooms.*msn\.localhost/);
    // A direct invitation (XEP-0249) to the contact: the transport says the same.
    await alice.send(
      xml(
        'message',
        { to: 'friend%hotmail.com@msn.localhost', id: 'direct1' },
        xml('x', { xmlns: 'jabber:x:conference', jid: roomJid('msninvite') }),
      ),
    );
    const direct = await alice.waitFor(
      (s) => s.is('message') && s.attrs.id === 'direct1',
      'direct invitation refused',
    );
    assert.equal(direct.attrs.type, 'error');
    assert.equal(errorCondition(direct), 'feature-not-implemented');
    assert.match(direct.getChild('error').getChildText('text'), /MSN contacts cannot join XMPP rooms/);
  });

  it('password-protected rooms want the password', async () => {
    const alice = await login('alice', 'pw');
    const bob = await login('bob', 'pw');
    await createRoom(alice, 'secret', 'Alice', {
      'muc#roomconfig_passwordprotectedroom': '1',
      'muc#roomconfig_roomsecret': 'sesame',
    });
    const refused = await enter(bob, 'secret', 'Bob');
    assert.equal(errorCondition(refused), 'not-authorized');
    const wrong = await enter(bob, 'secret', 'Bob', xml('password', {}, 'wrong'));
    assert.equal(errorCondition(wrong), 'not-authorized');
    await joined(bob, 'secret', 'Bob', xml('password', {}, 'sesame'));
  });

  it('moderated rooms: visitors cannot speak until given voice; subject needs a moderator', async () => {
    const alice = await login('alice', 'mod');
    const bob = await login('bob', 'mod');
    await createRoom(alice, 'stage', 'Alice', { 'muc#roomconfig_moderatedroom': '1' });
    const self = await joined(bob, 'stage', 'Bob');
    assert.equal(item(self).role, 'visitor');
    await groupchat(bob, 'stage', 'may I?');
    const silenced = await bob.waitFor((s) => s.is('message') && s.attrs.type === 'error', 'no voice');
    assert.equal(errorCondition(silenced), 'forbidden');
    // Bob asks for voice (§7.13): Alice, the moderator, gets an approval form and approves it.
    const request = (extra: Stanza[] = []) =>
      xml(
        'message',
        { to: roomJid('stage') },
        xml(
          'x',
          { xmlns: 'jabber:x:data', type: 'submit' },
          xml('field', { var: 'FORM_TYPE' }, xml('value', {}, `${MUC}#request`)),
          xml('field', { var: 'muc#role' }, xml('value', {}, 'participant')),
          ...extra,
        ),
      );
    await bob.send(request());
    const approval = await alice.waitFor(
      (s) => s.is('message') && s.getChild('x', 'jabber:x:data')?.attrs.type === 'form',
      'voice approval form',
    );
    const fields = Object.fromEntries(
      approval
        .getChild('x', 'jabber:x:data')
        .getChildren('field')
        .map((f: Stanza) => [f.attrs.var, f.getChildText('value')]),
    );
    assert.equal(fields['muc#roomnick'], 'Bob');
    assert.equal(fields['muc#jid'], bob.jid);
    // Bob cannot approve his own request.
    await bob.send(
      request([
        xml('field', { var: 'muc#roomnick' }, xml('value', {}, 'Bob')),
        xml('field', { var: 'muc#request_allow' }, xml('value', {}, 'true')),
      ]),
    );
    const notModerator = await bob.waitFor(
      (s) => s.is('message') && s.attrs.type === 'error',
      'approval refused',
    );
    assert.equal(errorCondition(notModerator), 'forbidden');
    await alice.send(
      request([
        xml('field', { var: 'muc#roomnick' }, xml('value', {}, 'Bob')),
        xml('field', { var: 'muc#request_allow' }, xml('value', {}, 'true')),
      ]),
    );
    await bob.waitFor(
      (s) => s.is('presence') && s.attrs.from === roomJid('stage', 'Bob') && item(s).role === 'participant',
      'voice granted on request',
    );
    // Revoked and granted again with admin iqs.
    const revoke = await iq(
      alice,
      'set',
      roomJid('stage'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'Bob', role: 'visitor' })),
    );
    assert.equal(revoke.attrs.type, 'result');
    await bob.waitFor(
      (s) => s.is('presence') && s.attrs.from === roomJid('stage', 'Bob') && item(s).role === 'visitor',
      'voice revoked',
    );
    const voice = await iq(
      alice,
      'set',
      roomJid('stage'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'Bob', role: 'participant' })),
    );
    assert.equal(voice.attrs.type, 'result');
    const promoted = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.from === roomJid('stage', 'Bob') && item(s).role === 'participant',
      'voice',
    );
    assert.ok(promoted);
    await groupchat(bob, 'stage', 'thank you');
    await alice.waitFor(isBody('stage', 'thank you'), 'Bob speaks');
    // A participant may not set the subject here; the moderator may.
    await bob.send(xml('message', { to: roomJid('stage'), type: 'groupchat' }, xml('subject', {}, 'mine')));
    const denied = await bob.waitFor((s) => s.is('message') && s.attrs.type === 'error', 'subject refused');
    assert.equal(errorCondition(denied), 'forbidden');
    await alice.send(
      xml('message', { to: roomJid('stage'), type: 'groupchat' }, xml('subject', {}, 'Tonight: jazz')),
    );
    const subject = await bob.waitFor(
      (s) => s.is('message') && s.getChildText('subject') === 'Tonight: jazz',
      'subject',
    );
    assert.equal(subject.attrs.from, roomJid('stage', 'Alice'));
    // Role lists are for moderators.
    const participants = await iq(
      alice,
      'get',
      roomJid('stage'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { role: 'participant' })),
    );
    assert.deepEqual(
      participants
        .getChild('query')
        .getChildren('item')
        .map((i: Stanza) => i.attrs.nick),
      ['Bob'],
    );
    const notYours = await iq(
      bob,
      'get',
      roomJid('stage'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { role: 'participant' })),
    );
    assert.equal(errorCondition(notYours), 'forbidden');
  });

  it('kicks (307) and bans (301); the banned cannot return; nobody kicks an owner', async () => {
    const alice = await login('alice', 'kick');
    const bob = await login('bob', 'kick');
    const carol = await login('carol', 'kick');
    await createRoom(alice, 'arena', 'Alice');
    await joined(bob, 'arena', 'Bob');
    await joined(carol, 'arena', 'Carol');
    const noRight = await iq(
      bob,
      'set',
      roomJid('arena'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'Carol', role: 'none' })),
    );
    assert.equal(errorCondition(noRight), 'forbidden');
    const kick = await iq(
      alice,
      'set',
      roomJid('arena'),
      xml(
        'query',
        { xmlns: MUC_ADMIN },
        xml('item', { nick: 'Bob', role: 'none' }, xml('reason', {}, 'spam')),
      ),
    );
    assert.equal(kick.attrs.type, 'result');
    const kicked = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === roomJid('arena', 'Bob'),
      'kicked',
    );
    assert.deepEqual(codes(kicked), [110, 307]);
    assert.equal(kicked.getChild('x', MUC_USER).getChild('item').getChildText('reason'), 'spam');
    assert.equal(kicked.getChild('x', MUC_USER).getChild('item').getChild('actor')?.attrs.nick, 'Alice');
    const seenKick = await carol.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === roomJid('arena', 'Bob'),
      'kick seen',
    );
    assert.deepEqual(codes(seenKick), [307]);
    // Kicked is not banned: Bob comes back, then is banned by JID.
    await joined(bob, 'arena', 'Bob');
    const ban = await iq(
      alice,
      'set',
      roomJid('arena'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: 'bob@localhost', affiliation: 'outcast' })),
    );
    assert.equal(ban.attrs.type, 'result');
    const banned = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'unavailable' && codes(s).includes(301),
      'banned',
    );
    assert.deepEqual(codes(banned), [110, 301]);
    const again = await enter(bob, 'arena', 'Bob');
    assert.equal(errorCondition(again), 'forbidden');
    const outcasts = await iq(
      alice,
      'get',
      roomJid('arena'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { affiliation: 'outcast' })),
    );
    assert.deepEqual(
      outcasts
        .getChild('query')
        .getChildren('item')
        .map((i: Stanza) => i.attrs.jid),
      ['bob@localhost'],
    );
    // Make Carol an admin: she may not kick the owner, nor drop the last owner.
    await iq(
      alice,
      'set',
      roomJid('arena'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: 'carol@localhost', affiliation: 'admin' })),
    );
    const promoted = await carol.waitFor(
      (s) =>
        s.is('presence') && s.attrs.from === roomJid('arena', 'Carol') && item(s).affiliation === 'admin',
      'carol admin',
    );
    assert.equal(item(promoted).role, 'moderator');
    const kickOwner = await iq(
      carol,
      'set',
      roomJid('arena'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { nick: 'Alice', role: 'none' })),
    );
    assert.equal(errorCondition(kickOwner), 'not-allowed');
    const lastOwner = await iq(
      alice,
      'set',
      roomJid('arena'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: 'alice@localhost', affiliation: 'admin' })),
    );
    assert.equal(errorCondition(lastOwner), 'conflict');
  });

  it('private messages between occupants, and iqs to occupants are relayed; self-ping answers', async () => {
    const alice = await login('alice', 'pm');
    const bob = await login('bob', 'pm');
    await createRoom(alice, 'whisper', 'Alice');
    await joined(bob, 'whisper', 'Bob');
    await alice.send(
      xml('message', { to: roomJid('whisper', 'Bob'), type: 'chat' }, xml('body', {}, 'psst')),
    );
    const pm = await bob.waitFor((s) => s.is('message') && s.getChildText('body') === 'psst', 'pm');
    assert.equal(pm.attrs.from, roomJid('whisper', 'Alice'));
    assert.ok(pm.getChild('x', MUC_USER));
    // Bob's client answers a disco#info forwarded from Alice's occupant JID.
    const asked = bob.waitFor(
      (s) => s.is('iq') && s.attrs.type === 'get' && s.getChild('query', DISCO_INFO) !== undefined,
      'forwarded iq',
    );
    const reply = iq(alice, 'get', roomJid('whisper', 'Bob'), xml('query', { xmlns: DISCO_INFO }));
    const request = await asked;
    assert.equal(request.attrs.from, roomJid('whisper', 'Alice'));
    await bob.send(
      xml(
        'iq',
        { type: 'result', id: request.attrs.id, to: request.attrs.from },
        xml(
          'query',
          { xmlns: DISCO_INFO },
          xml('identity', { category: 'client', type: 'pc', name: 'bob-client' }),
        ),
      ),
    );
    const answer = await reply;
    assert.equal(answer.attrs.type, 'result');
    assert.equal(answer.attrs.from, roomJid('whisper', 'Bob'));
    assert.equal(answer.getChild('query', DISCO_INFO).getChild('identity').attrs.name, 'bob-client');
    // XEP-0410: joined → result; not joined → not-acceptable.
    const self = await iq(bob, 'get', roomJid('whisper', 'Bob'), xml('ping', { xmlns: 'urn:xmpp:ping' }));
    assert.equal(self.attrs.type, 'result');
    const carol = await login('carol', 'pm');
    const stranger = await iq(
      carol,
      'get',
      roomJid('whisper', 'Bob'),
      xml('ping', { xmlns: 'urn:xmpp:ping' }),
    );
    assert.equal(errorCondition(stranger), 'not-acceptable');
    const outsider = await (async () => {
      await carol.send(
        xml('message', { to: roomJid('whisper', 'Bob'), type: 'chat' }, xml('body', {}, 'hi')),
      );
      return carol.waitFor((s) => s.is('message') && s.attrs.type === 'error', 'pm refused');
    })();
    assert.equal(errorCondition(outsider), 'not-acceptable');
  });

  it('enforces the occupant, room and text limits with clear errors', async () => {
    const frank = await login('frank', 'limits');
    // maxOccupants is 5.
    await createRoom(frank, 'full', 'Frank');
    for (const u of ['bob', 'carol', 'dave', 'erin']) {
      const c = await login(u, 'limits');
      await joined(c, 'full', u);
    }
    const alice = await login('alice', 'limits');
    const full = await enter(alice, 'full', 'Alice');
    assert.equal(errorCondition(full), 'service-unavailable');
    assert.match(full.getChild('error').getChildText('text'), /full \(5 occupants\)/);
    const longNick = await enter(alice, 'nicklimit', 'x'.repeat(65));
    assert.equal(errorCondition(longNick), 'not-acceptable');
    // maxRoomsPerUser is 6; frank made one.
    for (let i = 0; i < 5; i++) await createRoom(frank, `frank${i}`, 'Frank');
    const tooMany = await enter(frank, 'frank-extra', 'Frank');
    assert.equal(errorCondition(tooMany), 'policy-violation');
    assert.match(tooMany.getChild('error').getChildText('text'), /maxRoomsPerUser/);
    const longSubject = 'x'.repeat(1025);
    await frank.send(
      xml('message', { to: roomJid('full'), type: 'groupchat' }, xml('subject', {}, longSubject)),
    );
    const subjectErr = await frank.waitFor(
      (s) => s.is('message') && s.attrs.type === 'error',
      'subject too long',
    );
    assert.equal(errorCondition(subjectErr), 'not-acceptable');
  });

  it('archives a room’s messages (XEP-0313 on the room JID) with the ids occupants saw', async () => {
    const MAM = 'urn:xmpp:mam:2';
    const SID = 'urn:xmpp:sid:0';
    const alice = await login('alice', 'mam');
    const bob = await login('bob', 'mam');
    const carol = await login('carol', 'mam');
    await createRoom(alice, 'records', 'Alice');
    await joined(bob, 'records', 'Bob');
    const info = await iq(carol, 'get', roomJid('records'), xml('query', { xmlns: DISCO_INFO }));
    const features = info
      .getChild('query')
      .getChildren('feature')
      .map((f: Stanza) => f.attrs.var);
    assert.ok(features.includes(MAM) && features.includes(SID), 'the room advertises its archive');
    for (const n of [1, 2, 3]) await groupchat(alice, 'records', `a${n}`);
    // A chat state is not archived; a stanza id the client forged for the room is dropped.
    await alice.send(
      xml(
        'message',
        { to: roomJid('records'), type: 'groupchat' },
        xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' }),
      ),
    );
    // Bob speaks once Alice's messages went round, so the archive's order is known.
    await alice.waitFor((s) => s.is('message') && s.getChild('active') !== undefined, 'chat state reflected');
    await bob.send(
      xml(
        'message',
        { to: roomJid('records'), type: 'groupchat' },
        xml('body', {}, 'b1'),
        xml('stanza-id', { xmlns: SID, by: roomJid('records'), id: 'forged' }),
      ),
    );
    const live: Record<string, string> = {};
    for (const body of ['a1', 'a2', 'a3', 'b1']) {
      const m = await bob.waitFor(isBody('records', body), `live ${body}`);
      const ids = m.getChildren('stanza-id', SID).filter((x: Stanza) => x.attrs.by === roomJid('records'));
      assert.equal(ids.length, 1, `one stanza id by the room on ${body}`);
      assert.notEqual(ids[0].attrs.id, 'forged');
      live[body] = ids[0].attrs.id;
    }
    /** Runs a query as `c`; returns the forwarded messages and the <fin/>. */
    const query = async (c: TestClient, ...children: Stanza[]) => {
      const queryid = nextId();
      const reply = await iq(
        c,
        'set',
        roomJid('records'),
        xml('query', { xmlns: MAM, queryid }, ...children),
      );
      const results = c.received.filter(
        (s) => s.is('message') && s.getChild('result', MAM)?.attrs.queryid === queryid,
      );
      for (const r of results) c.received.splice(c.received.indexOf(r), 1);
      return { reply, results, fin: reply.getChild('fin', MAM) };
    };
    const bodies = (rs: Stanza[]) =>
      rs.map((r) => r.getChild('result', MAM).getChild('forwarded').getChild('message').getChildText('body'));
    // Carol is not in the room, but it is public and open: she may read it.
    const all = await query(carol);
    assert.equal(all.reply.attrs.type, 'result', all.reply.toString());
    assert.deepEqual(bodies(all.results), ['a1', 'a2', 'a3', 'b1']);
    const first = all.results[0]!;
    assert.equal(first.attrs.from, roomJid('records'));
    assert.equal(
      first.getChild('result', MAM).attrs.id,
      live.a1,
      'the archive id is the stanza id occupants saw',
    );
    const forwarded = first.getChild('result', MAM).getChild('forwarded');
    assert.equal(forwarded.getChild('message').attrs.from, roomJid('records', 'Alice'));
    assert.ok(forwarded.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp);
    assert.equal(all.fin.attrs.complete, 'true');
    // Paging (RSM) and `with` an occupant.
    const RSM = 'http://jabber.org/protocol/rsm';
    const page1 = await query(carol, xml('set', { xmlns: RSM }, xml('max', {}, '2')));
    assert.deepEqual(bodies(page1.results), ['a1', 'a2']);
    assert.equal(page1.fin.attrs.complete, undefined);
    const last = page1.fin.getChild('set', RSM).getChildText('last');
    const page2 = await query(carol, xml('set', { xmlns: RSM }, xml('max', {}, '2'), xml('after', {}, last)));
    assert.deepEqual(bodies(page2.results), ['a3', 'b1']);
    const form = (fields: Record<string, string>) =>
      xml(
        'x',
        { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, MAM)),
        ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v))),
      );
    assert.deepEqual(bodies((await query(carol, form({ with: roomJid('records', 'Bob') }))).results), ['b1']);
    // A members-only room's archive is for its members and occupants.
    await iq(alice, 'set', roomJid('records'), configForm({ 'muc#roomconfig_membersonly': '1' }));
    assert.equal(errorCondition((await query(carol)).reply), 'forbidden');
    assert.equal((await query(alice)).results.length, 4);
    // A room set not to archive says so and keeps nothing new.
    await iq(alice, 'set', roomJid('records'), configForm({ 'muc#roomconfig_enablearchiving': '0' }));
    await groupchat(alice, 'records', 'off the record');
    await alice.waitFor(isBody('records', 'off the record'), 'reflected');
    assert.equal(errorCondition((await query(alice)).reply), 'service-unavailable');
  });

  it('answers bad requests with clear errors and keeps serving', async () => {
    const alice = await login('alice', 'bad');
    const bob = await login('bob', 'bad');
    const presenceError = async (c: TestClient, to: string, payload?: Stanza) => {
      await c.send(xml('presence', { to }, payload));
      return c.waitFor(
        (s) => s.is('presence') && s.attrs.type === 'error' && s.attrs.from === to,
        `error from ${to}`,
      );
    };
    const messageError = async (c: TestClient, attrs: Record<string, string>, ...children: Stanza[]) => {
      const id = nextId();
      await c.send(xml('message', { ...attrs, id }, ...children));
      return c.waitFor(
        (s) => s.is('message') && s.attrs.id === id && s.attrs.type === 'error',
        `message error ${id}`,
      );
    };
    assert.equal(errorCondition(await presenceError(alice, roomJid('nonick'))), 'jid-malformed');
    assert.equal(
      errorCondition(
        await messageError(alice, { to: roomJid('nowhere'), type: 'groupchat' }, xml('body', {}, 'hi')),
      ),
      'item-not-found',
    );
    await createRoom(alice, 'strict', 'Alice');
    // Garbage history attributes are ignored: the join still works.
    await joined(
      bob,
      'strict',
      'Bob',
      xml('history', { maxstanzas: 'many', seconds: '-5', since: 'yesterday' }),
    );
    const badForms: Array<[Record<string, string>, string]> = [
      [{ 'muc#roomconfig_maxusers': 'lots' }, 'bad-request'],
      [{ 'muc#roomconfig_historylength': '1000' }, 'not-acceptable'],
      [{ 'muc#roomconfig_whois': 'everyone' }, 'not-acceptable'],
      [{ 'muc#roomconfig_persistentroom': 'maybe' }, 'bad-request'],
      [{ 'muc#roomconfig_passwordprotectedroom': '1' }, 'not-acceptable'],
      [{ 'muc#roomconfig_roomname': 'n'.repeat(1025) }, 'not-acceptable'],
    ];
    for (const [fields, condition] of badForms) {
      const reply = await iq(alice, 'set', roomJid('strict'), configForm(fields));
      assert.equal(errorCondition(reply), condition, JSON.stringify(fields));
    }
    const admin = (c: TestClient, ...items: Stanza[]) =>
      iq(c, 'set', roomJid('strict'), xml('query', { xmlns: MUC_ADMIN }, ...items));
    assert.equal(
      errorCondition(await admin(alice, xml('item', { jid: 'bob@localhost', affiliation: 'king' }))),
      'bad-request',
    );
    assert.equal(errorCondition(await admin(alice)), 'bad-request');
    assert.equal(
      errorCondition(await admin(alice, xml('item', { jid: 'not a jid@', affiliation: 'member' }))),
      'jid-malformed',
    );
    assert.equal(
      errorCondition(await admin(alice, xml('item', { nick: 'Nobody', role: 'none' }))),
      'item-not-found',
    );
    // All or nothing: a valid change next to an invalid one does not happen.
    assert.equal(
      errorCondition(
        await admin(
          alice,
          xml('item', { jid: 'carol@localhost', affiliation: 'member' }),
          xml('item', { nick: 'Ghost', role: 'visitor' }),
        ),
      ),
      'item-not-found',
    );
    const members = await iq(
      alice,
      'get',
      roomJid('strict'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { affiliation: 'member' })),
    );
    assert.deepEqual(members.getChild('query').getChildren('item'), []);
    assert.equal(
      errorCondition(await iq(bob, 'get', roomJid('strict'), xml('query', { xmlns: MUC_OWNER }))),
      'forbidden',
    );
    assert.equal(
      errorCondition(await iq(alice, 'set', roomJid('strict'), xml('query', { xmlns: MUC_OWNER }))),
      'bad-request',
    );
    assert.equal(
      errorCondition(await iq(alice, 'get', roomJid('strict'), xml('query', { xmlns: 'jabber:iq:version' }))),
      'service-unavailable',
    );
    assert.equal(
      errorCondition(await messageError(bob, { to: roomJid('strict') }, xml('body', {}, 'not groupchat'))),
      'bad-request',
    );
    const carol = await login('carol', 'bad');
    assert.equal(
      errorCondition(
        await messageError(
          carol,
          { to: roomJid('strict'), type: 'groupchat' },
          xml('body', {}, 'from outside'),
        ),
      ),
      'not-acceptable',
    );
    // Still serving: a message goes round.
    await groupchat(bob, 'strict', 'still here');
    await alice.waitFor(isBody('strict', 'still here'), 'room still works');
  });

  it('temporary rooms vanish with their last occupant; an owner can destroy a room', async () => {
    const alice = await login('alice', 'temp');
    const bob = await login('bob', 'temp');
    await createRoom(alice, 'brief', 'Alice');
    await alice.send(xml('presence', { to: roomJid('brief', 'Alice'), type: 'unavailable' }));
    await alice.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === roomJid('brief', 'Alice'),
      'left',
    );
    const gone = await iq(bob, 'get', roomJid('brief'), xml('query', { xmlns: DISCO_INFO }));
    assert.equal(errorCondition(gone), 'item-not-found');
    await createRoom(alice, 'doomed', 'Alice');
    await joined(bob, 'doomed', 'Bob');
    const destroyed = await iq(
      alice,
      'set',
      roomJid('doomed'),
      xml(
        'query',
        { xmlns: MUC_OWNER },
        xml('destroy', { jid: roomJid('lobby') }, xml('reason', {}, 'moved')),
      ),
    );
    assert.equal(destroyed.attrs.type, 'result');
    const notice = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'unavailable' && s.attrs.from === roomJid('doomed', 'Bob'),
      'destroyed',
    );
    const destroy = notice.getChild('x', MUC_USER).getChild('destroy');
    assert.equal(destroy.attrs.jid, roomJid('lobby'));
    assert.equal(destroy.getChildText('reason'), 'moved');
  });

  it('persistent rooms keep configuration, affiliations, subject and history across a restart', async () => {
    const alice = await login('alice', 'persist');
    const bob = await login('bob', 'persist');
    await createRoom(alice, 'forever', 'Alice', {
      'muc#roomconfig_persistentroom': '1',
      'muc#roomconfig_membersonly': '1',
      'muc#roomconfig_roomname': 'Forever',
    });
    await iq(
      alice,
      'set',
      roomJid('forever'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: 'bob@localhost', affiliation: 'member' })),
    );
    await iq(
      alice,
      'set',
      roomJid('forever'),
      xml('query', { xmlns: MUC_ADMIN }, xml('item', { jid: 'carol@localhost', affiliation: 'outcast' })),
    );
    await alice.send(
      xml('message', { to: roomJid('forever'), type: 'groupchat' }, xml('subject', {}, 'kept')),
    );
    await groupchat(alice, 'forever', 'before the restart');
    await alice.waitFor(isBody('forever', 'before the restart'), 'reflected');
    for (const c of clients.splice(0)) await c.stop();
    // The history snapshot of the clean shutdown is dropped: the room's archive has the messages anyway.
    await ts.server.stop();
    const backend = await LevelBackend.open(join(ts.dir, 'storage'));
    await new MucRoomStore(backend).saveHistory(roomJid('forever'), []);
    await backend.close();
    ts = await ts.restart();
    void bob;
    const bob2 = await login('bob', 'after');
    const self = await enter(bob2, 'forever', 'Bob');
    assert.equal(self.attrs.type, undefined, self.toString());
    assert.equal(item(self).affiliation, 'member');
    const subject = await bob2.waitFor(
      (s) => s.is('message') && s.getChild('subject') !== undefined,
      'subject',
    );
    assert.equal(subject.getChildText('subject'), 'kept');
    const replayed = bob2.received.find(isBody('forever', 'before the restart'));
    assert.ok(replayed, 'history survived (from the archive)');
    assert.equal(replayed.getChild('delay', 'urn:xmpp:delay')?.attrs.from, roomJid('forever'));
    const carol = await login('carol', 'after');
    assert.equal(errorCondition(await enter(carol, 'forever', 'Carol')), 'forbidden');
    const dave = await login('dave', 'after');
    assert.equal(errorCondition(await enter(dave, 'forever', 'Dave')), 'registration-required');
    const info = await iq(dave, 'get', roomJid('forever'), xml('query', { xmlns: DISCO_INFO }));
    assert.equal(info.getChild('query').getChild('identity').attrs.name, 'Forever');
  });
});

describe('multi-user chat turned off', () => {
  it('serves no conference domain when muc.enabled is false', async () => {
    const ts = await startServer({ muc: { enabled: false } });
    try {
      await ts.addUser('alice', 'pw');
      const alice = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'off' });
      try {
        const items = await iq(alice, 'get', 'localhost', xml('query', { xmlns: DISCO_ITEMS }));
        assert.ok(
          !items
            .getChild('query')
            .getChildren('item')
            .some((i: Stanza) => i.attrs.jid === SERVICE),
        );
        await alice.send(xml('presence', { to: roomJid('any', 'Alice') }, xml('x', { xmlns: MUC })));
        const err = await alice.waitFor(
          (s) => s.is('presence') && s.attrs.type === 'error',
          'no such server',
        );
        assert.equal(errorCondition(err), 'remote-server-not-found');
      } finally {
        await alice.stop();
      }
    } finally {
      await ts.stop();
    }
  });
});
