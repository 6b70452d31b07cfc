// The account commands (adduser, passwd, deluser, users) and kick, written
// once for both places they run: inside the running server (reached through
// the admin socket, so sessions are closed and contacts told), and directly
// on the store when the server is stopped (the CLI opens it itself).
import type { Config } from '../config/schema.ts';
import type { ServerContext } from '../host/context.ts';
import { Jid } from '../jid/jid.ts';
import { removeAccount } from '../modules/account-removal.ts';
import type { AccountStore } from '../storage/accounts.ts';
import { FastTokenStore } from '../storage/fast-tokens.ts';
import type { StorageBackend } from '../storage/types.ts';
import { deleteUserData } from '../storage/user-data.ts';
import type { AdminResults, UserEntry } from './protocol.ts';

/** A refusal to show the administrator as it is (bad input, missing account). */
export class AdminError extends Error {}

export interface AdminTarget {
  domain: string;
  /** Account deletion finds the user's uploaded files through it (upload.path). */
  config: Config;
  accounts: AccountStore;
  storage: StorageBackend;
  /** The running server, when the command runs inside it. */
  live?: ServerContext;
}

/** Refuses passwords nobody should have; the CLI checks too, the server is the authority. */
export function checkPassword(password: unknown): string {
  if (typeof password !== 'string' || password.length === 0)
    throw new AdminError('empty passwords are not allowed');
  if (/[\x00-\x1f\x7f]/.test(password)) throw new AdminError('the password contains control characters');
  return password;
}

/** The normalised localpart of a user on this domain ("alice" or "alice@domain"). */
export function localUser(text: unknown, domain: string): string {
  if (typeof text !== 'string' || !text) throw new AdminError(`a JID is required, e.g. alice@${domain}`);
  let jid: Jid;
  try {
    jid = Jid.parse(text.includes('@') ? text : `${text}@${domain}`);
  } catch (err) {
    throw new AdminError(`invalid JID '${text}': ${(err as Error).message}`);
  }
  if (jid.domain !== domain) throw new AdminError(`${jid.bare} is not on this server's domain (${domain})`);
  if (!jid.local || jid.resource) throw new AdminError(`'${text}' must be a bare JID like user@${domain}`);
  return jid.local;
}

export async function addUser(
  t: AdminTarget,
  user: string,
  password: string,
): Promise<AdminResults['adduser']> {
  checkPassword(password);
  const jid = `${user}@${t.domain}`;
  if (await t.accounts.exists(user)) throw new AdminError(`${jid} already exists`);
  await t.accounts.setPassword(user, password);
  t.live?.log.info('account created by the administrator', { user: jid });
  return { jid };
}

export async function changePassword(
  t: AdminTarget,
  user: string,
  password: string,
): Promise<AdminResults['passwd']> {
  checkPassword(password);
  const jid = `${user}@${t.domain}`;
  if (!(await t.accounts.exists(user))) throw new AdminError(`${jid} does not exist`);
  await t.accounts.setPassword(user, password);
  // As for an in-band change: the old password must stop working everywhere,
  // and so must the FAST tokens it bought (XEP-0484).
  await (t.live ? t.live.store(FastTokenStore) : new FastTokenStore(t.storage)).revokeAll(jid);
  const sessions = t.live?.sessions.resources(jid) ?? [];
  for (const s of sessions) s.close('reset', 'password changed by the administrator');
  t.live?.log.info('password changed by the administrator', { user: jid, sessionsClosed: sessions.length });
  return { jid, sessionsClosed: sessions.length };
}

export async function deleteUser(t: AdminTarget, user: string): Promise<AdminResults['deluser']> {
  const jid = `${user}@${t.domain}`;
  if (!(await t.accounts.exists(user))) throw new AdminError(`${jid} does not exist`);
  if (!t.live) {
    await deleteUserData(t.storage, jid, t.config);
    await t.accounts.delete(user);
    return { jid, sessionsClosed: 0 };
  }
  await removeAccount(t.live, jid);
  const sessions = t.live.sessions.resources(jid);
  for (const s of sessions) s.close('not-authorized', 'account removed by the administrator');
  t.live.log.info('account removed by the administrator', { user: jid, sessionsClosed: sessions.length });
  return { jid, sessionsClosed: sessions.length };
}

export async function listUsers(t: AdminTarget): Promise<UserEntry[]> {
  const out: UserEntry[] = [];
  for await (const user of t.accounts.users()) {
    const jid = `${user}@${t.domain}`;
    out.push({ jid, sessions: t.live?.sessions.resources(jid).length ?? 0 });
  }
  return out.sort((a, b) => (a.jid < b.jid ? -1 : a.jid > b.jid ? 1 : 0));
}

/** Disconnects a bare JID's sessions, or one full JID's. */
export function kick(live: ServerContext, text: unknown): AdminResults['kick'] {
  if (typeof text !== 'string' || !text)
    throw new AdminError('a JID is required, e.g. alice@domain or alice@domain/phone');
  const jid = Jid.tryParse(text);
  if (!jid?.local) throw new AdminError(`invalid JID '${text}'`);
  const sessions = jid.resource
    ? [live.sessions.get(jid)].filter((s) => s !== undefined)
    : live.sessions.resources(jid.bare);
  if (!sessions.length) throw new AdminError(`${jid} has no session on this server`);
  // policy-violation, as ejabberd's kick: the client should not reconnect at once.
  for (const s of sessions) s.close('policy-violation', 'disconnected by the server administrator');
  const closed = sessions.map((s) => s.jid.toString());
  live.log.info('sessions closed by the administrator', { jid: jid.toString(), count: closed.length });
  return { closed };
}
