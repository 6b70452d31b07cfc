// XEP-0363 HTTP File Upload end to end: @xmpp/client asks upload.localhost
// for slots, node:https PUTs and GETs the bytes on the https listener.
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { Logger } from '../../src/log.ts';
import { Certificates } from '../../src/tls/certs.ts';
import { uploadServiceOf } from '../../src/upload/upload-service.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { fetchUrl, openRequest } from '../helpers/http.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const UPLOAD = 'urn:xmpp:http:upload:0';
const MAX = 1024 * 1024;

interface Slot {
  put: string;
  get: string;
}

function requestSlot(c: TestClient, filename: string, size: number, contentType?: string): Promise<Element> {
  return c.xmpp.iqCaller.request(
    xml(
      'iq',
      { type: 'get', to: 'upload.localhost' },
      xml('request', { xmlns: UPLOAD, filename, size: String(size), 'content-type': contentType }),
    ),
  );
}

async function slot(c: TestClient, filename: string, size: number, contentType?: string): Promise<Slot> {
  const s = (await requestSlot(c, filename, size, contentType)).getChild('slot', UPLOAD)!;
  return { put: s.getChild('put')!.attrs.url, get: s.getChild('get')!.attrs.url };
}

/** The stanza error a request ended with. */
async function stanzaError(p: Promise<unknown>): Promise<Element> {
  const err = (await p.then(
    () => assert.fail('expected an error'),
    (e: unknown) => e,
  )) as { element?: Element };
  assert.ok(err.element, `not a stanza error: ${err}`);
  // @xmpp/client rejects with the <error/> element itself.
  return err.element!.name === 'error' ? err.element! : err.element!.getChild('error')!;
}

/** Every file under the upload folder (finished or partial). */
function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => d.name);
}

