/**
 * MSNP2P file transfer between two MsnSessions through the simulator's
 * switchboard (which relays the P2P messages byte for byte): the invitation
 * Context, accepting (bytes identical), declining, the receiver's size
 * limit, and an unanswered offer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type FileOffer, MsnSession } from '../../src/msnp/index.ts';
import { buildFileContext, parseFileContext } from '../../src/msnp/file-transfer.ts';
import { MsnSimulator } from '../msn-sim/simulator.ts';

function offerTo(s: MsnSession, ms = 5000): Promise<FileOffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no file offer')), ms);
    s.once('fileOffer', (o) => {
      clearTimeout(timer);
      resolve(o);
    });
  });
}

describe('file transfer over MSNP2P', () => {
  it('writes and reads the invitation Context (638 bytes, UTF-16 name, 64-bit size)', () => {
    const ctx = buildFileContext('Résumé 2009 ✓.pdf', 5_000_000_000);
    assert.equal(ctx.length, 638);
    assert.equal(ctx.readUInt32LE(0), 638);
    assert.deepEqual(parseFileContext(ctx), { name: 'Résumé 2009 ✓.pdf', size: 5_000_000_000 });
    assert.equal(parseFileContext(Buffer.alloc(100)), undefined);
  });

  for (const version of ['MSNP11', 'MSNP18']) {
    describe(version, () => {
      let sim: MsnSimulator;
      let ann: MsnSession;
      let ben: MsnSession;
      before(async () => {
        sim = new MsnSimulator();
        sim.addAccount('ann@hotmail.com', 'ann-pw', { nickname: 'Ann' });
        sim.addAccount('ben@hotmail.com', 'ben-pw', { nickname: 'Ben' });
        sim.makeFriends('ann@hotmail.com', 'ben@hotmail.com');
        const ep = await sim.start();
        const mk = (email: string, password: string) =>
          new MsnSession({
            email,
            password,
            server: `${ep.nsHost}:${ep.nsPort}`,
            nexusUrl: ep.nexusUrl,
            protocols: [version],
            timeouts: { request: 4000, join: 4000, fileTransfer: 15000 },
            reconnect: { enabled: false },
          });
        ann = mk('ann@hotmail.com', 'ann-pw');
        ben = mk('ben@hotmail.com', 'ben-pw');
        await ann.login();
        await ben.login();
      });
      after(async () => {
        await ann.logout();
        await ben.logout();
        await sim.stop();
      });

      it('sends a file the other side accepts: every byte identical', async () => {
        const data = randomBytes(300_000);
        const offered = offerTo(ben);
        const sending = ann.sendFile('ben@hotmail.com', 'holiday photos.zip', data);
        const offer = await offered;
        assert.equal(offer.from, 'ann@hotmail.com');
        assert.equal(offer.name, 'holiday photos.zip');
        assert.equal(offer.size, data.length);
        const got = await offer.accept(1_000_000);
        assert.ok(got.equals(data));
        assert.equal(await sending, 'accepted');
      });

      it('reports a declined file, and refuses one larger than the receiver allows', async () => {
        const declined = offerTo(ben);
        const first = ann.sendFile('ben@hotmail.com', 'no thanks.txt', Buffer.from('x'));
        (await declined).decline();
        assert.equal(await first, 'declined');

        const big = offerTo(ben);
        const second = ann.sendFile('ben@hotmail.com', 'big.bin', randomBytes(4096));
        await assert.rejects((await big).accept(1024), /larger than 1024 bytes/);
        assert.equal(await second, 'declined');
      });

      it('declines by itself when nobody listens for offers', async () => {
        const listeners = ben.listeners('fileOffer');
        ben.removeAllListeners('fileOffer');
        try {
          assert.equal(await ann.sendFile('ben@hotmail.com', 'unheard.txt', Buffer.from('hi')), 'declined');
        } finally {
          for (const l of listeners) ben.on('fileOffer', l as (o: FileOffer) => void);
        }
      });
    });
  }
});
