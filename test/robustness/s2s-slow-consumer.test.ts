// A remote server that stops reading what the link to it carries (a
// hostile peer, or the server of a remote room occupant that is stuck):
// the same bound as for clients (c2s/slow-consumer.ts). The local client
// feeding the link is paused, the link is closed with policy-violation
// after limits.slowConsumerTimeout, and the client is served again.
//
// The remote server is a small scripted peer on loopback: it opens the
// stream, offers STARTTLS and dialback, accepts our dialback key, and then
// never reads again.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { type RawSocket, rawLogin } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REMOTE = 'stuck.example';
const header = (id: string) =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${REMOTE}' to='localhost' id='${id}' version='1.0'>`;

/** A peer that authenticates our link, then stops reading; reports its TLS socket. */
function stuckPeer(cert: string, key: string) {
  const sockets: Socket[] = [];
  let linked: (s: TLSSocket) => void;
  const stuck = new Promise<TLSSocket>((r) => {
    linked = r;
  });
  let taken = false;
  const server: NetServer = createServer((raw) => {
    sockets.push(raw);
    // One link only: later ones (after ours is closed) fail at once and their stanzas bounce.
    if (taken) {
      raw.destroy();
      return;
    }
    taken = true;
    let input = '';
    const onPlain = (d: Buffer) => {
      input += d;
      if (input.includes('<stream:stream') && !input.includes('#header-sent')) {
        input += '#header-sent';
        raw.write(`${header('s1')}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`);
      }
      if (input.includes('<starttls')) {
        raw.off('data', onPlain);
        raw.write("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        const tls = new TLSSocket(raw, { isServer: true, cert, key });
        sockets.push(tls);
        let secured = '';
        const onTls = (d: Buffer) => {
          secured += d;
          if (secured.includes('<stream:stream') && !secured.includes('#header-sent')) {
            secured += '#header-sent';
            tls.write(`${header('s2')}<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`);
          }
          if (/<db:result [^>]*>[^<]+<\/db:result>/.test(secured)) {
            tls.off('data', onTls);
            tls.write(`<db:result xmlns:db='jabber:server:dialback' type='valid' from='${REMOTE}' to='localhost'/>`);
            // From now on nothing is read: the kernel's buffers fill, then the server's.
            tls.pause();
            linked(tls);
          }
        };
        tls.on('data', onTls);
        tls.on('error', () => {});
      }
    };
    raw.on('data', onPlain);
    raw.on('error', () => {});
  });
  return { server, sockets, stuck };
}

describe('a remote server that does not read', () => {
  let ts: TestServer;
  let peer: ReturnType<typeof stuckPeer>;
  const clients: RawSocket[] = [];

  before(async () => {
    // The peer uses the certificate the first server generates (any certificate will do: no secureAuth).
    const probe = await startServer();
    const cert = readFileSync(join(probe.dir, 'certs', 'localhost.crt'), 'utf8');
    const key = readFileSync(join(probe.dir, 'certs', 'localhost.key'), 'utf8');
    await probe.stop();
    peer = stuckPeer(cert, key);
    await new Promise<void>((r) => peer.server.listen(0, '127.0.0.1', r));
    const port = (peer.server.address() as { port: number }).port;
    ts = await startServer({
      s2s: { port: 0, routes: { [REMOTE]: `127.0.0.1:${port}` } },
      limits: { outboundQueueSize: 256 * 1024, outboundQueueMaxSize: 64 * 1024 * 1024, slowConsumerTimeout: 3 },
      log: { level: 'info' },
    });
    await ts.addUser('sender', 'pw');
    await ts.addUser('witness', 'pw');
  });
  after(async () => {
    for (const c of clients) c.destroy();
    for (const s of peer?.sockets ?? []) s.destroy();
    await new Promise((r) => peer?.server.close(r));
    await ts?.stop();
  });

  it('pauses the client feeding the link, closes the link with policy-violation, then serves the client again', async () => {
    const sender = await rawLogin(ts.port, 'sender', 'pw', 's');
    const witness = await rawLogin(ts.port, 'witness', 'pw', 'w');
    clients.push(sender, witness);
    const body = 'z'.repeat(4000);
    const chunk = Array.from({ length: 100 }, (_, i) => `<message to='u@${REMOTE}' id='m${i}' type='chat'><body>${body}</body></message>`).join('');
    sender.write(chunk);
    const link = await peer.stuck;
    const closed = /WARN .*closing a server link that does not read .*to=stuck\.example/;
    // Up to ~40 MB toward the link, far more than the kernel's buffers and the queue limit.
    let written = 1;
    const deadline = Date.now() + 90_000;
    while (!ts.logs.some((l) => closed.test(l))) {
      assert.ok(Date.now() < deadline, 'the link was never closed');
      if (written < 100 && sender.unsent < 512 * 1024) {
        sender.write(chunk);
        written++;
      } else await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(ts.logs.find((l) => closed.test(l))!, /why="over 262144 bytes waiting for 3 s"/);
    // Meanwhile and after, other users are served.
    witness.write(`<iq type='get' id='w1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await witness.waitFor(/id="w1"/, 10_000);
    // The peer, reading again, finds the policy-violation stream error and the end of the stream.
    let seen = '';
    link.on('data', (d) => {
      seen += d;
    });
    link.resume();
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no policy-violation: ${seen.slice(-300)}`)), 30_000);
      const check = () => {
        if (/<stream:error><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>.*<\/stream:error><\/stream:stream>/s.test(seen)) {
          clearTimeout(t);
          resolve();
        } else setTimeout(check, 50);
      };
      check();
    });
    // The sender was slowed, not cut off: a ping behind its flood is answered once the link is gone.
    sender.input = '';
    sender.write(`<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await sender.waitFor(/id="after"/, 60_000);
    assert.equal(sender.closed, false);
  });
});
