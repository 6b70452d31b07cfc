// The simulator's MSNP13+ behaviour as raw transcripts: what the documents
// say the server refuses (TWN from MSNP15, SYN from MSNP13, reverse-list bits
// in ADL, a wrong SSO answer) and how it answers the token service.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { RawClient } from './raw-client.ts';
import { MsnSimulator, type SimulatorEndpoints } from './simulator.ts';

function post(url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, headers: { 'Content-Type': 'text/xml' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const rst = (user: string, pw: string, ...domains: string[]) =>
  `<Envelope><Header><Security><UsernameToken><Username>${user}</Username><Password>${pw}</Password></UsernameToken></Security></Header>` +
  `<Body><RequestMultipleSecurityTokens>${domains
    .map((d, i) => `<RequestSecurityToken Id="RST${i}"><AppliesTo><EndpointReference><Address>${d}</Address></EndpointReference></AppliesTo></RequestSecurityToken>`)
    .join('')}</RequestMultipleSecurityTokens></Body></Envelope>`;

describe('MSNP13+ on the simulator', () => {
  let sim: MsnSimulator;
  let ep: SimulatorEndpoints;
  before(async () => {
    sim = new MsnSimulator();
    sim.addAccount('alice@example.com', 'alice-pw', { nickname: 'Alice' });
    ep = await sim.start();
  });
  after(() => sim.stop());

  async function versioned(v: number): Promise<RawClient> {
    const c = await RawClient.connect(ep.nsHost, ep.nsPort);
    c.send(`VER 1 MSNP${v} CVR0`);
    assert.equal(await c.nextLine(), `VER 1 MSNP${v}`);
    return c;
  }

  it('the token service issues a ticket per service, a proof key for messengerclear.live.com, and a fault for a bad password', async () => {
    const ok = await post(`http://127.0.0.1:${ep.httpPort}/RST.srf`, rst('alice@example.com', 'alice-pw', 'http://Passport.NET/tb', 'messengerclear.live.com', 'contacts.msn.com'));
    assert.equal(ok.status, 200);
    assert.equal((ok.body.match(/<wsse:BinarySecurityToken/g) ?? []).length, 2, 'no ticket for Passport.NET/tb');
    assert.equal((ok.body.match(/<wst:BinarySecret>/g) ?? []).length, 1);
    assert.match(ok.body, /t=[A-Za-z0-9_-]+&amp;p=/);
    const bad = await post(`http://127.0.0.1:${ep.httpPort}/RST.srf`, rst('alice@example.com', 'nope', 'contacts.msn.com'));
    assert.match(bad.body, /<faultcode>wsse:FailedAuthentication<\/faultcode>/);
  });

  it('MSNP15 refuses TWN, and answers USR SSO I with the MBI_KEY_OLD policy and a base64 nonce', async () => {
    const twn = await versioned(15);
    twn.send('USR 2 TWN I alice@example.com');
    assert.equal(await twn.nextLine(), '911 2');
    await twn.waitClosed();
    const sso = await versioned(15);
    sso.send('USR 2 SSO I alice@example.com');
    assert.match(await sso.nextLine(), /^USR 2 SSO S MBI_KEY_OLD [A-Za-z0-9+/]{64}$/);
    sso.send('USR 3 SSO S t=forged&p= AAAA');
    assert.equal(await sso.nextLine(), '911 3');
    await sso.waitClosed();
  });

  it('MSNP13 refuses a TWN S ticket it did not issue', async () => {
    const c = await versioned(13);
    c.send('USR 2 TWN I alice@example.com');
    assert.match(await c.nextLine(), /^USR 2 TWN S /);
    c.send('USR 3 TWN S t=forged&p=');
    assert.equal(await c.nextLine(), '911 3');
    await c.waitClosed();
  });

  it('the address book refuses a ticket for another service', async () => {
    const tokens = await post(`http://127.0.0.1:${ep.httpPort}/RST.srf`, rst('alice@example.com', 'alice-pw', 'messenger.msn.com'));
    const ticket = /<wsse:BinarySecurityToken[^>]*>([^<]+)</.exec(tokens.body)![1]!;
    const r = await post(
      `http://127.0.0.1:${ep.httpPort}/abservice/abservice.asmx`,
      `<Envelope><Header><ABAuthHeader><TicketToken>${ticket}</TicketToken></ABAuthHeader></Header><Body><ABFindAll/></Body></Envelope>`,
    );
    assert.equal(r.status, 500);
    assert.match(r.body, /<errorcode[^>]*>TicketExpired<\/errorcode>/);
  });
});
