// Junk to the MSN transport (msn.localhost), its contact JIDs and its
// rooms, from a raw logged-in client: before and after registering. Each
// gets a proper stanza error, nothing throws, and afterwards the transport
// still carries a message to an MSN buddy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MsnSession } from '../../src/msnp/index.ts';
import { type MsnWorld, nextEvent, startMsnWorld } from '../gateway/msn-harness.ts';
import { assertStillServing, attr, nextId, Peer, witnesses } from './peer.ts';

const MSN = 'msn.localhost';
const BOB = 'bob%hotmail.com@msn.localhost';
const ROOM = 'party@msn.localhost';

describe('robustness: junk to the MSN transport', () => {
  let world: MsnWorld;
  let juliet: Peer;
  let bob: MsnSession;
  let w: { a: Peer; b: Peer };

  const reg = (body: string) => `<iq type='set' id='{id}' to='${MSN}'><query xmlns='jabber:iq:register'>${body}</query></iq>`;
  const prompt = (body: string) => `<iq type='set' id='{id}' to='${MSN}'><query xmlns='jabber:iq:gateway'>${body}</query></iq>`;
  const vcard = (to: string) => `<iq type='get' id='{id}' to='${to}'><vCard xmlns='vcard-temp'/></iq>`;
  const chat = (to: string, type = 'chat', extra = '') =>
    `<message id='{id}' to='${to}' type='${type}'><body>hi</body>${extra}</message>`;

  before(async () => {
    world = await startMsnWorld((sim) => {
      sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
      sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bob' });
      sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
    });
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
    await world.ts.addUser('juliet', 'pw');
    juliet = await Peer.login(world.ts, 'juliet', 'desk');
    w = await witnesses(world.ts);
  });
  after(async () => {
    for (const p of [juliet, w?.a, w?.b]) p?.close();
    await world?.stop();
  });

  it('answers junk before registration: bad addresses, bad forms, gateway prompts, unregistered use', async () => {
    const cases: Array<[string, string]> = [
      [reg(''), 'not-acceptable'],
      [reg('<username>alice@hotmail.com</username>'), 'not-acceptable'],
      [reg('<username>not-an-address</username><password>x</password>'), 'not-acceptable'],
      [reg('<username>a@b</username><password>x</password>'), 'not-acceptable'],
      [reg(`<username>${'a'.repeat(400)}@hotmail.com</username><password>x</password>`), 'not-acceptable'],
      [reg('<username>&#x1F600;@&#x1F600;</username><password>x</password>'), 'not-acceptable'],
      [reg("<x xmlns='jabber:x:data' type='submit'><field var='username'/></x>"), 'not-acceptable'],
      [reg("<x xmlns='jabber:x:data' type='submit'><field><value>alice@hotmail.com</value></field></x>"), 'not-acceptable'],
      [reg('<username>alice@hotmail.com</username><password>wrong</password>'), 'not-authorized'],
      [reg('<username>nobody@hotmail.com</username><password>x</password>'), 'not-authorized'],
      [reg('<remove/>'), 'registration-required'],
      [prompt(''), 'not-acceptable'],
      [prompt('<prompt/>'), 'not-acceptable'],
      [prompt('<prompt>junk</prompt>'), 'not-acceptable'],
      [prompt('<prompt>a@@b.com</prompt>'), 'not-acceptable'],
      [prompt(`<prompt>${'x'.repeat(400)}@hotmail.com</prompt>`), 'not-acceptable'],
      [`<iq type='get' id='{id}' to='${MSN}'><query xmlns='http://jabber.org/protocol/disco#info' node='junk'/></iq>`, 'item-not-found'],
      [`<iq type='get' id='{id}' to='${MSN}'><unknown xmlns='urn:nothing'/></iq>`, 'service-unavailable'],
      [`<iq type='set' id='{id}' to='${MSN}'><vCard xmlns='vcard-temp'/></iq>`, 'service-unavailable'],
      [vcard(BOB), 'registration-required'],
      [vcard('junk@msn.localhost'), 'item-not-found'],
      [vcard('%@msn.localhost'), 'item-not-found'],
      [vcard(`${BOB}/res`), 'service-unavailable'],
      [chat(BOB), 'registration-required'],
      [chat('a%b@msn.localhost'), 'item-not-found'],
      [chat(MSN), 'service-unavailable'],
      [chat(ROOM, 'groupchat'), 'registration-required'],
      [chat(`${ROOM}/nick`), 'feature-not-implemented'],
      [`<presence id='{id}' to='${ROOM}/nick'/>`, 'registration-required'],
      [`<presence id='{id}' to='${ROOM}'/>`, 'jid-malformed'],
      [`<presence id='{id}' to='${MSN}' type='bogus'/>`, 'bad-request'],
    ];
    for (const [stanza, condition] of cases) assert.equal(await juliet.expectError(stanza, 10000), condition, stanza);
    // Well-formed requests still work, with junk around them.
    const ok = await juliet.request(prompt('<prompt>  Friend@Hotmail.com </prompt><junk/>'));
    assert.equal(ok.getChild('query')?.getChildText('jid'), 'friend%hotmail.com@msn.localhost');
    const form = await juliet.request(`<iq type='get' id='{id}' to='${MSN}'><query xmlns='jabber:iq:register'><x/></query></iq>`);
    assert.equal(form.attrs.type, 'result');
    assert.equal(form.getChild('query')?.getChild('registered'), undefined, 'nothing was registered');
    juliet.noStreamError();
    await assertStillServing(world.ts, w);
  });

  it('answers junk to contacts and rooms once logged in to MSN, and keeps the transport working', async () => {
    juliet.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>");
    juliet.send('<presence/>');
    const r = await juliet.request(reg('<username>alice@hotmail.com</username><password>alicepw</password>'), 10000);
    assert.equal(r.attrs.type, 'result', r.toString());
    await juliet.waitFor((s) => s.name === 'presence' && s.attrs.from === MSN && !s.attrs.type, 'gateway online', 10000);

    const cases: Array<[string, string]> = [
      [vcard('nobody%hotmail.com@msn.localhost'), 'item-not-found'],
      [vcard('junk@msn.localhost'), 'item-not-found'],
      [chat(ROOM, 'groupchat'), 'not-acceptable'],
      [chat('other@msn.localhost'), 'not-acceptable'],
      [chat(`${ROOM}/someone`), 'feature-not-implemented'],
      [`<presence id='{id}' to='${ROOM}'/>`, 'jid-malformed'],
      [`<presence id='{id}' to='${ROOM}' type='bogus'/>`, 'bad-request'],
      [`<presence id='{id}' to='${attr('party@msn.localhost/')}'/>`, 'jid-malformed'],
      [reg('<username>junk</username><password>x</password>'), 'not-acceptable'],
    ];
    for (const [stanza, condition] of cases) assert.equal(await juliet.expectError(stanza, 10000), condition, stanza);

    // Presence other than available to room/nick does not join the room.
    for (const type of ['subscribe', 'probe', 'subscribed']) juliet.send(`<presence to='${ROOM}/nick' type='${type}'/>`);
    assert.equal(await juliet.expectError(chat(ROOM, 'groupchat')), 'not-acceptable');

    // Joined: junk invitations and messages before anyone is invited.
    juliet.send(`<presence to='${ROOM}/juliet'/>`);
    await juliet.waitFor((s) => s.name === 'presence' && s.attrs.from === `${ROOM}/juliet` && !s.attrs.type, 'joined');
    const invite = (to: string) =>
      chat(ROOM, 'normal', `<x xmlns='http://jabber.org/protocol/muc#user'><invite to='${attr(to)}'/></x>`);
    for (const to of ['@@', 'juliet@localhost', MSN, 'junk@msn.localhost', '']) {
      assert.equal(await juliet.expectError(invite(to), 10000), 'jid-malformed', to);
    }
    assert.equal(await juliet.expectError(chat(ROOM, 'groupchat')), 'not-acceptable');
    juliet.send(`<presence to='${ROOM}/juliet' type='unavailable'/>`);
    await juliet.waitFor((s) => s.attrs.from === `${ROOM}/juliet` && s.attrs.type === 'unavailable', 'left');

    // The transport still carries messages both ways.
    const text = `still-${nextId()}`;
    const got = nextEvent(bob, 'message', (m) => m.text === text);
    juliet.send(`<message to='${BOB}' type='chat'><body>${text}</body></message>`);
    assert.equal((await got).from, 'alice@hotmail.com');
    juliet.noStreamError();
    await assertStillServing(world.ts, w);
  });
});
