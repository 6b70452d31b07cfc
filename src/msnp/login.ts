/**
 * Logging in on one notification-server connection: VER (version
 * negotiation), CVR (client version) and USR (authentication), which may
 * instead answer with an XFR NS redirect to another server.
 */
import type { MsnCommand } from './command.ts';
import type { MsnConnection } from './connection.ts';
import { MsnAuthError, MsnError, MsnProtocolError } from './errors.ts';
import { passportLogin } from './passport.ts';
import { decodeText, type SessionCore } from './session-core.ts';

export type LoginStep = { redirect: string } | { nickname?: string };

/** VER / CVR / USR TWN. Resolves with a redirect address for XFR NS, or (once logged in) the nickname USR carried. */
export async function authenticate(core: SessionCore, conn: MsnConnection, protocols: string[]): Promise<LoginStep> {
  const ver = await conn.request('VER', [...protocols, 'CVR0']);
  const chosen = ver.args.slice(1).find((v) => protocols.includes(v));
  if (!chosen) throw new MsnProtocolError(`server offered no supported protocol (${ver.args.slice(1).join(' ')})`);
  core.negotiated = chosen;
  const email = core.email;
  await conn.request('CVR', ['0x0409', 'winnt', '5.1', 'i386', 'MSNMSGR', '7.0.0816', 'msmsgs', email]);
  let reply: MsnCommand;
  try {
    reply = await conn.request('USR', ['TWN', 'I', email], { accept: ['XFR'] });
  } catch (err) {
    throw asAuthError(err);
  }
  if (reply.name === 'XFR') {
    // XFR trid NS host:port 0 current-server
    if (reply.args[1] !== 'NS' || !reply.args[2]) throw new MsnProtocolError(`unexpected XFR ${reply.args.join(' ')}`);
    return { redirect: reply.args[2] };
  }
  if (reply.args[1] !== 'TWN' || reply.args[2] !== 'S' || reply.args[3] === undefined) {
    throw new MsnProtocolError(`unexpected USR reply ${reply.args.join(' ')}`);
  }
  const ticket = await passportLogin({
    nexusUrl: core.opts.nexusUrl,
    loginUrl: core.opts.loginUrl,
    email,
    password: core.opts.password,
    challenge: reply.args[3],
    timeout: core.timeouts.passport,
    trace: core.opts.trace,
  });
  let ok: MsnCommand;
  try {
    ok = await conn.request('USR', ['TWN', 'S', ticket]);
  } catch (err) {
    throw asAuthError(err);
  }
  if (ok.args[1] !== 'OK') throw new MsnProtocolError(`unexpected USR reply ${ok.args.join(' ')}`);
  // MSNP8/9 carry the friendly name here; MSNP10+ send it as PRP MFN during SYN.
  if (core.version < 10 && ok.args[3] !== undefined) return { nickname: decodeText(ok.args[3], email) };
  return {};
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
