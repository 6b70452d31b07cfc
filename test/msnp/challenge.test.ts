import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MSNP8_KEYS,
  MSNP11_KEYS,
  md5Challenge,
  msnp11Challenge,
  solveChallenge,
} from '../../src/msnp/challenge.ts';

test('MSNP11 challenge: the worked example of the MSNP11 Challenges document', () => {
  // Challenge 22210219642164014968 with PROD0090YUAUV{2B / YMM8C_H7KCQ2S_KL.
  assert.equal(msnp11Challenge('22210219642164014968', MSNP11_KEYS), '85ecb0db8f32113df79ce0892b9a102c');
});

test('MSNP8-10 challenge: examples from the QRY and MSNP8 Challenges documents', () => {
  assert.equal(
    md5Challenge('12345678901234567890', MSNP8_KEYS.productKey),
    '8ba1bb9d6dbf624fee31a2053af5fdd0',
  );
  assert.equal(
    md5Challenge('15570131571988941333', MSNP8_KEYS.productKey),
    '8f2f5a91b72102cd28355e9fc9000d6e',
  );
});

test('solveChallenge picks keys and algorithm by protocol version', () => {
  assert.deepEqual(solveChallenge('MSNP11', '22210219642164014968'), {
    productId: 'PROD0090YUAUV{2B',
    response: '85ecb0db8f32113df79ce0892b9a102c',
  });
  for (const v of ['MSNP8', 'MSNP9', 'MSNP10']) {
    assert.deepEqual(solveChallenge(v, '12345678901234567890'), {
      productId: 'msmsgs@msnmsgr.com',
      response: '8ba1bb9d6dbf624fee31a2053af5fdd0',
    });
  }
});

test('MSNP11 responses are 32 lowercase hex digits for challenges of any length', () => {
  for (const chl of ['1', '1234567', '12345678', '123456789012345678901234567890']) {
    assert.match(msnp11Challenge(chl), /^[0-9a-f]{32}$/);
  }
  assert.notEqual(msnp11Challenge('1'), msnp11Challenge('2'));
});