describe('HTTP file upload (XEP-0363)', { timeout: 120_000 }, () => {
  let ts: TestServer;
  let alice: TestClient;
  let uploadDir: string;

  before(async () => {
    ts = await startServer({
      https: { port: 0 },
      upload: { maxFileSize: MAX, quotaPerUser: 3 * MAX },
    });
    uploadDir = ts.config.upload.path;
    await ts.addUser('alice', 'pw');
    alice = await connect({ port: ts.port, username: 'alice', password: 'pw' });
  });
  after(async () => {
    await alice?.stop();
    await ts?.stop();
  });

  it('is listed by the server and announces its size limit', async () => {
    const items = await alice.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' })),
    );
    const jids = items.getChild('query')!.getChildren('item').map((i: Element) => i.attrs.jid);
    assert.ok(jids.includes('upload.localhost'), jids.join(','));
    const info = (
      await alice.xmpp.iqCaller.request(
        xml('iq', { type: 'get', to: 'upload.localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
      )
    ).getChild('query')!;
    assert.deepEqual(
      [info.getChild('identity')!.attrs.category, info.getChild('identity')!.attrs.type],
      ['store', 'file'],
    );
    assert.ok(info.getChildren('feature').some((f: Element) => f.attrs.var === UPLOAD));
    const form = info.getChild('x', 'jabber:x:data')!;
    const field = (name: string) =>
      form.getChildren('field').find((f: Element) => f.attrs.var === name)?.getChildText('value');
    assert.equal(field('FORM_TYPE'), UPLOAD);
    assert.equal(field('max-file-size'), String(MAX));
  });

  it('the generated certificate covers upload.localhost', () => {
    const cert = new X509Certificate(readFileSync(join(ts.config.tls.dir, 'localhost.crt')));
    assert.equal(cert.checkHost('upload.localhost', { wildcards: false }), 'upload.localhost');
  });

  it('stores a PUT and serves the same bytes with its type, nosniff and a CSP', async () => {
    const bytes = randomBytes(200_000);
    const s = await slot(alice, 'report 2026 (final).pdf', bytes.length, 'application/pdf');
    assert.match(s.put, /^https:\/\/upload\.localhost:\d+\/upload\/[\w-]{24}\/report%202026%20\(final\)\.pdf\?expires=\d+&token=/);
    assert.equal(s.put.split('?')[0], s.get);
    const put = await fetchUrl(s.put, { method: 'PUT', body: bytes, headers: { 'Content-Type': 'application/pdf' } });
    assert.equal(put.status, 201);

    const got = await fetchUrl(s.get);
    assert.equal(got.status, 200);
    assert.equal(createHash('sha256').update(got.body).digest('hex'), createHash('sha256').update(bytes).digest('hex'));
    assert.equal(got.headers['content-type'], 'application/pdf');
    assert.equal(got.headers['x-content-type-options'], 'nosniff');
    assert.match(String(got.headers['content-security-policy']), /default-src 'none'/);
    assert.match(String(got.headers['content-security-policy']), /sandbox/);
    assert.equal(got.headers['content-disposition'], 'attachment; filename="report 2026 (final).pdf"');
    assert.equal(got.headers['accept-ranges'], 'bytes');
    assert.equal(got.headers['access-control-allow-origin'], '*');
  });

  it('serves images inline and HTML as a download', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const s = await slot(alice, 'cat.png', png.length, 'image/png');
    assert.equal((await fetchUrl(s.put, { method: 'PUT', body: png, headers: { 'Content-Type': 'image/png' } })).status, 201);
    assert.equal((await fetchUrl(s.get)).headers['content-disposition'], 'inline; filename=cat.png');

    const html = '<script>alert(1)</script>';
    const h = await slot(alice, 'x.html', html.length, 'text/html');
    assert.equal((await fetchUrl(h.put, { method: 'PUT', body: html, headers: { 'Content-Type': 'text/html' } })).status, 201);
    const got = await fetchUrl(h.get);
    assert.equal(got.headers['content-type'], 'text/html');
    assert.match(got.headers['content-disposition'] ?? '', /^attachment/);
  });

  it('answers Range requests (206, suffix, unsatisfiable 416) and HEAD', async () => {
    const bytes = randomBytes(10_000);
    const s = await slot(alice, 'data.bin', bytes.length);
    assert.equal((await fetchUrl(s.put, { method: 'PUT', body: bytes })).status, 201);

    const part = await fetchUrl(s.get, { headers: { Range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 100-199/${bytes.length}`);
    assert.deepEqual(part.body, bytes.subarray(100, 200));

    const tail = await fetchUrl(s.get, { headers: { Range: 'bytes=-500' } });
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, bytes.subarray(bytes.length - 500));

    const open = await fetchUrl(s.get, { headers: { Range: 'bytes=9000-' } });
    assert.deepEqual(open.body, bytes.subarray(9000));

    const none = await fetchUrl(s.get, { headers: { Range: 'bytes=20000-30000' } });
    assert.equal(none.status, 416);
    assert.equal(none.headers['content-range'], `bytes */${bytes.length}`);

    // A stale If-Range gets the whole file.
    const stale = await fetchUrl(s.get, { headers: { Range: 'bytes=0-9', 'If-Range': '"other"' } });
    assert.equal(stale.status, 200);
    assert.equal(stale.body.length, bytes.length);

    const head = await fetchUrl(s.get, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(bytes.length));
    assert.equal(head.body.length, 0);
    // The type was not declared: what the PUT said, or octet-stream.
    assert.equal(head.headers['content-type'], 'application/octet-stream');
  });

  it('refuses tampered, reused and expired PUT URLs with 403', async () => {
    const body = Buffer.from('hello upload');
    const s = await slot(alice, 'note.txt', body.length, 'text/plain');
    const u = new URL(s.put);
    const tamper = (f: (x: URL) => void) => {
      const t = new URL(u);
      f(t);
      return t.toString();
    };
    const token = u.searchParams.get('token')!;
    const bad = [
      tamper((t) => t.searchParams.set('token', (token[0] === 'A' ? 'B' : 'A') + token.slice(1))),
      tamper((t) => t.searchParams.set('expires', String(Number(u.searchParams.get('expires')) + 3_600_000))),
      tamper((t) => {
        t.pathname = t.pathname.replace('note.txt', 'note.html');
      }),
      tamper((t) => t.searchParams.delete('token')),
      tamper((t) => {
        t.pathname = t.pathname.replace(/\/upload\/[\w-]{24}\//, `/upload/${'A'.repeat(24)}/`);
      }),
    ];
    for (const url of bad) {
      const r = await fetchUrl(url, { method: 'PUT', body, headers: { 'Content-Type': 'text/plain' } });
      assert.equal(r.status, 403, url);
    }
    // None of them stored anything: the file is not there.
    assert.equal((await fetchUrl(s.get)).status, 404);

    assert.equal((await fetchUrl(s.put, { method: 'PUT', body, headers: { 'Content-Type': 'text/plain' } })).status, 201);
    const again = await fetchUrl(s.put, { method: 'PUT', body: 'other bytes!', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(again.status, 403);
    assert.equal((await fetchUrl(s.get)).body.toString(), 'hello upload');
  });

  it('refuses a PUT whose length or type does not match the slot', async () => {
    const s = await slot(alice, 'a.txt', 10, 'text/plain');
    assert.equal((await fetchUrl(s.put, { method: 'PUT', body: 'short', headers: { 'Content-Type': 'text/plain' } })).status, 400);
    assert.equal(
      (await fetchUrl(s.put, { method: 'PUT', body: '0123456789', headers: { 'Content-Type': 'image/png' } })).status,
      400,
    );
    // Still usable with the right body.
    assert.equal(
      (await fetchUrl(s.put, { method: 'PUT', body: '0123456789', headers: { 'Content-Type': 'text/plain' } })).status,
      201,
    );
  });

  it('refuses a file over upload.maxFileSize with file-too-large and the limit', async () => {
    const error = await stanzaError(requestSlot(alice, 'huge.iso', 100 * 1024 * 1024));
    assert.equal(error.attrs.type, 'modify');
    assert.ok(error.getChild('not-acceptable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    assert.equal(error.getChild('file-too-large', UPLOAD)?.getChildText('max-file-size'), String(MAX));
  });

  it('refuses bad slot requests', async () => {
    for (const [filename, size] of [
      ['', '5'],
      ['x.txt', '-1'],
      ['x.txt', 'many'],
    ] as const) {
      const error = await stanzaError(
        alice.xmpp.iqCaller.request(
          xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: UPLOAD, filename, size })),
        ),
      );
      assert.ok(error.getChild('bad-request', 'urn:ietf:params:xml:ns:xmpp-stanzas'), `${filename} ${size}`);
    }
  });

  it('refuses a PUT over the slot size before storing a byte, with and without Expect: 100-continue', async () => {
    const s = await slot(alice, 'big.bin', MAX);
    const before = filesIn(uploadDir).length;
    const hundredMb = 100 * 1024 * 1024;

    // With Expect: the refusal comes instead of 100 Continue; no body is sent at all.
    let continued = false;
    const expect = await new Promise<number>((resolve, reject) => {
      const req = openRequest(
        s.put,
        {
          method: 'PUT',
          headers: { 'Content-Length': hundredMb, Expect: '100-continue' },
          onContinue: () => {
            continued = true;
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(expect, 413);
    assert.equal(continued, false);

    // Without Expect the client starts sending 100 MB at once; the answer
    // comes while it is still sending, and nothing reaches the disk.
    let sent = 0;
    let answered = -1;
    const chunk = Buffer.alloc(64 * 1024);
    const body = new Readable({
      read() {
        if (answered >= 0 || sent >= hundredMb) return this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = openRequest(s.put, { method: 'PUT', headers: { 'Content-Length': hundredMb }, body }, (res) => {
        answered = sent;
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', (e) => (answered >= 0 ? undefined : reject(e)));
    });
    assert.equal(status, 413);
    assert.ok(answered < hundredMb, `answered after ${answered} bytes`);
    assert.equal(filesIn(uploadDir).length, before, 'nothing was stored');
    // The slot is still good for the right size.
    const ok = await fetchUrl(s.put, { method: 'PUT', body: Buffer.alloc(MAX, 7) });
    assert.equal(ok.status, 201);
  });

  it('enforces the quota with resource-constraint', async () => {
    const bob = await ts.addUser('bob', 'pw').then(() => connect({ port: ts.port, username: 'bob', password: 'pw' }));
    try {
      // Open slots count: three of MAX fill the quota.
      for (let i = 0; i < 3; i++) await slot(bob, `f${i}.bin`, MAX);
      const error = await stanzaError(requestSlot(bob, 'one-more.bin', 1));
      assert.equal(error.attrs.type, 'wait');
      assert.ok(error.getChild('resource-constraint', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
      // The open slots expire within upload.slotLifetime: that is when to retry.
      const stamp = Date.parse(error.getChild('retry', UPLOAD)!.attrs.stamp);
      assert.ok(stamp > Date.now() - 1000 && stamp <= Date.now() + ts.config.upload.slotLifetime * 1000, String(stamp));
    } finally {
      await bob.stop();
    }
  });

  it('stores files for other features (in-process API) and serves them', async () => {
    const uploads = uploadServiceOf(ts.server)!;
    const bytes = randomBytes(300_000);
    const stored = await uploads.storeFile({
      owner: 'alice@localhost',
      filename: 'from msn.jpg',
      contentType: 'image/jpeg',
      source: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
    });
    assert.equal(stored.size, bytes.length);
    const got = await fetchUrl(stored.url);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(bytes));
    assert.equal(got.headers['content-type'], 'image/jpeg');
    // And back from its URL, as the transport does to pass a shared file on.
    const found = await uploads.fileForUrl(stored.url);
    assert.equal(found?.filename, 'from msn.jpg');
    const chunks: Buffer[] = [];
    for await (const c of found!.read()) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(bytes));
    assert.equal(await uploads.fileForUrl(stored.url.replace('from%20msn', 'other')), null);
    assert.equal(await uploads.fileForUrl('https://elsewhere.example/upload/x/y'), null);
    await assert.rejects(
      uploads.storeFile({ owner: 'alice@localhost', filename: 'big', source: Readable.from([Buffer.alloc(MAX + 1)]) }),
      { reason: 'too-large' },
    );
  });

  it('removes a user’s files with the account', async () => {
    await ts.addUser('carol', 'pw');
    const carol = await connect({ port: ts.port, username: 'carol', password: 'pw' });
    const s = await slot(carol, 'mine.txt', 4, 'text/plain');
    assert.equal((await fetchUrl(s.put, { method: 'PUT', body: 'mine', headers: { 'Content-Type': 'text/plain' } })).status, 201);
    const id = new URL(s.get).pathname.split('/')[2]!;
    const onDisk = join(uploadDir, id.slice(0, 2), id);
    assert.ok(existsSync(onDisk));
    // XEP-0077 in-band account removal.
    await carol.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove'))));
    await carol.stop();
    assert.equal((await fetchUrl(s.get)).status, 404);
    assert.equal(existsSync(onDisk), false);
    assert.deepEqual(await ts.server.storage.uploadRecords().byOwner('carol@localhost'), []);
  });
});

describe('upload expiry', { timeout: 60_000 }, () => {
  it('removes files in the background once upload.expireAfter has passed, and keeps slot URLs across a restart', async () => {
    let ts = await startServer({ https: { port: 0 }, upload: { expireAfter: 2 } });
    try {
      await ts.addUser('dave', 'pw');
      const dave = await connect({ port: ts.port, username: 'dave', password: 'pw' });
      const s = await slot(dave, 'short-lived.txt', 5, 'text/plain');
      await dave.stop();
      // The PUT URL was signed before the restart and still works after it.
      ts = await ts.restart();
      const expired = new Promise<string>((resolve) => uploadServiceOf(ts.server)!.onExpired((r) => resolve(r.id)));
      const https = new URL(s.put);
      https.port = String(ts.server.service(HttpService)!.ports.https);
      assert.equal((await fetchUrl(https.toString(), { method: 'PUT', body: 'hello', headers: { 'Content-Type': 'text/plain' } })).status, 201);
      const get = https.toString().split('?')[0]!;
      assert.equal((await fetchUrl(get)).body.toString(), 'hello');
      const id = await expired;
      assert.equal(id, new URL(get).pathname.split('/')[2]);
      assert.equal((await fetchUrl(get)).status, 404);
      assert.deepEqual(filesIn(ts.config.upload.path), []);
    } finally {
      await ts.stop();
    }
  });
});

describe('certificate for upload.<domain>', () => {
  it('a certificate made before uploads were served gets a pair for upload.localhost beside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jabberfly-certs-'));
    const log = new Logger('silent');
    const main = () => new X509Certificate(readFileSync(join(dir, 'localhost.crt')));
    try {
      // As an older jabberfly made it: without upload.localhost.
      Certificates.load(dir, 'localhost', ['msn.localhost'], log);
      const before = main().fingerprint256;
      assert.equal(main().checkHost('upload.localhost', { wildcards: false }), undefined);
      const certs = Certificates.load(dir, 'localhost', ['msn.localhost', 'upload.localhost'], log);
      assert.equal(main().fingerprint256, before, 'the existing certificate is not rewritten');
      const own = new X509Certificate(certs.pairs.get('upload.localhost')!.cert);
      assert.equal(own.checkHost('upload.localhost', { wildcards: false }), 'upload.localhost');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
