// OMEMO end to end in real browsers: two headless Chromium sessions load the
// built-in Converse.js page (OMEMO on by default), log in over wss://, and
// exchange OMEMO-encrypted messages. Each shows the other's decrypted text,
// the server only ever carries ciphertext, and no page logs an error about
// PEP (device lists and bundles are PEP nodes).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { RosterStore } from '../../src/storage/roster.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

// OMEMO 2 (XEP-0384 0.8+) and the older axolotl namespace; Converse publishes both.
const DEVICE_LISTS = ['urn:xmpp:omemo:2:devices', 'eu.siacs.conversations.axolotl.devicelist'];
const ARTIFACTS = new URL('../artifacts/', import.meta.url);

interface Session {
  context: BrowserContext;
  page: Page;
  errors: string[];
}

describe('OMEMO between two Converse.js sessions', { timeout: 240_000 }, () => {
  let ts: TestServer;
  let browser: Browser;
  let url: string;
  const sessions: Session[] = [];

  before(async () => {
    ts = await startServer({ http: { port: 0 }, https: { port: 0 } });
    await ts.addUser('alice', 'alice-pw');
    await ts.addUser('bob', 'bob-pw');
    const rosters = ts.server.store(RosterStore);
    await rosters.setItem('alice@localhost', { jid: 'bob@localhost', name: 'Bob', subscription: 'both', groups: [] });
    await rosters.setItem('bob@localhost', { jid: 'alice@localhost', name: 'Alice', subscription: 'both', groups: [] });
    url = `https://127.0.0.1:${ts.server.service(HttpService)!.ports.https}/`;
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
  });

  after(async () => {
    await browser?.close();
    await ts?.stop();
  });

  async function login(user: string): Promise<Session> {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(url);
    await page.fill('#converse-login-jid', user);
    await page.fill('#converse-login-password', `${user}-pw`);
    await page.click('converse-login-form button[type="submit"]');
    const s = { context, page, errors };
    sessions.push(s);
    return s;
  }

  /** Waits until the server holds the user's OMEMO device list (Converse publishes it after login). */
  async function deviceListOf(user: string): Promise<void> {
    const store = ts.server.storage.pubsub('pep');
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      for (const node of DEVICE_LISTS) if ((await store.items(user, node)).length > 0) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${user} never published an OMEMO device list`);
  }

  async function openChat(s: Session, contact: string): Promise<void> {
    // A contact with unread messages is listed twice (its group and "New messages").
    await s.page.locator('converse-roster a.open-chat', { hasText: contact }).first().click({ timeout: 30_000 });
  }

  async function send(s: Session, contact: string, text: string): Promise<void> {
    await openChat(s, contact);
    const textarea = s.page.locator('converse-chat textarea.chat-textarea');
    await textarea.fill(text);
    await textarea.press('Enter');
  }

  it('exchanges encrypted messages that both sides read in clear', async () => {
    const alice = await login('alice');
    const bob = await login('bob');
    await deviceListOf('alice@localhost');
    await deviceListOf('bob@localhost');

    // Every message on the wire must be OMEMO: watch what the server routes.
    const bodies: string[] = [];
    const seen = (stanza: { name: string; getChild(n: string, ns?: string): unknown; getChildText(n: string): string | null; toString(): string }) => {
      const encrypted = stanza.getChild('encrypted', 'urn:xmpp:omemo:2') ?? stanza.getChild('encrypted', 'eu.siacs.conversations.axolotl');
      if (stanza.name === 'message' && encrypted) bodies.push(stanza.getChildText('body') ?? '');
    };
    const host = ts.server.hosts.get('localhost')!;
    const unhook = host.hook('message/bare', (e) => void seen(e.stanza), 1000);
    const unhookFull = host.hook('message/full', (e) => void seen(e.stanza), 1000);
    try {
      await send(alice, 'Bob', 'Secret hello from Alice');
      await openChat(bob, 'Alice');
      await bob.page.locator('converse-chat .chat-msg__text', { hasText: 'Secret hello from Alice' }).waitFor({ timeout: 60_000 });
      await send(bob, 'Alice', 'Secret answer from Bob');
      await alice.page.locator('converse-chat .chat-msg__text', { hasText: 'Secret answer from Bob' }).waitFor({ timeout: 60_000 });
    } catch (err) {
      // What each page said, to see why a message never showed.
      for (const [i, s] of sessions.entries()) console.error(`page ${i} errors:\n${s.errors.join('\n')}`);
      throw err;
    } finally {
      unhook();
      unhookFull();
    }
    // Both messages crossed the server encrypted, their text nowhere in clear.
    assert.ok(bodies.length >= 2, `encrypted messages routed: ${bodies.length}`);
    for (const b of bodies) assert.doesNotMatch(b, /Secret/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await alice.page.screenshot({ path: new URL('omemo-alice.png', ARTIFACTS).pathname });
    for (const s of sessions) {
      assert.deepEqual(
        s.errors.filter((e) => /pubsub|PEP|OMEMO|omemo|devicelist|bundle/i.test(e)),
        [],
      );
    }
  });
});
