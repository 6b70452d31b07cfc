/**
 * Units of the MSNP13+ pieces and of tracing: the lines traced with secrets
 * redacted, ADL/RML payloads, the Mail-Data document and offline message
 * text as the OIM documents show them, MIME encoded-words, and the SOAP
 * reply reader refusing what is not a service reply.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MsnProtocolError } from '../../src/msnp/errors.ts';
import { listPayload, parseListPayload } from '../../src/msnp/soap/address-book.ts';
import { decodeMimeWord, encodeMimeWord, parseMailData, parseOimMessage } from '../../src/msnp/soap/oim.ts';
import { parseXml, soapFault } from '../../src/msnp/soap/xml.ts';
import { redactedLine } from '../../src/msnp/trace.ts';

describe('tracing', () => {
  it('hides tickets, SSO answers and switchboard cookies, and keeps everything else', () => {
    assert.equal(redactedLine('USR', [4, 'TWN', 'S', 't=secret&p=more']), 'USR 4 TWN S [redacted]');
    assert.equal(redactedLine('USR', [4, 'SSO', 'S', 't=secret&p=', 'AAAA==', '{guid}']), 'USR 4 SSO S [redacted]');
    assert.equal(redactedLine('USR', [3, 'SSO', 'I', 'me@x.com']), 'USR 3 SSO I me@x.com');
    assert.equal(redactedLine('USR', [1, 'me@x.com;{guid}', '123.456.789']), 'USR 1 me@x.com;{guid} [redacted]');
    assert.equal(redactedLine('ANS', [1, 'me@x.com', '123.456', '98765']), 'ANS 1 me@x.com [redacted] 98765');
    assert.equal(redactedLine('XFR', [9, 'SB', '1.2.3.4:1863', 'CKI', '1.2.3', 'U', 'messenger.msn.com', 1]), 'XFR 9 SB 1.2.3.4:1863 CKI [redacted] U messenger.msn.com 1');
    assert.equal(redactedLine('RNG', ['111', '1.2.3.4:1863', 'CKI', '4.5.6', 'bob@x.com', 'Bob']), 'RNG 111 1.2.3.4:1863 CKI [redacted] bob@x.com Bob');
    assert.equal(redactedLine('MSG', [5, 'A'], 120), 'MSG 5 A 120');
    assert.equal(redactedLine('CHG', [6, 'NLN', '0']), 'CHG 6 NLN 0');
  });
});

describe('ADL/RML payloads', () => {
  it('group contacts by domain with their list bits, and read back pushes with friendly names', () => {
    const xml = listPayload(
      [
        { email: 'bob@hotmail.com', bits: 3 },
        { email: 'carol@hotmail.com', bits: 4 },
        { email: 'dan@live.com', bits: 1 },
        { email: 'nobody@x.com', bits: 0 },
      ],
      true,
    );
    assert.equal(
      xml,
      '<ml l="1"><d n="hotmail.com"><c n="bob" l="3" t="1"/><c n="carol" l="4" t="1"/></d><d n="live.com"><c n="dan" l="1" t="1"/></d></ml>',
    );
    assert.deepEqual(parseListPayload('<ml><d n="Hotmail.com"><c n="Ann" t="1" l="8" f="Ann%20B."/></d></ml>'), [
      { email: 'ann@hotmail.com', bits: 8, nickname: 'Ann B.' },
    ]);
  });
});

describe('offline messages', () => {
  it('reads the Mail-Data document, and "too-large"', () => {
    const md =
      '<MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q>' +
      '<M><T>11</T><S>6</S><RT>2005-11-15T22:24:27.000Z</RT><RS>0</RS><SZ>914</SZ><E>bob@hotmail.com</E>' +
      '<I>08CBD8BE-9972-433C-A9DA-84A0A725ABFA</I><F>00000000-0000-0000-0000-000000000009</F><N>=?utf-8?B?Qm9iIOKckw==?=</N></M></MD>';
    assert.deepEqual(parseMailData(md), [
      { id: '08CBD8BE-9972-433C-A9DA-84A0A725ABFA', from: 'bob@hotmail.com', nickname: 'Bob ✓', sent: new Date('2005-11-15T22:24:27.000Z') },
    ]);
    assert.equal(parseMailData('too-large'), 'too-large');
    assert.deepEqual(parseMailData('<MD><E><I>0</I></E></MD>'), []);
  });

  it('reads a message as GetMessage returns it: sender, date, base64 body', () => {
    const raw = [
      'X-Message-Info: cwRBnLifKNE8dVZlNj6AiX8142B67OTjG9BFMLMyzuui1H4Xx7m3NQ==',
      'From: =?utf-8?B?Qm9i?= <bob@hotmail.com>',
      'To: alice@hotmail.com',
      'Subject: ',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=UTF-8',
      'Content-Transfer-Encoding: base64',
      'X-OIM-Message-Type: OfflineMessage',
      'X-OIM-Run-Id: {3A3BE82F-B5AD-4F74-9B7A-3EB7E3B1E0B8}',
      'X-OIM-Sequence-Num: 1',
      'Date: 15 Nov 2005 14:24:27 -0800',
      '',
      'SGVsbG8sIHdvcmxkISA6KQ==',
    ].join('\r\n');
    const m = parseOimMessage('id-1', raw);
    assert.equal(m.from, 'bob@hotmail.com');
    assert.equal(m.nickname, 'Bob');
    assert.equal(m.text, 'Hello, world! :)');
    assert.equal(m.sent.toISOString(), '2005-11-15T22:24:27.000Z');
  });

  it('encodes and decodes MIME encoded-words', () => {
    assert.equal(decodeMimeWord(encodeMimeWord('Zoë ✓')), 'Zoë ✓');
    assert.equal(decodeMimeWord('=?iso-8859-1?Q?Zo=EB_B?='), 'Zoë B');
    assert.equal(decodeMimeWord('plain'), 'plain');
  });
});

describe('SOAP replies', () => {
  it('refuses a DOCTYPE and what is not XML, and reads faults by local name', () => {
    assert.throws(() => parseXml('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', 'test'), MsnProtocolError);
    assert.throws(() => parseXml('<<<', 'test'), MsnProtocolError);
    const f = soapFault(
      parseXml(
        '<S:Envelope xmlns:S="s"><S:Body><S:Fault><faultcode xmlns:q0="n">q0:AuthenticationFailed</faultcode><faultstring>no</faultstring><detail><LockKeyChallenge>123</LockKeyChallenge></detail></S:Fault></S:Body></S:Envelope>',
        'test',
      ),
    );
    assert.equal(f?.code, 'AuthenticationFailed');
    assert.equal(f?.detail?.getChildText('LockKeyChallenge'), '123');
  });
});
