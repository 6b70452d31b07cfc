// Plain ws:// when logins need TLS (c2s.requireTls): the client is told by a
// stream error where to connect, host-meta offers only wss://, and behind a
// trusted reverse proxy (http.trustedProxies) the forwarded client address
// counts for limits and logs and the proxy's TLS counts as TLS. Headers from
// anyone else change nothing.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { HttpService } from '../../src/websocket/http-service.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

/** Opens a WebSocket, sends the stream open, and collects messages until the socket closes or `until` matches. */
function stream(url: string, headers: Record<string, string>, until: RegExp): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'xmpp', { headers });
    const got: string[] = [];
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`timed out: ${got.join(' | ')}`));
    }, 10_000);
    const done = () => {
      clearTimeout(timer);
      resolve(got);
    };
    ws.on('open', () => ws.send(OPEN));
    ws.on('message', (d) => {
      got.push(String(d));
      if (until.test(String(d))) {
        ws.close();
        done();
      }
    });
    ws.on('close', done);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      res.resume();
      resolve([`HTTP ${res.statusCode}`]);
    });
    ws.on('error', () => {});
  });
}

function getJson(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ links: Array<{ href: string }> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('plain WebSocket and reverse proxies', () => {
  let direct: TestServer;
  let proxied: TestServer;
  let ports: { http: number; https: number };
  let proxiedHttp: number;

  before(async () => {
    direct = await startServer({ http: { port: 0 }, https: { port: 0 } });
    const p = direct.server.service(HttpService)!.ports;
    ports = { http: p.http!, https: p.https! };
    proxied = await startServer({
      http: { port: 0, trustedProxies: ['127.0.0.1'] },
      https: { port: false },
      limits: { maxConnectionsPerIp: 1 },
    });
    await proxied.addUser('alice', 'pw');
    proxiedHttp = proxied.server.service(HttpService)!.ports.http!;
  });
  after(async () => {
    await direct.stop();
    await proxied.stop();
  });

  it('tells a ws:// client to use wss:// with a stream error, instead of empty features', async () => {
    const got = await stream(`ws://127.0.0.1:${ports.http}/xmpp-websocket`, {}, /<close /);
    const error = got.find((m) => m.includes('policy-violation'));
    assert.ok(error, got.join(' | '));
    assert.match(error!, new RegExp(`connect to wss://127\\.0\\.0\\.1:${ports.https}/xmpp-websocket`));
    assert.equal(
      got.some((m) => m.includes('<stream:features')),
      false,
    );
  });

  it('host-meta offers only the wss:// endpoint when logins need TLS', async () => {
    const meta = await getJson(ports.http, '/.well-known/host-meta.json', {
      host: `chat.example.org:${ports.http}`,
    });
    assert.deepEqual(
      meta.links.map((l) => l.href),
      [`wss://chat.example.org:${ports.https}/xmpp-websocket`],
    );
  });

  it('ignores forwarding headers from a peer that is not a trusted proxy', async () => {
    const got = await stream(
      `ws://127.0.0.1:${ports.http}/xmpp-websocket`,
      { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.9' },
      /<close /,
    );
    assert.ok(got.some((m) => m.includes('policy-violation')));
  });

  it('behind a trusted proxy: the forwarded TLS counts, and the forwarded address is the client', async () => {
    const headers = (ip: string) => ({
      'x-forwarded-for': ip,
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'chat.example.org',
      origin: 'https://chat.example.org',
    });
    const url = `ws://127.0.0.1:${proxiedHttp}/xmpp-websocket`;
    // Features with SASL mechanisms: the proxy's TLS is the client's.
    const a = new WebSocket(url, 'xmpp', { headers: headers('203.0.113.7') });
    const inbox: string[] = [];
    const waiters: Array<() => void> = [];
    a.on('message', (d) => {
      inbox.push(String(d));
      for (const w of waiters.splice(0)) w();
    });
    const next = (re: RegExp) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out for ${re}: ${inbox.join(' | ')}`)),
          10_000,
        );
        const check = () => {
          const i = inbox.findIndex((m) => re.test(m));
          if (i < 0) return void waiters.push(check);
          clearTimeout(timer);
          resolve(inbox.splice(0, i + 1).pop()!);
        };
        check();
      });
    await new Promise<void>((resolve, reject) => {
      a.on('open', () => resolve());
      a.on('unexpected-response', (_r, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    a.send(OPEN);
    assert.match(await next(/<stream:features/), /<mechanism>PLAIN<\/mechanism>/);
    const plain = Buffer.from('\0alice\0pw').toString('base64');
    a.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
    await next(/<success/);
    a.send(OPEN);
    await next(/<bind/);
    a.send(
      "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>",
    );
    await next(/id="b"/);
    // The session is the client's: its address, and TLS (the proxy's).
    const sessions = (await proxied.server.statusSections.collect()).sessions!;
    assert.deepEqual(sessions.list, ['alice@localhost/web (websocket, tls, 203.0.113.7)']);
    // Limits count per forwarded address (maxConnectionsPerIp: 1): another client gets in, the same one does not.
    const other = await stream(url, headers('203.0.113.8'), /<stream:features/);
    assert.ok(
      other.some((m) => m.includes('<mechanisms')),
      other.join(' | '),
    );
    assert.deepEqual(await stream(url, headers('203.0.113.7'), /<stream:features/), ['HTTP 429']);
    a.close();
    const meta = await getJson(proxiedHttp, '/.well-known/host-meta.json', headers('203.0.113.7'));
    assert.deepEqual(
      meta.links.map((l) => l.href),
      ['wss://chat.example.org/xmpp-websocket'],
    );
  });
});
