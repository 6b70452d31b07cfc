// Login steps shared by the simulator's tests, written the way a client
// following the MSNP11 / Passport 1.4 documents performs them.

import assert from 'node:assert/strict';
import { RawClient, httpGet } from './raw-client.ts';
import type { MsnSimulator, SimulatorEndpoints } from './simulator.ts';

/** Nexus GET, then login2.srf with the NS challenge: returns the ticket or the HTTP status. */
export async function passportLogin(
  endpoints: SimulatorEndpoints,
  email: string,
  password: string,
  challenge: string,
): Promise<{ status: number; ticket?: string; wwwAuthenticate?: string }> {
  const nexus = await httpGet(endpoints.nexusUrl);
  const urls = String(nexus.headers.passporturls ?? '');
  const daLogin = /DALogin=([^,]+)/.exec(urls)?.[1];
  assert.ok(daLogin, `no DALogin in ${urls}`);
  const auth =
    'Passport1.4 OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom,' +
    `sign-in=${encodeURIComponent(email)},pwd=${encodeURIComponent(password)},${challenge}`;
  const res = await httpGet(`http://${daLogin}`, { Authorization: auth });
  if (res.status !== 200) {
    return { status: res.status, wwwAuthenticate: String(res.headers['www-authenticate'] ?? '') };
  }
  const info = String(res.headers['authentication-info'] ?? '');
  const ticket = /from-PP='([^']*)'/.exec(info)?.[1];
  assert.ok(ticket, `no from-PP in ${info}`);
  return { status: 200, ticket };
}

export interface LoggedIn {
  client: RawClient;
  /** Next transaction id to use. */
  trid: number;
}

/**
 * VER/CVR/USR up to "USR OK" plus the profile MSG, then (optionally) SYN and
 * the first CHG. Lines beyond those are left queued on the client.
 */
export async function login(
  sim: MsnSimulator,
  email: string,
  password: string,
  opts: { status?: string; sync?: boolean; port?: number } = {},
): Promise<LoggedIn> {
  const ep = sim.endpoints();
  const client = await RawClient.connect(ep.nsHost, opts.port ?? ep.nsPort);
  client.send('VER 1 MSNP11 MSNP10 CVR0');
  assert.equal(await client.nextLine(), 'VER 1 MSNP11');
  client.send(`CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0816 MSMSGS ${email}`);
  assert.match(await client.nextLine(), /^CVR 2 /);
  client.send(`USR 3 TWN I ${email}`);
  const usr = await client.nextLine();
  const challenge = /^USR 3 TWN S (.+)$/.exec(usr)?.[1];
  assert.ok(challenge, usr);
  const pp = await passportLogin(ep, email, password, challenge);
  assert.equal(pp.status, 200);
  client.send(`USR 4 TWN S ${pp.ticket}`);
  assert.equal(await client.nextLine(), `USR 4 OK ${email} 1 0`);
  assert.equal(await client.nextLine(), 'SBS 0 null');
  const profile = await client.next();
  assert.match(profile.line, /^MSG Hotmail Hotmail \d+$/);
  let trid = 5;
  if (opts.sync !== false) {
    client.send(`SYN ${trid++} 0 0`);
    // PNG as a barrier: everything before the QNG is the SYN answer.
    client.send('PNG');
    assert.match(await client.nextLine(), /^SYN \d+ \S+ \S+ \d+ \d+$/);
    while (!(await client.nextLine()).startsWith('QNG')) {
      // GTC, BLP, PRP, LSG, LST lines
    }
  }
  if (opts.status) {
    client.send(`CHG ${trid++} ${opts.status} 0`);
    await client.waitForLine(`CHG ${trid - 1} ${opts.status}`);
  }
  return { client, trid };
}
