// The built-in Converse page shares a picture: headless Chromium logs in,
// picks a PNG in the chat with Bob, Converse asks upload.localhost for a
// slot and PUTs it cross-origin to https://upload.localhost:PORT; Bob (a
// TCP client) receives the URL and fetches the same bytes, and the page
// shows the picture inline from there.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { RosterStore } from '../../src/storage/roster.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { el } from '../../src/xml/element.ts';
import { fetchUrl } from '../helpers/http.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const ARTIFACTS = new URL('../artifacts/', import.meta.url);

describe('web client shares a picture (HTTP upload)', { timeout: 120_000 }, () => {
  let ts: TestServer;
  let bob: TestClient;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    ts = await startServer({ http: { port: 0 }, https: { port: 0 } });
    await ts.addUser('alice', 'alice-pw');
    await ts.addUser('bob', 'bob-pw');
    const rosters = ts.server.store(RosterStore);
    await rosters.setItem('alice@localhost', { jid: 'bob@localhost', name: 'Bob', subscription: 'both', groups: [] });
    await rosters.setItem('bob@localhost', { jid: 'alice@localhost', name: 'Alice', subscription: 'both', groups: [] });
    bob = await connect({ port: ts.port, username: 'bob', password: 'bob-pw', resource: 'tcp' });
    await bob.send(el('presence'));
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    // Chromium resolves *.localhost to loopback itself; the self-signed certificate is accepted.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
  });
  after(async () => {
    await browser?.close();
    await bob?.stop();
    await ts?.stop();
  });

  it('uploads a picture from Converse; the other user receives its URL and the same bytes', async () => {
    const picture = await sharp({
      create: { width: 64, height: 48, channels: 3, background: { r: 20, g: 120, b: 220 } },
    })
      .png()
      .toBuffer();
    const https = ts.server.service(HttpService)!.ports.https;
    await page.goto(`https://127.0.0.1:${https}/`);
    await page.fill('#converse-login-jid', 'alice');
    await page.fill('#converse-login-password', 'alice-pw');
    await page.click('converse-login-form button[type="submit"]');
    await page.locator('converse-roster a.open-chat', { hasText: 'Bob' }).click({ timeout: 20_000 });

    // The paperclip appears once Converse found the upload service through disco.
    const input = page.locator('converse-chat input.fileupload');
    await input.waitFor({ state: 'attached', timeout: 20_000 });
    await input.setInputFiles({ name: 'blue.png', mimeType: 'image/png', buffer: picture });

    const message = await bob.waitFor(
      (s) => s.is('message') && /^https:\/\/upload\.localhost:/.test(s.getChildText('body') ?? ''),
      'the picture URL from the browser',
      30_000,
    );
    assert.match(message.attrs.from, /^alice@localhost\//);
    const url = message.getChildText('body')!;
    assert.match(url, new RegExp(`^https://upload\\.localhost:${https}/upload/[\\w-]{24}/blue\\.png$`));
    assert.equal(message.getChild('x', 'jabber:x:oob')?.getChildText('url'), url);
    const got = await fetchUrl(url);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(picture), 'Bob fetches the bytes Alice picked');
    assert.equal(got.headers['content-type'], 'image/png');

    // Alice's page shows the picture, loaded from the upload service.
    const shown = page.locator(`converse-chat img[src="${url}"]`);
    await shown.waitFor({ timeout: 20_000 });
    await page.waitForFunction(
      (src) => Array.from(document.querySelectorAll('img')).some((i) => i.src === src && i.complete && i.naturalWidth === 64),
      url,
      { timeout: 20_000 },
    );

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('web-client-upload.png', ARTIFACTS).pathname });
    assert.deepEqual(
      pageErrors.filter((e) => /Content Security Policy|Refused to|CORS/.test(e)),
      [],
    );
  });
});
