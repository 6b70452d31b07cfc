// SCRAM against the RFC 5802 (SHA-1) and RFC 7677 (SHA-256) test vectors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveCredentials, ScramError, ScramServer, verifyPassword } from '../../src/auth/scram.ts';

const vectors = [
  {
    hash: 'SHA-1' as const,
    clientFirst: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
    serverNonce: '3rfcNHYJY1ZVvWVs7j',
    salt: 'QSXCR+Q6sek8bf92',
    serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
    clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
    serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
  },
  {
    hash: 'SHA-256' as const,
    clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinal:
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  },
];

describe('SCRAM server', () => {
  for (const v of vectors) {
    it(`replays the RFC test vector for SCRAM-${v.hash}`, () => {
      const creds = deriveCredentials(v.hash, 'pencil', Buffer.from(v.salt, 'base64'), 4096);
      const server = new ScramServer(v.hash, () => v.serverNonce);
      assert.equal(server.first(v.clientFirst), 'user');
      assert.equal(server.challenge(creds), v.serverFirst);
      assert.equal(server.final(v.clientFinal, creds), v.serverFinal);
    });

    it(`rejects a wrong proof for SCRAM-${v.hash}`, () => {
      const creds = deriveCredentials(v.hash, 'not pencil', Buffer.from(v.salt, 'base64'), 4096);
      const server = new ScramServer(v.hash, () => v.serverNonce);
      server.first(v.clientFirst);
      server.challenge(creds);
      assert.throws(() => server.final(v.clientFinal, creds), (e: unknown) => e instanceof ScramError && e.condition === 'not-authorized');
    });
  }

  it('rejects a tampered nonce and channel-binding requests', () => {
    const creds = deriveCredentials('SHA-1', 'pencil');
    const server = new ScramServer('SHA-1', () => 'xyz');
    server.first('n,,n=user,r=abc');
    server.challenge(creds);
    assert.throws(() => server.final('c=biws,r=abcOTHER,p=AAAA', creds), ScramError);
    assert.throws(() => new ScramServer('SHA-1').first('p=tls-unique,,n=user,r=abc'), ScramError);
    assert.throws(() => new ScramServer('SHA-1').first('garbage'), ScramError);
  });

  it('verifies PLAIN passwords against the stored keys only', () => {
    const creds = deriveCredentials('SHA-256', 'correct horse');
    assert.equal(verifyPassword('SHA-256', creds, 'correct horse'), true);
    assert.equal(verifyPassword('SHA-256', creds, 'correct horsE'), false);
    assert.ok(creds.iterations >= 4096);
    assert.equal(JSON.stringify(creds).includes('correct horse'), false);
  });
});
