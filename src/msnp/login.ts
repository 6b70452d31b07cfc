/**
 * Logging in on one notification-server connection: VER (version
 * negotiation), CVR (client version) and USR (authentication), which may
 * instead answer with an XFR NS redirect to another server. Authentication
 * depends on the version:
 *  - MSNP8-12: USR TWN with a Passport 1.4 ticket (login2.srf);
 *  - MSNP13-14: USR TWN with a ticket from the SOAP token service (RST.srf),
 *    which also hands out the tickets for the address book and offline
 *    messages;
 *  - MSNP15+: USR SSO: the token service's messengerclear.live.com ticket
 *    plus the answer to the MBI_KEY_OLD challenge (sso.ts); from MSNP16 the
 *    endpoint's machine GUID goes along (several endpoints per account).
 */
import type { MsnCommand } from './command.ts';
import type { MsnConnection } from './connection.ts';
import { MsnAuthError, MsnError, MsnProtocolError } from './errors.ts';
import { passportLogin } from './passport.ts';
import { decodeText, type SessionCore, versionNumber } from './session-core.ts';
import { requestTokens, type TokenRequest } from './soap/rst.ts';
import { mbiKeyResponse } from './sso.ts';

export type LoginStep = { redirect: string } | { nickname?: string };

/** The client version sent in CVR: the Messenger that spoke that protocol. */
function clientVersion(n: number): string {
  if (n >= 16) return '14.0.8117.0416';
  if (n >= 15) return '8.5.1302';
  if (n >= 13) return '8.1.0178';
  return '7.0.0816';
}

/** VER / CVR / USR. Resolves with a redirect address for XFR NS, or (once logged in) the nickname USR carried. */
export async function authenticate(core: SessionCore, conn: MsnConnection, protocols: string[]): Promise<LoginStep> {
  const ver = await conn.request('VER', [...protocols, 'CVR0']);
  const chosen = ver.args.slice(1).find((v) => protocols.includes(v));
  if (!chosen) throw new MsnProtocolError(`server offered no supported protocol (${ver.args.slice(1).join(' ')})`);
  core.negotiated = chosen;
  const n = versionNumber(chosen);
  const email = core.email;
  await conn.request('CVR', ['0x0409', 'winnt', '5.1', 'i386', 'MSNMSGR', clientVersion(n), 'msmsgs', email]);
  const method = n >= 15 ? 'SSO' : 'TWN';
  let reply: MsnCommand;
  try {
    reply = await conn.request('USR', [method, 'I', email], { accept: ['XFR'] });
  } catch (err) {
    throw asAuthError(err);
  }
  if (reply.name === 'XFR') {
    // XFR trid NS host:port 0 current-server (MSNP13+: XFR trid NS host:port U D)
    if (reply.args[1] !== 'NS' || !reply.args[2]) throw new MsnProtocolError(`unexpected XFR ${reply.args.join(' ')}`);
    return { redirect: reply.args[2] };
  }
  if (reply.args[1] !== method || reply.args[2] !== 'S' || reply.args[3] === undefined) {
    throw new MsnProtocolError(`unexpected USR reply ${reply.args.join(' ')}`);
  }
  const final = method === 'SSO' ? await sso(core, n, reply) : await tweener(core, n, reply.args[3]);
  let ok: MsnCommand;
  try {
    ok = await conn.request('USR', final);
  } catch (err) {
    throw asAuthError(err);
  }
  if (ok.args[1] !== 'OK') throw new MsnProtocolError(`unexpected USR reply ${ok.args.join(' ')}`);
  // MSNP8/9 carry the friendly name here; MSNP10+ send it as PRP MFN or in the address book.
  if (n < 10 && ok.args[3] !== undefined) return { nickname: decodeText(ok.args[3], email) };
  return {};
}

/** The services whose tickets every MSNP13+ login asks for besides the one it logs in with. */
const SERVICE_TOKENS: TokenRequest[] = [
  { domain: 'contacts.msn.com', policy: 'MBI' },
  { domain: 'messengersecure.live.com', policy: 'MBI_SSL' },
];

async function tokens(core: SessionCore, wanted: TokenRequest[]) {
  core.tokens = await requestTokens({
    url: `${core.servicesUrl}/RST.srf`,
    email: core.email,
    password: core.opts.password,
    tokens: wanted,
    timeout: core.timeouts.passport,
    trace: core.opts.trace,
  });
}

/** USR TWN: the ticket comes from Passport 1.4 (MSNP8-12) or the token service (MSNP13-14). */
async function tweener(core: SessionCore, n: number, challenge: string): Promise<string[]> {
  core.tokens = new Map();
  if (n < 13) {
    const ticket = await passportLogin({
      nexusUrl: core.opts.nexusUrl,
      loginUrl: core.opts.loginUrl,
      email: core.email,
      password: core.opts.password,
      challenge,
      timeout: core.timeouts.passport,
      trace: core.opts.trace,
    });
    return ['TWN', 'S', ticket];
  }
  await tokens(core, [{ domain: 'messenger.msn.com', policy: `?${challenge}` }, ...SERVICE_TOKENS]);
  return ['TWN', 'S', core.ticket('messenger.msn.com')];
}

/** USR SSO: "USR trid SSO S <policy> <nonce>" → ticket and MBI_KEY answer (and the machine GUID from MSNP16). */
async function sso(core: SessionCore, n: number, reply: MsnCommand): Promise<string[]> {
  const policy = reply.args[3];
  const nonce = reply.args[4];
  if (!policy || !nonce) throw new MsnProtocolError(`USR SSO S without a policy and nonce: ${reply.args.join(' ')}`);
  await tokens(core, [
    { domain: 'messengerclear.live.com', policy },
    { domain: 'messenger.msn.com', policy: '?id=507' },
    ...SERVICE_TOKENS,
  ]);
  const clear = core.tokens.get('messengerclear.live.com');
  if (!clear?.secret) throw new MsnProtocolError('the token service gave no proof key for messengerclear.live.com');
  const args = ['SSO', 'S', clear.token, mbiKeyResponse(clear.secret, nonce)];
  if (n >= 16) args.push(core.machineGuid);
  return args;
}

/** 911/917/928 to USR mean the credentials or ticket were refused: never worth retrying. */
export function asAuthError(err: unknown): unknown {
  if (
    err instanceof MsnError &&
    !(err instanceof MsnAuthError) &&
    (err.code === 911 || err.code === 917 || err.code === 928)
  ) {
    return new MsnAuthError(err.message, err.code);
  }
  return err;
}
