// XMPP over WebSocket (RFC 7395) and the HTTP side of browser access:
// real clients (@xmpp/client over ws:// and wss://, raw `ws` sockets for
// hostile input) against a real server on 127.0.0.1.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { Jid } from '../../src/jid/jid.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { WsFraming } from '../../src/websocket/ws-framing.ts';
import { el } from '../../src/xml/element.ts';
import { streamErrorElement } from '../../src/xml/errors.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const VERSION = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
const MAX_STANZA = 10_000;
const OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

/** A raw WebSocket peer that records every message and how the socket ended. */
class RawWs {
  readonly messages: string[] = [];
  private readonly waiters: Array<() => void> = [];
  closeCode: number | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.messages.push(d.toString());
      this.notify();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.notify();
    });
    ws.on('error', () => {});
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static open(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<RawWs> {
    const ws = new WebSocket(url, 'xmpp', options);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new RawWs(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  /** Resolves when pred holds over what has arrived so far. */
  until<T>(pred: () => T | null | undefined | false, what: string, ms = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}; got ${this.messages.join(' | ')}`)),
        ms,
      );
      const check = () => {
        const v = pred();
        if (v) {
          clearTimeout(timer);
          resolve(v);
        } else this.waiters.push(check);
      };
      check();
    });
  }

  message(re: RegExp, what = String(re)): Promise<number> {
    return this.until(() => {
      const i = this.messages.findIndex((m) => re.test(m));
      return i >= 0 ? i + 1 : null;
    }, what).then((n) => n - 1);
  }

  closed(): Promise<number> {
    return this.until(() => this.closeCode, 'socket close');
  }
}

/** Polls server-side state that has no event of its own. */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** Status code of a WebSocket handshake that the server refuses. */
function refusedStatus(url: string, protocols: string[], origin?: string): Promise<number> {
  const ws = new WebSocket(url, protocols, origin ? { origin } : {});
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once('open', () => {
      ws.close();
      reject(new Error('the handshake was accepted'));
    });
    ws.once('error', () => {});
  });
}

function httpGet(
  port: number,
  path: string,
  host?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: host ? { host } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('XMPP over WebSocket', { timeout: 60_000 }, () => {
  let ts: TestServer;
  let http: HttpService;
  let wsUrl: string;
  let tcp: TestClient;

  /** The TCP user can still talk to itself through the server. */
  async function tcpAlive(tag: string): Promise<void> {
    await tcp.send(el('message', { to: tcp.jid, type: 'chat' }, el('body', null, tag)));
    await tcp.waitFor((s) => s.is('message') && s.getChildText('body') === tag, tag);
  }

  before(async () => {
    ts = await startServer({
      c2s: { requireTls: false },
      http: { port: 0, allowedOrigins: ['https://friend.example'] },
      https: { port: 0 },
      limits: { maxStanzaSize: MAX_STANZA, websocketPingInterval: 0.25 },
    });
    http = ts.server.service(HttpService)!;
    wsUrl = `ws://127.0.0.1:${http.ports.http}/xmpp-websocket`;
    await ts.addUser('alice', 'pw-a');
    await ts.addUser('bob', 'pw-b');
    tcp = await connect({ port: ts.port, username: 'bob', password: 'pw-b', resource: 'tcp' });
  });
  after(async () => {
    await tcp.stop();
    await ts.stop();
  });

  it('logs in over ws:// with SCRAM-SHA-1 and exchanges messages with a TCP client', async () => {
    const web = await connect({
      port: 0,
      websocketUrl: wsUrl,
      username: 'alice',
      password: 'pw-a',
      mechanism: 'SCRAM-SHA-1',
    });
    try {
      const session = ts.server.sessions.get(Jid.parse(web.jid));
      assert.equal(session?.transport, 'websocket');
      assert.equal(session?.secure, false);
      await web.send(
        el('message', { to: tcp.jid, type: 'chat', id: 'w1' }, el('body', null, 'hello from the browser')),
      );
      const got = await tcp.waitFor((s) => s.is('message') && s.attrs.id === 'w1', 'message from ws');
      assert.equal(got.getChildText('body'), 'hello from the browser');
      assert.equal(got.attrs.from, web.jid);
      await tcp.send(
        el('message', { to: web.jid, type: 'chat', id: 't1' }, el('body', null, 'hello from tcp')),
      );
      const back = await web.waitFor((s) => s.is('message') && s.attrs.id === 't1', 'message from tcp');
      assert.equal(back.getChildText('body'), 'hello from tcp');
      assert.equal(back.attrs.from, tcp.jid);
    } finally {
      await web.stop();
    }
  });

  it('logs in over wss:// on the HTTPS port as a secure session', async () => {
    const url = `wss://127.0.0.1:${http.ports.https}/xmpp-websocket`;
    const web = await connect({
      port: 0,
      websocketUrl: url,
      username: 'alice',
      password: 'pw-a',
      resource: 'wss',
    });
    try {
      assert.equal(ts.server.sessions.get(Jid.parse(web.jid))?.secure, true);
      await web.send(el('message', { to: tcp.jid, type: 'chat', id: 's1' }, el('body', null, 'over TLS')));
      await tcp.waitFor((s) => s.is('message') && s.attrs.id === 's1', 'message over wss');
    } finally {
      await web.stop();
    }
  });

  it('frames the stream per RFC 7395: <open/>, namespaced features, <close/> answered', async () => {
    const raw = await RawWs.open(wsUrl);
    raw.ws.send(OPEN);
    const open = raw.messages[await raw.message(/^<open /)]!;
    assert.match(open, /xmlns="urn:ietf:params:xml:ns:xmpp-framing"/);
    assert.match(open, /from="localhost"/);
    assert.match(open, /version="1.0"/);
    const features = raw.messages[await raw.message(/^<stream:features/)]!;
    assert.match(features, /xmlns:stream="http:\/\/etherx.jabber.org\/streams"/);
    assert.match(features, /SCRAM-SHA-1/);
    raw.ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    await raw.message(/^<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"\/>$/);
    assert.equal(await raw.closed(), 1000);
  });

  it('refuses a handshake without the xmpp subprotocol', async () => {
    assert.equal(await refusedStatus(wsUrl, []), 400);
    assert.equal(await refusedStatus(wsUrl, ['chat', 'mqtt']), 400);
  });

  it('refuses pages from other origins and lets our own and configured ones in', async () => {
    assert.equal(await refusedStatus(wsUrl, ['xmpp'], 'https://evil.example'), 403);
    assert.equal(await refusedStatus(wsUrl, ['xmpp'], 'null'), 403);
    for (const origin of [
      `http://localhost:${http.ports.http}`,
      `https://localhost:${http.ports.https}`,
      'https://friend.example',
    ]) {
      const raw = await RawWs.open(wsUrl, { origin });
      raw.ws.close();
      await raw.closed();
    }
  });

  it('answers an over-size frame with a policy-violation stream error, and keeps serving', async () => {
    const raw = await RawWs.open(wsUrl);
    raw.ws.send(OPEN);
    await raw.message(/^<stream:features/);
    raw.ws.send(
      `<message xmlns='jabber:client' to='bob@localhost'><body>${'x'.repeat(MAX_STANZA)}</body></message>`,
    );
    const errorAt = await raw.message(/<stream:error xmlns:stream="http:\/\/etherx.jabber.org\/streams">/);
    assert.match(raw.messages[errorAt]!, /<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    assert.ok((await raw.message(/^<close /)) > errorAt, 'the stream error comes before <close/>');
    assert.equal(await raw.closed(), 1000);
    await tcpAlive('after an over-size frame');
  });

  it('cuts a frame far beyond the limit with close code 1009, and keeps serving', async () => {
    const raw = await RawWs.open(wsUrl);
    raw.ws.send(OPEN);
    await raw.message(/^<stream:features/);
    raw.ws.send(`<message xmlns='jabber:client'><body>${'x'.repeat(MAX_STANZA + 100_000)}</body></message>`);
    assert.equal(await raw.closed(), 1009);
    await tcpAlive('after a huge frame');
  });

  it('answers restricted XML and split elements with stream errors', async () => {
    for (const [frame, condition] of [
      ['<!DOCTYPE x [<!ENTITY a "b">]><message/>', 'restricted-xml'],
      ["<message xmlns='jabber:client'><body>half", 'not-well-formed'],
      ['</ws-message><message/>', 'not-well-formed'],
    ]) {
      const raw = await RawWs.open(wsUrl);
      raw.ws.send(OPEN);
      await raw.message(/^<stream:features/);
      raw.ws.send(frame!);
      await raw.message(new RegExp(`<stream:error[^>]*><${condition} `), `${condition} for ${frame}`);
      await raw.closed();
    }
    await tcpAlive('after bad frames');
  });

  it('drops a peer that stops answering pings', async () => {
    const raw = await RawWs.open(wsUrl, { autoPong: false });
    raw.ws.send(OPEN);
    await raw.message(/^<stream:features/);
    assert.equal(await raw.closed(), 1006);
  });

  it('advertises its WebSocket URLs through host-meta (XEP-0156)', async () => {
    const { http: plain, https: tls } = http.ports;
    const xml = await httpGet(plain!, '/.well-known/host-meta', `chat.example.org:${plain}`);
    assert.equal(xml.status, 200);
    assert.match(String(xml.headers['content-type']), /^application\/xrd\+xml/);
    assert.equal(xml.headers['access-control-allow-origin'], '*');
    assert.match(xml.body, /<XRD xmlns='http:\/\/docs.oasis-open.org\/ns\/xri\/xrd-1.0'>/);
    const links = [
      ...xml.body.matchAll(/<Link rel='urn:xmpp:alt-connections:websocket' href='([^']+)'\/>/g),
    ].map((m) => m[1]);
    const expected = [
      `wss://chat.example.org:${tls}/xmpp-websocket`,
      `ws://chat.example.org:${plain}/xmpp-websocket`,
    ];
    assert.deepEqual(links, expected);

    const json = await httpGet(plain!, '/.well-known/host-meta.json');
    assert.match(String(json.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(json.body), {
      links: [
        { rel: 'urn:xmpp:alt-connections:websocket', href: `wss://127.0.0.1:${tls}/xmpp-websocket` },
        { rel: 'urn:xmpp:alt-connections:websocket', href: `ws://127.0.0.1:${plain}/xmpp-websocket` },
      ],
    });
    // A Host header that is not a host name is not echoed into the document.
    const odd = await httpGet(plain!, '/.well-known/host-meta.json', "x'><script>");
    assert.match(odd.body, /wss:\/\/localhost:/);
  });

  it('reports public status as JSON', async () => {
    const res = await httpGet(http.ports.http!, '/status');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const status = JSON.parse(res.body);
    assert.equal(status.version, VERSION);
    assert.equal(status.sessions, ts.server.sessions.count);
    assert.equal(status.sessions, 1); // the TCP client
    assert.ok(Number.isInteger(status.uptime) && status.uptime >= 0);
    assert.deepEqual(status.msn, { enabled: false });
  });

  it('serves the web client with safe headers and no path traversal', async () => {
    const port = http.ports.http!;
    const page = await httpGet(port, '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.match(page.body, /"default_domain":"localhost"/);
    assert.match(page.body, /"view_mode":"fullscreen"/);
    const js = await httpGet(port, '/converse/converse.min.js');
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    for (const path of [
      '/converse/../../package.json',
      '/converse/..%2f..%2fpackage.json',
      '/converse/%2e%2e/package.json',
      '/converse/',
    ]) {
      assert.equal((await httpGet(port, path)).status, 404, path);
    }
    assert.equal((await httpGet(port, '/xmpp-websocket')).status, 426);
  });
});

describe('WsFraming', () => {
  it('sends a see-other-host redirect as <close see-other-uri/> and stanzas with their namespace', () => {
    const sent: string[] = [];
    const socket = Object.assign(new EventEmitter(), {
      OPEN: 1,
      readyState: 1,
      send: (s: string) => sent.push(s),
      close: () => {},
      terminate: () => {},
    });
    const framing = new WsFraming(socket as unknown as WebSocket, '127.0.0.1', true, {
      maxStanzaSize: 1000,
      maxDepth: 8,
    });
    framing.send(el('message', { to: 'a@localhost' }));
    framing.send(streamErrorElement('see-other-host', undefined, 'wss://other.example/xmpp-websocket'));
    framing.closeStream();
    assert.deepEqual(sent, [
      '<message to="a@localhost" xmlns="jabber:client"/>',
      '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" see-other-uri="wss://other.example/xmpp-websocket"/>',
    ]);
  });
});

describe('WebSocket limits', { timeout: 30_000 }, () => {
  it('refuses connections over the per-IP limit with 429', async () => {
    const ts = await startServer({ http: { port: 0 }, limits: { maxConnectionsPerIp: 2 } });
    try {
      const service = ts.server.service(HttpService)!;
      const url = `ws://127.0.0.1:${service.ports.http}/xmpp-websocket`;
      const open = [await RawWs.open(url), await RawWs.open(url)];
      assert.equal(await refusedStatus(url, ['xmpp']), 429);
      open[0]!.ws.close();
      await open[0]!.closed();
      await until(() => service.sessions.size === 1, 'the server to see the close');
      // The slot is free again once a connection has gone.
      const again = await RawWs.open(url);
      for (const r of [again, open[1]!]) {
        r.ws.close();
        await r.closed();
      }
    } finally {
      await ts.stop();
    }
  });

  it('sends browsers to HTTPS when logins need TLS', async () => {
    const ts = await startServer({ http: { port: 0 }, https: { port: 0 } });
    try {
      const ports = ts.server.service(HttpService)!.ports;
      const res = await httpGet(ports.http!, '/', `localhost:${ports.http}`);
      assert.equal(res.status, 302);
      assert.equal(res.headers.location, `https://localhost:${ports.https}/`);
    } finally {
      await ts.stop();
    }
  });
});
