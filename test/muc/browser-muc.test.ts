// Group chat from the built-in web client: headless Chromium loads
// Converse.js from https://127.0.0.1:<https.port>/, logs in over wss://,
// opens a room at conference.localhost through Converse's "Add groupchat"
// dialog by its name alone (the page tells Converse the MUC service), and
// talks with a TCP client in the room.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { type Browser, chromium, type Page } from 'playwright-core';
import { HttpService } from '../../src/websocket/http-service.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const ARTIFACTS = new URL('../artifacts/', import.meta.url);
const ROOM = 'lounge@conference.localhost';
const MUC = 'http://jabber.org/protocol/muc';

describe('group chat in the web client', { timeout: 120_000 }, () => {
  let ts: TestServer;
  let bob: TestClient;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    ts = await startServer({ http: { port: 0 }, https: { port: 0 } });
    await ts.addUser('alice', 'alice-pw');
    await ts.addUser('bob', 'bob-pw');
    bob = await connect({ port: ts.port, username: 'bob', password: 'bob-pw', resource: 'tcp' });
    await bob.send(xml('presence'));
    // Bob opens the room (an instant room) before Alice arrives.
    await bob.send(xml('presence', { to: `${ROOM}/Bob` }, xml('x', { xmlns: MUC })));
    await bob.waitFor((s) => s.is('presence') && s.attrs.from === `${ROOM}/Bob`, 'room created', 10_000);
    await bob.send(
      xml(
        'iq',
        { type: 'set', to: ROOM, id: 'instant' },
        xml('query', { xmlns: `${MUC}#owner` }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' })),
      ),
    );
    const unlocked = await bob.waitFor((s) => s.is('iq') && s.attrs.id === 'instant', 'instant room', 10_000);
    assert.equal(unlocked.attrs.type, 'result');
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

  it('joins a room from Converse and talks with a TCP client there', async () => {
    const https = ts.server.service(HttpService)!.ports.https;
    await page.goto(`https://127.0.0.1:${https}/`);
    await page.fill('#converse-login-jid', 'alice');
    await page.fill('#converse-login-password', 'alice-pw');
    await page.click('converse-login-form button[type="submit"]');

    // "Groupchats" → ⋮ → "Add groupchat": the room by its name alone.
    await page.locator('converse-rooms-list converse-dropdown button').click({ timeout: 20_000 });
    await page.locator('converse-rooms-list .show-add-muc-modal').click();
    const modal = page.locator('converse-add-muc-modal');
    await modal.locator('input[name="chatroom"]').fill('lounge');
    await modal.locator('input[name="nickname"]').fill('Alice');
    await modal.locator('input[type="submit"][name="join"]').click();

    // Bob sees Alice enter, as a participant.
    const entered = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.from === `${ROOM}/Alice` && !s.attrs.type,
      'alice enters',
      20_000,
    );
    assert.equal(entered.getChild('x', `${MUC}#user`).getChild('item').attrs.role, 'participant');

    const textarea = page.locator('converse-muc textarea.chat-textarea');
    await textarea.fill('Hello room, Alice here in a browser');
    await textarea.press('Enter');
    const got = await bob.waitFor(
      (s) =>
        s.is('message') &&
        s.attrs.type === 'groupchat' &&
        s.getChildText('body') === 'Hello room, Alice here in a browser',
      'message from the browser',
      10_000,
    );
    assert.equal(got.attrs.from, `${ROOM}/Alice`);

    await bob.send(
      xml('message', { to: ROOM, type: 'groupchat' }, xml('body', {}, 'Hi Alice, Bob here over TCP')),
    );
    await page
      .locator('converse-muc .chat-msg__text', { hasText: 'Hi Alice, Bob here over TCP' })
      .waitFor({ timeout: 10_000 });

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('web-client-groupchat.png', ARTIFACTS).pathname });
    assert.deepEqual(
      pageErrors.filter((e) => /Content Security Policy|Refused to/.test(e)),
      [],
    );
  });
});
