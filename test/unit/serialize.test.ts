// xmlString() must write exactly what ltx's toString() writes: every
// delivered stanza and every archived message goes through it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Element, el, parse } from '../../src/xml/element.ts';
import { Fanout } from '../../src/xml/fanout.ts';
import { xmlString } from '../../src/xml/serialize.ts';

test('xmlString writes what ltx writes, escaping included', () => {
  const samples = [
    `<message to='u1@localhost' type='chat' xmlns='jabber:client'><body>plain</body></message>`,
    `<message to="a&amp;b@x" id="q&quot;'&lt;&gt;"><body>1 &lt; 2 &amp;&amp; 3 &gt; 2 "quoted" 'single' 😀</body><x xmlns='jabber:x:oob'/></message>`,
    `<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='b@x' name='B'><group>G&amp;H</group></item><item jid='c@x'/></query></iq>`,
    `<presence><status>  spaced\ttext\nlines  </status><priority>5</priority></presence>`,
    `<a:b xmlns:a='urn:x'><a:c a:d='e'>t</a:c></a:b>`,
  ];
  for (const xml of samples) {
    const e = parse(xml);
    assert.equal(xmlString(e), e.toString(), xml);
  }
  // Built elements: numbers as attribute values, mixed text and children, an empty text node.
  const built = el('iq', { type: 'set', id: 7 }, el('query', { xmlns: 'urn:q', max: 50 }, 'a<b', el('i'), ''), 'tail&');
  assert.equal(xmlString(built), built.toString());
  const nullAttr = new Element('x', { a: '1' });
  (nullAttr.attrs as Record<string, unknown>).b = null;
  assert.equal(xmlString(nullAttr), '<x a="1"/>');
});

test('xmlString asks subclasses with their own serialisation (fan-out copies) for it', () => {
  const room = parse(`<message type='groupchat' from='r@muc/n'><body>hi &amp; bye</body></message>`);
  const copy = new Fanout(room).to('u@x/r');
  assert.equal(xmlString(copy), copy.toString());
  assert.match(xmlString(copy), /to="u@x\/r"/);
  // Inside another element too.
  const wrapper = el('forwarded', { xmlns: 'urn:xmpp:forward:0' }, copy);
  assert.equal(xmlString(wrapper), wrapper.toString());
});
