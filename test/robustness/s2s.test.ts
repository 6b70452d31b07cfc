// Malformed stanzas from another server: a raw s2s peer, really
// authenticated (dialback) as localhost, sends junk to b.test. The same
// shape rules as for clients apply (bad-request, jid-malformed), the
// errors travel back over federation to the sender, bad XML ends the link
// with a stream error, and both servers keep serving.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawS2SPeer } from '../s2s/raw-peer.ts';
import { assertCleanLogs, assertStillServing, nextId, Peer, stanzaErrorCondition, witnesses } from './peer.ts';

function s2s(ts: TestServer): S2SService {
  const s = ts.server.service(S2SService);
  assert.ok(s, 's2s service running');
  return s;
}

describe('robustness: malformed stanzas over server-to-server links', () => {
  let a: TestServer;
  let b: TestServer;
  let alice: Peer;
  let w: { a: Peer; b: Peer };
  let peer: RawS2SPeer;

  before(async () => {
    a = await startServer({ s2s: { port: 0, connectTimeout: 3 } });
    b = await startServer({ domain: 'b.test', s2s: { port: 0, connectTimeout: 3 } });
    a.config.s2s.routes['b.test'] = `127.0.0.1:${s2s(b).ports.starttls}`;
    b.config.s2s.routes.localhost = `127.0.0.1:${s2s(a).ports.starttls}`;
    await a.addUser('alice', 'pw');
    alice = await Peer.login(a, 'alice', 'x');
    w = await witnesses(a);
    peer = new RawS2SPeer('localhost', 'b.test');
    const verdict = await peer.authenticate(s2s(b).ports.starttls!, (id) => s2s(a).keys.key('b.test', 'localhost', id));
    assert.equal(verdict.attrs.type, 'valid');
  });
  after(async () => {
    peer?.destroy();
    for (const p of [alice, w?.a, w?.b]) p?.close();
    await a?.stop();
    await b?.stop();
  });

  it('answers malformed remote stanzas with errors that travel back to the sender', async () => {
    const from = "from='alice@localhost/x'";
    const cases: Array<[string, string]> = [
      [`<iq ${from} to='b.test' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>`, 'bad-request'],
      [`<iq ${from} to='b.test' id='{id}' type='fetch'><ping xmlns='urn:xmpp:ping'/></iq>`, 'bad-request'],
      [`<iq ${from} to='b.test' id='{id}' type='get'/>`, 'bad-request'],
      [`<iq ${from} to='b.test' id='{id}' type='get'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`, 'bad-request'],
      [`<message ${from} to='bob@b.test' id='{id}' type='bogus'><body>x</body></message>`, 'bad-request'],
      [`<presence ${from} to='bob@b.test' id='{id}' type='bogus'/>`, 'bad-request'],
      [`<message ${from} to='@@' id='{id}'><body>x</body></message>`, 'jid-malformed'],
      [`<message ${from} to='bob@b.test/' id='{id}'><body>x</body></message>`, 'jid-malformed'],
    ];
    for (const [template, condition] of cases) {
      const id = nextId();
      peer.write(template.replace('{id}', id));
      const reply = await alice.waitFor((s) => s.attrs.id === id, `error for ${template}`, 8000);
      assert.equal(stanzaErrorCondition(reply), condition, template);
    }
    // An iq without id is answered too (the error has no id either).
    peer.write(`<iq ${from} to='b.test' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const noId = await alice.waitFor((s) => s.name === 'iq' && s.attrs.type === 'error' && !s.attrs.id, 'error without id', 8000);
    assert.equal(stanzaErrorCondition(noId), 'bad-request');
    // Well-formed traffic on the same link is served.
    const id = nextId();
    peer.write(`<iq ${from} to='b.test' id='${id}' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`);
    assert.equal((await alice.waitFor((s) => s.attrs.id === id, 'ping result', 8000)).attrs.type, 'result');
  });

  it('ends the link with a stream error for XML a client must not relay either', async () => {
    peer.write("<message from='alice@localhost/x' to='bob@b.test' a'b='1'><body>x</body></message>");
    const err = await peer.waitFor((e) => e.name === 'stream:error', 'stream error');
    assert.ok(err.getChild('not-well-formed', 'urn:ietf:params:xml:ns:xmpp-streams'), err.toString());
    await peer.closed;
    // Federation still works: alice pings b.test over a fresh link.
    const r = await alice.request("<iq type='get' id='{id}' to='b.test'><ping xmlns='urn:xmpp:ping'/></iq>", 8000);
    assert.equal(r.attrs.type, 'result');
    await assertStillServing(a, w);
    assertCleanLogs(b);
  });
});
