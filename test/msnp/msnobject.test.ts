import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  computeSha1c,
  createMsnObject,
  parseMsnObject,
  serializeMsnObject,
  verifyData,
  verifySha1c,
} from '../../src/msnp/msnobject.ts';

// The example object of the MSNObject document.
const DOC_OBJECT =
  '<msnobj Creator="buddy1@hotmail.com" Size="24539" Type="3" Location="TFR2C.tmp" Friendly="AAA=" ' +
  'SHA1D="trC8SlFx2sWQxZMIBAWSEnXc8oQ=" SHA1C="U32o6bosZzluJq82eAtMpx5dIEI="/>';

test('parses the documented MSNObject and its SHA1C checks out', () => {
  const o = parseMsnObject(DOC_OBJECT)!;
  assert.equal(o.creator, 'buddy1@hotmail.com');
  assert.equal(o.size, 24539);
  assert.equal(o.type, 3);
  assert.equal(o.location, 'TFR2C.tmp');
  assert.equal(o.sha1d, 'trC8SlFx2sWQxZMIBAWSEnXc8oQ=');
  assert.equal(computeSha1c(o), 'U32o6bosZzluJq82eAtMpx5dIEI=');
  assert.ok(verifySha1c(o));
  assert.ok(!verifySha1c({ ...o, size: 1 }));
});

test('serialises back to the same tag and parses the URL-encoded form used in CHG/NLN', () => {
  const o = parseMsnObject(DOC_OBJECT)!;
  assert.equal(serializeMsnObject(o), DOC_OBJECT);
  assert.deepEqual(parseMsnObject(encodeURIComponent(DOC_OBJECT)), o);
  assert.equal(parseMsnObject('0'), undefined);
  assert.equal(parseMsnObject(''), undefined);
  assert.equal(parseMsnObject('<msnobj Creator="x"/>'), undefined);
});

test('createMsnObject hashes the data (SHA1D) and the fields (SHA1C)', () => {
  const data = Buffer.from('not really a png, but bytes all the same');
  const o = createMsnObject('me@example.com', data);
  assert.equal(o.size, data.length);
  assert.equal(o.type, 3);
  assert.ok(verifySha1c(o));
  assert.ok(verifyData(o, data));
  assert.ok(!verifyData(o, Buffer.from('other bytes')));
  assert.deepEqual(parseMsnObject(serializeMsnObject(o)), o);
});
