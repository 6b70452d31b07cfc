import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  legacyChallengeResponse,
  msnp11ChallengeResponse,
  randomChallenge,
  verifyChallengeResponse,
} from './challenge.ts';

const PRODUCT_ID = 'PROD0090YUAUV{2B';
const PRODUCT_KEY = 'YMM8C_H7KCQ2S_KL';

describe('MSNP11 challenge (QRY) algorithm', () => {
  // 22210219642164014968 is the worked example of the MSNP11 Challenges page;
  // the other pairs are published test vectors for the same key pair.
  const known: [string, string][] = [
    ['22210219642164014968', '85ecb0db8f32113df79ce0892b9a102c'],
    ['36819795137093047918', 'e7ad3cb09d3e9e4e7c720175984809e9'],
    ['21948129323261853323', '59bcf63ed21f44906c3d3e121ddbed65'],
    ['41525959199453244913', 'dcb8ff529e4dd12cc43389851128d2db'],
  ];

  for (const [challenge, answer] of known) {
    it(`answers ${challenge}`, () => {
      assert.equal(msnp11ChallengeResponse(challenge, PRODUCT_ID, PRODUCT_KEY), answer);
    });
  }

  it('accepts the right answer and rejects wrong ones', () => {
    const [challenge, answer] = known[0]!;
    assert.equal(verifyChallengeResponse(11, [challenge], PRODUCT_ID, answer), true);
    assert.equal(verifyChallengeResponse(11, [challenge], PRODUCT_ID, answer.toUpperCase()), true);
    // One flipped digit.
    assert.equal(verifyChallengeResponse(11, [challenge], PRODUCT_ID, `0${answer.slice(1)}`), false);
    // Right answer, wrong product id.
    assert.equal(verifyChallengeResponse(11, [challenge], 'PROD00974#MT*RC2', answer), false);
    // Unknown product id.
    assert.equal(verifyChallengeResponse(11, [challenge], 'PRODXXXX', answer), false);
    // Answer to another challenge.
    assert.equal(verifyChallengeResponse(11, [known[1]![0]], PRODUCT_ID, answer), false);
    // MSNP11 does not accept the old md5 answer (the wiki's "failed challenge" example).
    const old = legacyChallengeResponse(challenge, 'Q1P7W2E4J9R8U3S5');
    assert.equal(verifyChallengeResponse(11, [challenge], 'msmsgs@msnmsgr.com', old), false);
  });

  it('accepts an answer to the previous challenge too', () => {
    const [c1, a1] = known[0]!;
    const [c2] = known[1]!;
    assert.equal(verifyChallengeResponse(11, [c1, c2], PRODUCT_ID, a1), true);
  });
});

describe('MSNP6-MSNP10 challenge algorithm', () => {
  it('matches the documented example', () => {
    // QRY page: CHL 12345678901234567890 -> msmsgs@msnmsgr.com 8ba1bb9d6dbf624fee31a2053af5fdd0
    assert.equal(
      legacyChallengeResponse('12345678901234567890', 'Q1P7W2E4J9R8U3S5'),
      '8ba1bb9d6dbf624fee31a2053af5fdd0',
    );
    assert.equal(
      verifyChallengeResponse(
        10,
        ['12345678901234567890'],
        'msmsgs@msnmsgr.com',
        '8ba1bb9d6dbf624fee31a2053af5fdd0',
      ),
      true,
    );
    assert.equal(
      verifyChallengeResponse(
        10,
        ['12345678901234567890'],
        'PROD0090YUAUV{2B',
        '8ba1bb9d6dbf624fee31a2053af5fdd0',
      ),
      false,
    );
  });
});

describe('randomChallenge', () => {
  it('produces 20 digits', () => {
    for (let i = 0; i < 50; i++) assert.match(randomChallenge(), /^[1-9]\d{19}$/);
  });
});
