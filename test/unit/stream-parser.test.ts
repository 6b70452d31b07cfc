import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XmlStreamParser } from '../../src/xml/stream-parser.ts';

function run(chunks: Array<string | Buffer>, limits = { maxStanzaSize: 1000, maxDepth: 5 }) {
  const out: string[] = [];
  const p = new XmlStreamParser(limits, {
    open: (name) => out.push(`open:${name}`),
    stanza: (e) => out.push(e.toString()),
    close: () => out.push('close'),
    error: (c) => out.push(`error:${c}`),
  });
  for (const c of chunks) p.write(c);
  return out;
}

const HEAD = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

describe('XML stream parser', () => {
  it('emits the stream header, stanzas and the close', () => {
    assert.deepEqual(run([HEAD, '<message><body>hi</body></message>', ' </stream:stream>']), [
      'open:stream:stream',
      '<message><body>hi</body></message>',
      'close',
    ]);
  });

  it('reassembles UTF-8 characters split across chunks', () => {
    const bytes = Buffer.from('<m><b>日本€</b></m>');
    const out = run([HEAD, bytes.subarray(0, 8), bytes.subarray(8, 9), bytes.subarray(9)]);
    assert.equal(out[1], '<m><b>日本€</b></m>');
  });

  it('handles a stanza split at every byte', () => {
    const s = "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>";
    const out = run([HEAD, ...s.split('')]);
    assert.equal(out[1], '<iq type="get" id="1"><query xmlns="jabber:iq:roster"/></iq>');
  });

  it('refuses a DOCTYPE even when "<!" is split across chunks', () => {
    assert.deepEqual(run([HEAD, '<message><', '!ENTITY x "y">'])[1], 'error:restricted-xml');
  });

  it('refuses comments and processing instructions inside the stream', () => {
    assert.equal(run([HEAD, '<!-- hi -->'])[1], 'error:restricted-xml');
    assert.equal(run([HEAD, '<?pi x?>'])[1], 'error:restricted-xml');
  });

  it('refuses undefined entities without throwing', () => {
    assert.equal(run([HEAD, '<m>&foo;</m>'])[1], 'error:restricted-xml');
  });

  it('refuses invalid UTF-8 and control characters', () => {
    assert.equal(run([HEAD, Buffer.from([0xc3, 0x28])])[1], 'error:not-well-formed');
    assert.equal(run([HEAD, '<m>\u0001</m>'])[1], 'error:not-well-formed');
  });

  it('refuses mismatched end tags and text between stanzas', () => {
    assert.equal(run([HEAD, '<a><b></a>'])[1], 'error:not-well-formed');
    assert.equal(run([HEAD, 'junk<a/>'])[1], 'error:not-well-formed');
  });

  it('enforces the stanza size and depth limits', () => {
    assert.equal(run([HEAD, `<m>${'x'.repeat(2000)}</m>`])[1], 'error:policy-violation');
    assert.equal(run([HEAD, '<a><b><c><d><e><f><g/></f></e></d></c></b></a>'])[1], 'error:policy-violation');
    // Many small stanzas in one chunk are fine: the limit is per stanza.
    const many = '<m>0123456789</m>'.repeat(200);
    assert.equal(run([HEAD, many]).length, 201);
  });

  it('starts afresh after reset (stream restart)', () => {
    const out: string[] = [];
    const p = new XmlStreamParser({ maxStanzaSize: 1000, maxDepth: 5 }, {
      open: (n) => out.push(`open:${n}`),
      stanza: (e) => out.push(e.toString()),
      close: () => out.push('close'),
      error: (c) => out.push(`error:${c}`),
    });
    p.write(`${HEAD}<a/>`);
    p.reset();
    p.write(`${HEAD}<b/>`);
    assert.deepEqual(out, ['open:stream:stream', '<a/>', 'open:stream:stream', '<b/>']);
  });
});
