// Files through the transport, both ways (@xmpp/client ⇄ jabberfly ⇄ MSN
// simulator ⇄ MsnSession buddy): an MSN file offer arrives as a message with
// an XEP-0066 OOB URL in the HTTP upload store (bytes identical when
// fetched), a file over msn.fileMaxBytes is declined and the user told, and a
// file the user shares goes to the contact as an MSNP2P transfer when the
// contact accepts it, or as a link otherwise. Without the upload service the
// transport keeps the files itself, served under /msn-files/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { FileOffer, MsnSession } from '../../src/msnp/index.ts';
import type { TestClient } from '../helpers/xmpp-client.ts';
import { type MsnWorld, nextEvent, registeredUser, startMsnWorld } from './msn-harness.ts';

const BOB = 'bob%hotmail.com@msn.localhost';
const OOB = 'jabber:x:oob';
const LIMIT = 200_000;

function fetch(url: string): Promise<{ status: number; type: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function offerTo(s: MsnSession): Promise<FileOffer> {
  return nextEvent(s, 'fileOffer', () => true, 15000);
}

describe('MSN transport: files both ways', () => {
  let world: MsnWorld;
  let juliet: TestClient;
  let bob: MsnSession;
  /** The URL of the picture Bob sent, served by jabberfly. */
  let pictureUrl = '';
  const picture = randomBytes(150_000);

  before(async () => {
    world = await startMsnWorld(
      (sim) => {
        sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
        sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bobby' });
        sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
      },
      { https: { port: 0 }, msn: { fileMaxBytes: LIMIT } },
    );
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
    await juliet.waitFor((s) => s.is('presence') && s.attrs.from === BOB && !s.attrs.type, 'Bob online', 15000);
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('turns an MSN file offer into a message with an OOB URL; the bytes fetched are the bytes sent', async () => {
    const message = juliet.waitFor((s) => s.is('message') && s.attrs.from === BOB && !!s.getChild('x', OOB), 'file message', 20000);
    const outcome = bob.sendFile('alice@hotmail.com', 'holiday.png', picture);
    const m = await message;
    assert.equal(await outcome, 'accepted');
    const oob = m.getChild('x', OOB);
    pictureUrl = oob.getChildText('url');
    assert.equal(oob.getChildText('desc'), 'holiday.png');
    assert.equal(m.getChildText('body'), pictureUrl, 'the URL is the body too (clients show it inline)');
    // In the user's upload store: their quota and expiry apply.
    assert.match(pictureUrl, /^https:\/\/upload\.localhost:\d+\/upload\/[^/]+\/holiday\.png$/);
    const got = await fetch(pictureUrl.replace('upload.localhost', '127.0.0.1'));
    assert.equal(got.status, 200);
    assert.equal(got.type, 'image/png');
    assert.ok(got.body.equals(picture));
  });

  it('declines a file larger than msn.fileMaxBytes and tells the user', async () => {
    const notice = juliet.waitFor(
      (s) => s.is('message') && s.attrs.from === BOB && /larger than this server takes/.test(s.getChildText('body') ?? ''),
      'notice',
      20000,
    );
    assert.equal(await bob.sendFile('alice@hotmail.com', 'movie.avi', randomBytes(LIMIT + 1)), 'declined');
    assert.match((await notice).getChildText('body') ?? '', /movie\.avi/);
  });

  it('sends a shared file the contact accepts as an MSNP2P transfer, bytes identical, with a receipt', async () => {
    const offered = offerTo(bob);
    await juliet.send(
      xml(
        'message',
        { to: BOB, type: 'chat', id: 'file-1' },
        xml('body', {}, pictureUrl),
        xml('x', { xmlns: OOB }, xml('url', {}, pictureUrl)),
        xml('request', { xmlns: 'urn:xmpp:receipts' }),
      ),
    );
    const offer = await offered;
    assert.equal(offer.name, 'holiday.png');
    assert.equal(offer.size, picture.length);
    assert.ok((await offer.accept()).equals(picture));
    await juliet.waitFor((s) => s.getChild('received', 'urn:xmpp:receipts')?.attrs.id === 'file-1', 'receipt', 15000);
  });

  it('sends the link instead when the contact declines, or the file is not one held here', async () => {
    const offered = offerTo(bob);
    const link = nextEvent(bob, 'message', (m) => m.text === pictureUrl, 15000);
    await juliet.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, pictureUrl), xml('x', { xmlns: OOB }, xml('url', {}, pictureUrl))));
    (await offered).decline();
    await link;
    // Somewhere else on the web: nothing is fetched, the link goes as text.
    const external = 'https://files.example.org/share/report.pdf';
    const text = nextEvent(bob, 'message', (m) => m.text.includes(external), 15000);
    await juliet.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, `the report: ${external}`), xml('x', { xmlns: OOB }, xml('url', {}, external))));
    await text;
  });
});

describe('MSN transport: files without the upload service', () => {
  let world: MsnWorld;
  let juliet: TestClient;
  let bob: MsnSession;

  before(async () => {
    world = await startMsnWorld(
      (sim) => {
        sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
        sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bobby' });
        sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
      },
      { https: { port: 0 }, upload: { enabled: false } },
    );
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
    await juliet.waitFor((s) => s.is('presence') && s.attrs.from === BOB && !s.attrs.type, 'Bob online', 15000);
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('keeps the file itself and serves it from the https service under /msn-files/, and can pass it on', async () => {
    const data = randomBytes(50_000);
    const message = juliet.waitFor((s) => s.is('message') && s.attrs.from === BOB && !!s.getChild('x', OOB), 'file message', 20000);
    assert.equal(await bob.sendFile('alice@hotmail.com', 'notes.txt', data), 'accepted');
    const url = (await message).getChild('x', OOB).getChildText('url');
    assert.match(url, /^https:\/\/localhost:\d+\/msn-files\/[A-Za-z0-9_-]+\/notes\.txt$/);
    const local = url.replace('//localhost:', '//127.0.0.1:');
    const got = await fetch(local);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(data));
    assert.equal((await fetch(local.replace('notes.txt', 'other.txt'))).status, 404);
    assert.equal((await fetch(local.replace(/msn-files\/[^/]+/, 'msn-files/AAAAAAAAAAAAAAAAAAAAAAAA'))).status, 404);
    // Shared back with Bob: a transfer, the same bytes.
    const offered = offerTo(bob);
    await juliet.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, url), xml('x', { xmlns: OOB }, xml('url', {}, url))));
    assert.ok((await (await offered).accept()).equals(data));
  });
});
