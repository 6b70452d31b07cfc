// Which stanzas an inactive client (XEP-0352) gets at once, and which wait.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientState, unimportant } from '../../src/c2s/client-state.ts';
import { parse } from '../../src/xml/element.ts';

const cases: Array<[string, 'presence' | 'chatstate' | 'other' | null]> = [
  ['<presence from="a@x/r"/>', 'presence'],
  ['<presence from="a@x/r" type="unavailable"/>', 'presence'],
  ['<presence from="a@x" type="subscribe"/>', null],
  ['<iq type="get" id="1"/>', null],
  ['<message type="chat"><body>hi</body></message>', null],
  ['<message type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/><thread>t</thread></message>', 'chatstate'],
  ['<message type="chat"><active xmlns="http://jabber.org/protocol/chatstates"/><body>hi</body></message>', null],
  ['<message><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:avatar:metadata"/></event></message>', 'other'],
  ['<message><received xmlns="urn:xmpp:receipts" id="x"/></message>', 'other'],
  ['<message type="chat"><encrypted xmlns="eu.siacs.conversations.axolotl"/></message>', null],
  ['<message type="error"><error/></message>', null],
  [
    '<message><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message type="chat"><body>hi</body></message></forwarded></received></message>',
    null,
  ],
  [
    '<message><sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message type="chat"><gone xmlns="http://jabber.org/protocol/chatstates"/></message></forwarded></sent></message>',
    'other',
  ],
  [
    '<message><result xmlns="urn:xmpp:mam:2" id="1"><forwarded xmlns="urn:xmpp:forward:0"><message type="chat"><body>old</body></message></forwarded></result></message>',
    null,
  ],
];

describe('client state indication: what is important', () => {
  for (const [xml, expected] of cases) {
    it(`${xml.slice(0, 80)} → ${expected ?? 'important'}`, () => {
      assert.equal(unimportant(parse(xml)), expected);
    });
  }

  it('keeps the latest presence per sender, flushes in arrival order, and flushes when full', () => {
    const out: string[] = [];
    const csi = new ClientState(3, (s) => out.push(s.toString()));
    csi.setInactive();
    csi.send(parse('<presence from="a@x/1"><show>away</show></presence>'));
    csi.send(parse('<presence from="b@x/1"/>'));
    csi.send(parse('<presence from="a@x/1"><show>xa</show></presence>'));
    assert.deepEqual(out, []);
    assert.equal(csi.heldCount, 2);
    csi.send(parse('<message><received xmlns="urn:xmpp:receipts" id="1"/></message>'));
    // Full (3): everything goes, b's presence first, then a's newest, then the receipt.
    assert.equal(out.length, 3);
    assert.match(out[0]!, /b@x/);
    assert.match(out[1]!, /xa/);
    csi.setActive();
    csi.send(parse('<presence from="c@x/1"/>'));
    assert.equal(out.length, 4, 'active: straight through');
  });
});
