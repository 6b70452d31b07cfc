import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FrameDecoder,
  FramingError,
  clientPayloadRule,
  encodeCommand,
  serverPayloadRule,
} from './framing.ts';

describe('FrameDecoder', () => {
  it('decodes several commands from one chunk', () => {
    const d = new FrameDecoder(clientPayloadRule);
    const frames = d.push(Buffer.from('PNG\r\nCHG 5 NLN 0\r\nUUX 6 13\r\n<Data></Da>\r\nSYN 7 0 0\r\n'));
    assert.deepEqual(
      frames.map((f) => f.line),
      ['PNG', 'CHG 5 NLN 0', 'UUX 6 13', 'SYN 7 0 0'],
    );
    assert.equal(frames[2]!.payload!.toString(), '<Data></Da>\r\n');
  });

  it('reassembles a command split byte by byte', () => {
    const d = new FrameDecoder(clientPayloadRule);
    const payload = 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhéllo ☃';
    const bytes = encodeCommand(`MSG 9 A ${Buffer.byteLength(payload)}`, payload);
    const frames = [];
    for (const b of bytes) frames.push(...d.push(Buffer.from([b])));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.name, 'MSG');
    assert.deepEqual(frames[0]!.args, ['9', 'A', String(Buffer.byteLength(payload))]);
    assert.equal(frames[0]!.payload!.toString('utf8'), payload);
  });

  it('counts payload lengths in bytes, not characters', () => {
    const d = new FrameDecoder(serverPayloadRule);
    const text = '<Data><PSM>ünïcødé ✓</PSM><CurrentMedia></CurrentMedia></Data>';
    const frames = d.push(encodeCommand(`UBX bob@example.com ${Buffer.byteLength(text)}`, text));
    assert.ok(Buffer.byteLength(text) > text.length);
    assert.equal(frames[0]!.payload!.toString('utf8'), text);
  });

  it('passes binary payloads through unchanged and keeps what follows', () => {
    const d = new FrameDecoder(clientPayloadRule);
    const binary = Buffer.from([0, 1, 2, 0x0d, 0x0a, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a, 0x80]);
    const bytes = Buffer.concat([encodeCommand(`MSG 1 D ${binary.length}`, binary), Buffer.from('PNG\r\n')]);
    const first = d.push(bytes.subarray(0, 10));
    const rest = d.push(bytes.subarray(10));
    const frames = [...first, ...rest];
    assert.equal(frames.length, 2);
    assert.ok(frames[0]!.payload!.equals(binary));
    assert.equal(frames[1]!.line, 'PNG');
  });

  it('rejects a non-numeric payload length', () => {
    const d = new FrameDecoder(clientPayloadRule);
    assert.throws(() => d.push(Buffer.from('MSG 1 A abc\r\n')), FramingError);
  });
});
