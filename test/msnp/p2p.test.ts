import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildAckHeader,
  decodeP2PHeader,
  decodeP2PPacket,
  encodeP2PHeader,
  encodeP2PPacket,
  P2P_FLAGS,
} from '../../src/msnp/p2p.ts';
import { buildSlp, EUF_GUID_DISPLAY_PICTURE, parseSlp, SLP_SESSION_REQ } from '../../src/msnp/slp.ts';

// Binary header of the INVITE in the display-picture document's example.
const DOC_HEADER = Buffer.from(
  '00000000 58A91801 00000000 00000000 91020000 00000000 91020000 00000000 AB381E00 00000000 00000000 00000000'.replace(
    / /g,
    '',
  ),
  'hex',
);

test('decodes the documented INVITE header', () => {
  assert.equal(DOC_HEADER.length, 48);
  const h = decodeP2PHeader(DOC_HEADER);
  assert.deepEqual(h, {
    sessionId: 0,
    identifier: 0x0118a958,
    offset: 0,
    totalSize: 0x291,
    length: 0x291,
    flags: 0,
    ackIdentifier: 0x001e38ab,
    ackUniqueId: 0,
    ackDataSize: 0,
  });
  assert.deepEqual(encodeP2PHeader(h), DOC_HEADER);
});

test('packet = header + data + big-endian footer', () => {
  const data = Buffer.from('abc');
  const packet = encodeP2PPacket({
    header: { ...decodeP2PHeader(DOC_HEADER), sessionId: 7, totalSize: 3, offset: 0, flags: P2P_FLAGS.DATA },
    data,
    footer: 1,
  });
  assert.equal(packet.length, 48 + 3 + 4);
  assert.deepEqual(packet.subarray(51), Buffer.from([0, 0, 0, 1]));
  const back = decodeP2PPacket(packet);
  assert.equal(back.header.length, 3);
  assert.equal(back.header.sessionId, 7);
  assert.equal(back.footer, 1);
  assert.deepEqual(back.data, data);
});

test('ack header echoes identifier, ack id and total size', () => {
  const received = { ...decodeP2PHeader(DOC_HEADER) };
  const ack = buildAckHeader(received, 99);
  assert.equal(ack.flags, P2P_FLAGS.ACK);
  assert.equal(ack.identifier, 99);
  assert.equal(ack.ackIdentifier, received.identifier);
  assert.equal(ack.ackUniqueId, received.ackIdentifier);
  assert.equal(ack.ackDataSize, received.totalSize);
  assert.equal(ack.totalSize, received.totalSize);
  assert.equal(ack.length, 0);
});

test('MSNSLP INVITE: Content-Length counts the body including its NUL', () => {
  const slp = buildSlp({
    startLine: 'INVITE MSNMSGR:bob@hotmail.com MSNSLP/1.0',
    to: 'bob@hotmail.com',
    from: 'alice@hotmail.com',
    branch: '{11111111-2222-3333-4444-555555555555}',
    cseq: 0,
    callId: '{AAAAAAAA-2222-3333-4444-555555555555}',
    contentType: SLP_SESSION_REQ,
    fields: [
      ['EUF-GUID', EUF_GUID_DISPLAY_PICTURE],
      ['SessionID', 1234],
      ['AppID', 1],
      ['Context', 'PG1zbm9iai8+AA=='],
    ],
  });
  const text = slp.toString('utf8');
  assert.ok(text.endsWith('\r\n\r\n\0'));
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  const declared = Number(/Content-Length: (\d+)/.exec(text)![1]);
  assert.equal(Buffer.byteLength(body), declared);
  const parsed = parseSlp(slp)!;
  assert.equal(parsed.method, 'INVITE');
  assert.equal(parsed.target, 'MSNMSGR:bob@hotmail.com');
  assert.equal(parsed.headers.get('call-id'), '{AAAAAAAA-2222-3333-4444-555555555555}');
  assert.equal(parsed.body.get('euf-guid'), EUF_GUID_DISPLAY_PICTURE);
  assert.equal(parsed.body.get('sessionid'), '1234');
});

test('MSNSLP responses parse their status', () => {
  const ok = buildSlp({
    startLine: 'MSNSLP/1.0 200 OK',
    to: 'a@b.c',
    from: 'd@e.f',
    branch: '{B}',
    cseq: 1,
    callId: '{C}',
    contentType: SLP_SESSION_REQ,
    fields: [['SessionID', 5]],
  });
  const parsed = parseSlp(ok)!;
  assert.equal(parsed.status, 200);
  assert.equal(parsed.method, undefined);
  assert.equal(parsed.body.get('sessionid'), '5');
});
