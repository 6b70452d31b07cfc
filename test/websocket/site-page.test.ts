// The built-in page is the site's own: its name, a footer about this server
// that points MSN users at the transport, and not one request to another
// site (the CSP allows images from the page's own origin, data:, blob: and
// this server's own domains only, and nothing was refused).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { servedDomains } from '../../src/config/domains.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const ARTIFACTS = new URL('../artifacts/', import.meta.url);

describe("the built-in page is the site's own", { timeout: 120_000 }, () => {
  let ts: TestServer;
  let browser: Browser;

  before(async () => {
    ts = await startServer({
      http: { port: 0, siteName: 'Fern Street Chat' },
      https: { port: 0 },
      msn: { enabled: true, server: '127.0.0.1:1863' },
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
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

  it('shows its name and the MSN transport, and asks nothing of other sites', async () => {
    const https = ts.server.service(HttpService)!.ports.https!;
    const origin = `https://127.0.0.1:${https}`;
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1200, height: 800 },
    });
    const page = await context.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    const response = await page.goto(`${origin}/`);
    // Images only from the page itself, data:/blob: URLs, and this server's own domains (the upload service).
    const imgSrc = /img-src ([^;]+)/.exec(response!.headers()['content-security-policy']!)![1]!.split(' ');
    const own = servedDomains(ts.config);
    for (const src of imgSrc) {
      assert.ok(["'self'", 'data:', 'blob:'].includes(src) || own.includes(new URL(src).hostname), `img-src ${src}`);
    }
    await page.locator('#converse-login-jid').waitFor({ timeout: 30_000 });
    assert.equal(await page.title(), 'Fern Street Chat');
    await page.locator('converse-brand-logo', { hasText: 'Fern Street Chat' }).waitFor({ timeout: 10_000 });
    const msn = page.locator('converse-footer .site-msn');
    await msn.waitFor({ timeout: 10_000 });
    assert.match(await msn.innerText(), /MSN transport, msn\.localhost/);
    assert.equal(await page.locator('text=sponsors').count(), 0);
    // Nothing on the page leads to Converse's project (its About box stays closed: no navbar opens it).
    const away = page.locator('a[href*="conversejs.org"]:visible, a[href*="github.com"]:visible');
    assert.equal(await away.count(), 0);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('web-client-login.png', ARTIFACTS).pathname });
    const foreign = requests.filter(
      (u) => !u.startsWith(`${origin}/`) && !u.startsWith('data:') && !u.startsWith('blob:'),
    );
    assert.deepEqual(foreign, []);
    assert.deepEqual(
      problems.filter((e) => /Content Security Policy|Refused to/.test(e)),
      [],
    );
    await context.close();
  });
});
