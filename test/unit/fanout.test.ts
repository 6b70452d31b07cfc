// Copies of one stanza for many recipients serialise exactly as ordinary
// elements would, and a module changing one copy changes only that copy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clone, el, parse } from '../../src/xml/element.ts';
import { Fanout } from '../../src/xml/fanout.ts';

const original = () =>
  el(
    'message',
    { type: 'groupchat', id: 'a"b<c', from: 'room@conference.localhost/Al & Bo' },
    el('body', null, 'x < y & "z" > w'),
    el('private', { xmlns: 'urn:xmpp:carbons:2' }),
    'text between',
    el('occupant-id', { xmlns: 'urn:xmpp:occupant-id:0', id: 'abc' }),
  );

function plainCopy(e: ReturnType<typeof original>, to: string): string {
  const c = clone(e);
  c.attrs.to = to;
  return c.toString();
}

describe('fan-out copies', () => {
  it('serialise like an ordinary copy, escaping attributes and text', () => {
    const m = original();
    const f = new Fanout(m);
    for (const to of ['alice@localhost/r1', "o'brien@example.org/x<y"]) {
      const copy = f.to(to);
      assert.equal(copy.toString(), plainCopy(m, to));
      assert.equal(parse(copy.toString()).attrs.to, to);
    }
    assert.equal(m.attrs.to, undefined, 'the original is not addressed');
  });

  it('a change to one copy stays in that copy and is serialised', () => {
    const m = original();
    const f = new Fanout(m);
    const a = f.to('a@localhost/r');
    const b = f.to('b@localhost/r');
    a.remove('private', 'urn:xmpp:carbons:2');
    a.cnode(el('extra'));
    b.attrs.type = 'chat';
    assert.equal(parse(a.toString()).getChild('private', 'urn:xmpp:carbons:2'), undefined);
    assert.ok(parse(a.toString()).getChild('extra'));
    assert.equal(parse(b.toString()).attrs.type, 'chat');
    assert.ok(parse(b.toString()).getChild('private', 'urn:xmpp:carbons:2'));
    const c = f.to('c@localhost/r');
    assert.equal(c.toString(), plainCopy(m, 'c@localhost/r'));
  });

  it('an element without children still serialises', () => {
    const f = new Fanout(el('presence', { type: 'unavailable' }));
    assert.deepEqual(parse(f.to('a@b/c').toString()).attrs, { type: 'unavailable', to: 'a@b/c' });
  });
});
