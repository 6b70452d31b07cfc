// Debian's go-sendxmpp uploads a file with `-h` (XEP-0363): it finds
// upload.localhost through disco, asks for a slot, PUTs over HTTPS —
// verifying our generated certificate for upload.localhost, trusted through
// SSL_CERT_FILE — and sends the GET URL to the recipient, who fetches the
// same bytes back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import sharp from 'sharp';
import { HttpService } from '../../src/websocket/http-service.ts';
import { type ConnectProxy, startConnectProxy } from '../helpers/connect-proxy.ts';
import { fetchUrl } from '../helpers/http.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const GO_SENDXMPP = '/usr/bin/go-sendxmpp';

interface Run {
  code: number | null;
  output: string;
}

function goSendxmpp(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(GO_SENDXMPP, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('go-sendxmpp -h (HTTP upload)', { timeout: 120_000 }, () => {
  let ts: TestServer;
  let bob: TestClient;
  let proxy: ConnectProxy;
  let work: string;

  before(async () => {
    ts = await startServer({ https: { port: 0 } });
    await ts.addUser('alice', 'alice-pw');
    await ts.addUser('bob', 'bob-pw');
    bob = await connect({ port: ts.port, username: 'bob', password: 'bob-pw', resource: 'phone' });
    await bob.send(xml('presence'));
    proxy = await startConnectProxy(['upload.localhost']);
    work = mkdtempSync(join(tmpdir(), 'jabberfly-sendxmpp-'));
  });
  after(async () => {
    await bob?.stop();
    await proxy?.close();
    await ts?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('uploads a picture; the recipient gets the URL and fetches identical bytes', async () => {
    const picture = await sharp({
      create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 80, b: 30 } },
    })
      .png()
      .toBuffer();
    const file = join(work, 'sunset.png');
    writeFileSync(file, picture);

    const run = await goSendxmpp(
      ['-u', 'alice@localhost', '-p', 'alice-pw', '-j', `127.0.0.1:${ts.port}`, '-n', '-h', file, 'bob@localhost'],
      {
        HOME: work,
        // Go checks the PUT's certificate against these roots: the server's generated one.
        SSL_CERT_FILE: join(ts.config.tls.dir, 'localhost.crt'),
        HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
      },
    );
    assert.equal(run.code, 0, run.output);

    const message = await bob.waitFor(
      (s) => s.is('message') && /upload\.localhost/.test(s.getChildText('body') ?? ''),
      'the upload URL from go-sendxmpp',
      20_000,
    );
    assert.match(message.attrs.from, /^alice@localhost\//);
    const url = message.getChildText('body')!.trim();
    const https = ts.server.service(HttpService)!.ports.https;
    assert.match(url, new RegExp(`^https://upload\\.localhost:${https}/upload/[\\w-]{24}/sunset\\.png$`));
    assert.equal(message.getChild('x', 'jabber:x:oob')?.getChildText('url'), url);
    assert.deepEqual(proxy.tunnels, [`upload.localhost:${https}`]);

    const got = await fetchUrl(url);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(readFileSync(file)), 'the bytes fetched back are the bytes uploaded');
    assert.equal(got.headers['content-type'], 'image/png');
  });
});
