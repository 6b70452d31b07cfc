// The pieces the robustness fixes live in, tested alone: the stream
// parser's name and namespace-prefix checks, JID domain validation, and the
// stanza shape rules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Jid } from '../../src/jid/jid.ts';
import { checkStanzaShape } from '../../src/router/stanza-check.ts';
import { type Element, parse } from '../../src/xml/element.ts';
import { XmlStreamParser } from '../../src/xml/stream-parser.ts';

const HEAD = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

function feed(...chunks: string[]): { stanzas: Element[]; error: string | null } {
  const out = { stanzas: [] as Element[], error: null as string | null };
  const p = new XmlStreamParser(
    { maxStanzaSize: 65536, maxDepth: 16 },
    {
      open: () => {},
      stanza: (e) => out.stanzas.push(e),
      close: () => {},
      error: (c, t) => {
        out.error ??= `${c}: ${t}`;
      },
    },
  );
  for (const c of chunks) p.write(c);
  return out;
}

describe('stream parser: XML names and namespace prefixes', () => {
  it('refuses element and attribute names that are not XML names', () => {
    for (const bad of ["<message a'b='1'/>", '<message><bo"dy/></message>', "<message 1a='x'/>", '<1message/>', "<message a<b='1'/>", '<message><a&b/></message>']) {
      assert.match(feed(HEAD, bad).error ?? '', /^not-well-formed: invalid/, bad);
    }
  });

  it('refuses unbound prefixes, xmlns-prefixed elements and empty prefix bindings', () => {
    for (const bad of [
      '<message><foo:bar/></message>',
      "<message><x foo:a='1'/></message>",
      "<message><x xmlns:p=''><p:y/></x></message>",
      "<message><xmlns:x xmlns:xmlns='urn:x'/></message>",
      "<message><p:q:r xmlns:p='urn:p'/></message>",
      '<message><:x/></message>',
    ]) {
      assert.match(feed(HEAD, bad).error ?? '', /^not-well-formed/, bad);
    }
  });

  it('accepts bound prefixes, xml: attributes and non-ASCII names, in any chunking', () => {
    const ok = "<message xml:lang='en'><p:x xmlns:p='urn:p' p:a='1'><p:y/></p:x><é\u00B7ü/><stream:z/></message>";
    for (const chunks of [[HEAD, ok], [HEAD, ...ok.split('')]]) {
      const r = feed(...chunks);
      assert.equal(r.error, null);
      assert.equal(r.stanzas.length, 1);
    }
  });

  it('declares a prefix bound on the stream header on the element that uses it', () => {
    const { stanzas, error } = feed(HEAD, '<message><stream:x/><body>b</body></message>');
    assert.equal(error, null);
    const x = stanzas[0]!.getChild('x', 'http://etherx.jabber.org/streams');
    assert.ok(x, 'the child keeps its namespace when detached from the stream');
    // Serialised alone, the stanza parses again with the same meaning.
    const again = parse(stanzas[0]!.toString());
    assert.equal(again.getChild('x', 'http://etherx.jabber.org/streams')?.name, 'stream:x');
    // Top-level stream elements get it too (harmless there).
    assert.equal(feed(HEAD, '<stream:error/>').stanzas[0]?.attrs['xmlns:stream'], 'http://etherx.jabber.org/streams');
  });

  it('still refuses illegal characters that arrive as character references', () => {
    for (const bad of ['&#xFFFE;', '&#xD800;', '&#0;', '&#x110000;', '&#x1;']) {
      assert.match(feed(HEAD, `<message><body>${bad}</body></message>`).error ?? '', /^not-well-formed/, bad);
    }
  });
});

describe('JID domainparts', () => {
  it('takes only real IPv6 addresses as literals', () => {
    assert.equal(Jid.parse('a@[::1]/r').domain, '[::1]');
    assert.equal(Jid.parse('a@[2001:DB8::1]').domain, '[2001:db8::1]');
    for (const bad of ['a@[junk]', '[]', 'a@[::1', 'a@[1.2.3.4]', 'a@[::g]']) {
      assert.equal(Jid.tryParse(bad), null, bad);
    }
  });

  it('refuses empty labels but takes one final dot', () => {
    for (const bad of ['a@..', 'a@a..b', 'a@.x', '.', 'a@x..']) assert.equal(Jid.tryParse(bad), null, bad);
    assert.equal(Jid.parse('a@example.com.').domain, 'example.com');
  });
});

describe('stanza shape rules', () => {
  const shape = (xml: string) => checkStanzaShape(parse(xml))?.condition ?? 'ok';
  it('decides bad-request or ok', () => {
    const table: Array<[string, string]> = [
      ["<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", 'ok'],
      ["<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>", 'bad-request'],
      ["<iq id='1'><ping xmlns='urn:xmpp:ping'/></iq>", 'bad-request'],
      ["<iq id='1' type='Get'><ping xmlns='urn:xmpp:ping'/></iq>", 'bad-request'],
      ["<iq id='1' type='set'/>", 'bad-request'],
      ["<iq id='1' type='set'>text only</iq>", 'bad-request'],
      ["<iq id='1' type='set'><a xmlns='x'/><b xmlns='x'/></iq>", 'bad-request'],
      ["<iq id='1' type='result'/>", 'ok'],
      ["<iq id='1' type='result'><a xmlns='x'/><b xmlns='x'/></iq>", 'bad-request'],
      ["<iq type='error'><error type='cancel'/></iq>", 'ok'],
      ['<message/>', 'ok'],
      ["<message type='normal'/>", 'ok'],
      ["<message type='chat '/>", 'bad-request'],
      ["<message type=''/>", 'bad-request'],
      ['<presence/>', 'ok'],
      ["<presence type='unsubscribed'/>", 'ok'],
      ["<presence type='available'/>", 'bad-request'],
    ];
    for (const [xml, expected] of table) assert.equal(shape(xml), expected, xml);
  });
});
