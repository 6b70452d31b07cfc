// The built-in web client in a real browser: headless Chromium loads
// Converse.js from https://127.0.0.1:<https.port>/, logs in over wss:// with
// the default configuration (TLS required for logins) and chats through the
// UI with a TCP client.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { RosterStore } from '../../src/storage/roster.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { el } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const ARTIFACTS = new URL('../artifacts/', import.meta.url);

describe('web client in a browser', { timeout: 120_000 }, () => {
  let ts: TestServer;
  let bob: TestClient;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    ts = await startServer({ http: { port: 0 }, https: { port: 0 } });
    await ts.addUser('alice', 'alice-pw');
    await ts.addUser('bob', 'bob-pw');
    // Contacts already, so Converse lists Bob; the roster UI is the way in.
    const rosters = ts.server.store(RosterStore);
    await rosters.setItem('alice@localhost', {
      jid: 'bob@localhost',
      name: 'Bob',
      subscription: 'both',
      groups: [],
    });
    await rosters.setItem('bob@localhost', {
      jid: 'alice@localhost',
      name: 'Alice',
      subscription: 'both',
      groups: [],
    });
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
    // A fresh context: empty profile, and the server's self-signed certificate accepted.
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1200, height: 800 },
    });
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

  it('logs in with Converse and chats with a TCP client', async () => {
    const https = ts.server.service(HttpService)!.ports.https;
    await page.goto(`https://127.0.0.1:${https}/`);
    await page.fill('#converse-login-jid', 'alice');
    await page.fill('#converse-login-password', 'alice-pw');
    await page.click('converse-login-form button[type="submit"]');

    // Logged in: the roster shows Bob; open the chat from there.
    const contact = page.locator('converse-roster a.open-chat', { hasText: 'Bob' });
    await contact.click({ timeout: 20_000 });
    const textarea = page.locator('converse-chat textarea.chat-textarea');
    await textarea.fill('Hello Bob, this is Alice in a browser');
    await textarea.press('Enter');

    const got = await bob.waitFor(
      (s) => s.is('message') && s.getChildText('body') === 'Hello Bob, this is Alice in a browser',
      'message from the browser',
      10_000,
    );
    assert.match(got.attrs.from, /^alice@localhost\//);

    await bob.send(
      el('message', { to: got.attrs.from, type: 'chat' }, el('body', null, 'Hi Alice, Bob here over TCP')),
    );
    await page
      .locator('converse-chat .chat-msg__text', { hasText: 'Hi Alice, Bob here over TCP' })
      .waitFor({ timeout: 10_000 });

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('web-client-chat.png', ARTIFACTS).pathname });
    // The strict Content-Security-Policy must not have broken the client.
    assert.deepEqual(
      pageErrors.filter((e) => /Content Security Policy|Refused to/.test(e)),
      [],
    );
  });
});
