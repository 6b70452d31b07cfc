import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Jid, JidError } from '../../src/jid/jid.ts';

describe('JID (RFC 7622)', () => {
  it('parses and normalises the three parts', () => {
    const j = Jid.parse('Juliet@Example.COM/Balcony Room');
    assert.equal(j.local, 'juliet');
    assert.equal(j.domain, 'example.com');
    assert.equal(j.resource, 'Balcony Room');
    assert.equal(j.bare, 'juliet@example.com');
    assert.equal(j.toString(), 'juliet@example.com/Balcony Room');
  });

  it('keeps slashes and @ in the resource', () => {
    const j = Jid.parse('a@b/c/d@e');
    assert.equal(j.resource, 'c/d@e');
  });

  it('folds fullwidth characters and case in the localpart', () => {
    assert.equal(Jid.parse('ＲＯＭＥＯ@example.org').local, 'romeo');
  });

  it('strips a trailing dot from the domain', () => {
    assert.equal(Jid.parse('a@example.org.').domain, 'example.org');
  });

  for (const bad of ['', '@example.org', 'a@', 'a@b/', 'a b@example.org', 'a"b@x', 'a@exa mple.org', `${'x'.repeat(1024)}@x`]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 30))}`, () => {
      assert.throws(() => Jid.parse(bad), JidError);
      assert.equal(Jid.tryParse(bad), null);
    });
  }
});
