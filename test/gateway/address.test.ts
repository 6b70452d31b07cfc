// The contact addressing function pair must be pure and reversible.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emailToJid, emailToLocal, isMsnAddress, localToEmail } from '../../src/gateway/msn/address.ts';
import { Jid } from '../../src/jid/jid.ts';
import { msnToShow, showToMsn } from '../../src/gateway/msn/status-map.ts';

describe('MSN address ⇄ JID', () => {
  it('maps the plain case as PyMSNt and XEP-0100 do', () => {
    assert.equal(emailToJid('friend@hotmail.com', 'msn.example.org'), 'friend%hotmail.com@msn.example.org');
    assert.equal(localToEmail('friend%hotmail.com'), 'friend@hotmail.com');
  });

  it('lower-cases (MSN addresses are case-insensitive)', () => {
    assert.equal(emailToLocal('Friend.Name@HotMail.COM'), 'friend.name%hotmail.com');
  });

  const odd = [
    "o'brien@example.com",
    'a&b@example.co.uk',
    'per%cent@example.com',
    'back\\slash@example.com',
    'x+tag@sub.domain.example',
    'quote"d@example.com',
    'colon:ed@example.com',
    'a/b@example.com',
    '<tag>@example.com',
    'très@exämple.com',
  ];
  for (const email of odd) {
    it(`round-trips ${email} through a valid JID`, () => {
      const jid = Jid.parse(emailToJid(email, 'msn.localhost'));
      assert.equal(jid.domain, 'msn.localhost');
      assert.equal(jid.resource, '');
      assert.equal(localToEmail(jid.local), email.toLowerCase());
    });
  }

  it('refuses what is not an address', () => {
    for (const bad of ['', 'nobody', '@x.com', 'a@', 'a b@x.com', 'a@nodot']) assert.equal(isMsnAddress(bad), false, bad);
    assert.throws(() => emailToLocal('nobody'));
    for (const local of ['nopercent', '%x.com', 'x%', 'x%nodot']) assert.equal(localToEmail(local), null, local);
  });
});

describe('presence ⇄ MSN status', () => {
  it('maps every show to a status code', () => {
    assert.equal(showToMsn(undefined), 'NLN');
    assert.equal(showToMsn('chat'), 'NLN');
    assert.equal(showToMsn('away'), 'AWY');
    assert.equal(showToMsn('xa'), 'IDL');
    assert.equal(showToMsn('dnd'), 'BSY');
    assert.equal(showToMsn('away', true), 'HDN');
  });

  it('maps every MSN status to a show', () => {
    assert.equal(msnToShow('NLN'), undefined);
    assert.equal(msnToShow('BSY'), 'dnd');
    assert.equal(msnToShow('PHN'), 'dnd');
    assert.equal(msnToShow('AWY'), 'away');
    assert.equal(msnToShow('BRB'), 'away');
    assert.equal(msnToShow('LUN'), 'away');
    assert.equal(msnToShow('IDL'), 'xa');
    assert.equal(msnToShow('FLN'), 'unavailable');
  });
});
