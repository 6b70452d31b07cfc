import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildTextMessage,
  buildTypingMessage,
  classifyMessage,
  DEFAULT_FORMAT,
  MAX_MSG_PAYLOAD,
  parseFormatHeader,
  splitText,
} from '../../src/msnp/messages.ts';
import { parseMime } from '../../src/msnp/mime.ts';
import { buildPsmPayload, parsePsmPayload } from '../../src/msnp/psm.ts';

test('text message round-trips with its X-MMS-IM-Format', () => {
  const format = { ...DEFAULT_FORMAT, font: 'Comic Sans MS', effects: 'BI', color: 'ff0000' };
  const payload = buildTextMessage('hello there', format);
  const text = payload.toString('utf8');
  assert.match(text, /Content-Type: text\/plain; charset=UTF-8\r\n/);
  // Red is written BBGGRR with leading zeros dropped: ff.
  assert.match(text, /X-MMS-IM-Format: FN=Comic%20Sans%20MS; EF=BI; CO=ff; CS=0; PF=22\r\n\r\nhello there$/);
  const parsed = classifyMessage(parseMime(payload));
  assert.equal(parsed.kind, 'text');
  if (parsed.kind !== 'text') return;
  assert.equal(parsed.text, 'hello there');
  assert.equal(parsed.format.font, 'Comic Sans MS');
  assert.equal(parsed.format.color, 'ff0000');
});

test('X-MMS-IM-Format as the documents write it', () => {
  const f = parseFormatHeader('FN=Arial; EF=I; CO=0; CS=0; PF=22');
  assert.equal(f.font, 'Arial');
  assert.equal(f.effects, 'I');
  assert.equal(f.color, '000000');
});

test('typing notification carries TypingUser', () => {
  const parsed = classifyMessage(parseMime(buildTypingMessage('me@hotmail.com')));
  assert.deepEqual(parsed, { kind: 'typing', user: 'me@hotmail.com' });
});

test('long texts split under 1664 payload bytes without breaking UTF-8', () => {
  const text = `${'a'.repeat(1000)}${'\u00e9'.repeat(700)}${'\u{1F600}'.repeat(500)} end`;
  const parts = splitText(text);
  assert.ok(parts.length > 1);
  assert.equal(parts.join(''), text);
  for (const part of parts) {
    assert.ok(
      buildTextMessage(part).length <= MAX_MSG_PAYLOAD,
      `part of ${buildTextMessage(part).length} bytes`,
    );
    assert.ok(!part.includes('\uFFFD'));
    // No lone surrogate at either end.
    assert.ok(!/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(part));
  }
  assert.deepEqual(splitText('short'), ['short']);
});

test('PSM XML escapes and unescapes', () => {
  const xml = buildPsmPayload('a <b> & "c"');
  assert.equal(xml, '<Data><PSM>a &lt;b&gt; &amp; &quot;c&quot;</PSM><CurrentMedia></CurrentMedia></Data>');
  assert.deepEqual(parsePsmPayload(xml), { psm: 'a <b> & "c"', currentMedia: '' });
});
