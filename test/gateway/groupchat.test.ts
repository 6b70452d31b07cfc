// Groupchat through the transport (the "groupchat 1.0" subset of XEP-0045):
// a room on msn.localhost is a multi-party MSN switchboard.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import type { MsnSession } from '../../src/msnp/index.ts';
import type { TestClient } from '../helpers/xmpp-client.ts';
import { type MsnWorld, nextEvent, registeredUser, startMsnWorld } from './msn-harness.ts';

const ROOM = 'party@msn.localhost';
const BOB = 'bob%hotmail.com@msn.localhost';
const CAROL = 'carol%hotmail.com@msn.localhost';

describe('MSN transport groupchat', () => {
  let world: MsnWorld;
  let juliet: TestClient;
  let bob: MsnSession;
  let carol: MsnSession;

  const occupant = (nick: string, unavailable = false) => (s: Element) =>
    s.is('presence') && s.attrs.from === `${ROOM}/${nick}` && (s.attrs.type === 'unavailable') === unavailable;

  before(async () => {
    world = await startMsnWorld((sim) => {
      sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
      sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bob' });
      sim.addAccount('carol@hotmail.com', 'carolpw', { nickname: 'Carol' });
      sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
      sim.makeFriends('alice@hotmail.com', 'carol@hotmail.com');
      sim.makeFriends('bob@hotmail.com', 'carol@hotmail.com');
    });
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
    carol = await world.buddy('carol@hotmail.com', 'carolpw');
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
    // Both contacts are online as seen through the transport.
    await juliet.waitFor((s) => s.attrs.from === BOB && !s.attrs.type, 'bob online');
    await juliet.waitFor((s) => s.attrs.from === CAROL && !s.attrs.type, 'carol online');
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('joins a room, invites two MSN contacts and sees them as occupants', async () => {
    await juliet.send(xml('presence', { to: `${ROOM}/juliet` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
    const self = await juliet.waitFor(occupant('juliet'), 'own room presence');
    assert.ok(
      self
        .getChild('x', 'http://jabber.org/protocol/muc#user')
        ?.getChildren('status')
        .some((st: Element) => st.attrs.code === '110'),
    );
    await juliet.send(
      xml('message', { to: ROOM }, xml('x', { xmlns: 'http://jabber.org/protocol/muc#user' }, xml('invite', { to: BOB }))),
    );
    await juliet.waitFor(occupant('Bob'), 'Bob in the room');
    // With a third participant the switchboard is a group conversation on every side.
    const bobGroup = nextEvent(bob, 'conversation', (c) => c.participants.includes('carol@hotmail.com'));
    const carolJoined = nextEvent(carol, 'conversation', (c) => c.participants.includes('alice@hotmail.com'));
    await juliet.send(
      xml('message', { to: ROOM }, xml('x', { xmlns: 'http://jabber.org/protocol/muc#user' }, xml('invite', { to: CAROL }))),
    );
    const carolConv = await carolJoined;
    const bobConv = await bobGroup;
    await juliet.waitFor(occupant('Carol'), 'Carol in the room');

    // Messages fan out: from the room to both contacts, and from a contact to the room.
    const toBob = nextEvent(bob, 'message', (m) => m.conversationId === bobConv.id && m.text === 'hello both');
    const toCarol = nextEvent(carol, 'message', (m) => m.conversationId === carolConv.id && m.text === 'hello both');
    await juliet.send(xml('message', { to: ROOM, type: 'groupchat' }, xml('body', {}, 'hello both')));
    await toBob;
    await toCarol;
    const echoed = await juliet.waitFor((s) => s.attrs.from === `${ROOM}/juliet` && s.getChildText('body') === 'hello both', 'reflection');
    assert.equal(echoed.attrs.type, 'groupchat');

    const fromCarol = juliet.waitFor((s) => s.attrs.from === `${ROOM}/Carol` && s.getChildText('body') === 'hi all', 'Carol says hi');
    const bobSees = nextEvent(bob, 'message', (m) => m.from === 'carol@hotmail.com' && m.text === 'hi all');
    await carol.sendToConversation(carolConv.id, 'hi all');
    assert.equal((await fromCarol).attrs.type, 'groupchat');
    await bobSees;

    // A contact leaving is an occupant leaving.
    await bob.leaveConversation(bobConv.id);
    await juliet.waitFor(occupant('Bob', true), 'Bob left');
  });

  it('turns an MSN-side group conversation into a room invitation', async () => {
    const id = await bob.startConversation(['alice@hotmail.com', 'carol@hotmail.com']);
    const invite = await juliet.waitFor(
      (s) => s.is('message') && !!s.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('invite'),
      'room invitation',
    );
    const room = invite.attrs.from;
    assert.match(room, /@msn\.localhost$/);
    assert.equal(invite.getChild('x', 'http://jabber.org/protocol/muc#user').getChild('invite').attrs.from, BOB);
    await bob.sendToConversation(id, 'early words');
    await juliet.send(xml('presence', { to: `${room}/jules` }));
    await juliet.waitFor((s) => s.attrs.from === `${room}/jules`, 'joined');
    await juliet.waitFor((s) => s.attrs.from === `${room}/Bob` && s.is('presence'), 'Bob is there');
    const early = await juliet.waitFor((s) => s.getChildText('body') === 'early words', 'message sent before joining');
    assert.equal(early.attrs.from, `${room}/Bob`);
    const heard = nextEvent(carol, 'message', (m) => m.text === 'thanks for the invite');
    await juliet.send(xml('message', { to: room, type: 'groupchat' }, xml('body', {}, 'thanks for the invite')));
    await heard;
  });
});
