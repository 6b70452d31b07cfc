// The transport's state for operators: how many users have an MSN session,
// and per user whether it is connected, logging in, reconnecting or off,
// since when, over which protocol, and the last error. Shown by /status (to
// loopback clients) and by `jabberfly status` (the admin channel's 'msn'
// section); msnTransportStatus(server) is the function behind both: cheap,
// synchronous, nothing secret in it (no passwords, tickets or messages).
import type { StatusSection } from '../../admin/status-sections.ts';
import type { ServerContext } from '../../host/context.ts';
import { msnGatewayOf } from './gateway.ts';

export type MsnUserState = 'offline' | 'connecting' | 'online' | 'reconnecting';

export interface MsnUserStatus {
  /** The Jabber user (bare JID). */
  user: string;
  /** The MSN address the user registered. */
  email: string;
  state: MsnUserState;
  /** When the state last changed (ISO 8601). */
  since: string;
  /** The negotiated protocol ("MSNP15") while connected or since the last login. */
  protocol?: string;
  /** How many times in a row logging in again has failed (while reconnecting). */
  reconnectAttempts?: number;
  /** The last failure (login refused, connection lost, ...), kept after recovery. */
  lastError?: { message: string; at: string };
  /** MSNP16+: the other places the MSN account is signed in from (their names, or machine GUIDs). */
  otherEndpoints?: string[];
}

export interface MsnTransportStatus {
  domain: string;
  /** Users with a transport session (logged in or trying to). */
  sessions: number;
  /** Of those, logged in to MSN now. */
  online: number;
  /** One entry per user who used the transport since the server started, sorted by JID. */
  users: MsnUserStatus[];
}

/** The MSN transport's status, or undefined when the transport is not running. */
export function msnTransportStatus(server: ServerContext): MsnTransportStatus | undefined {
  const gw = msnGatewayOf(server);
  if (!gw) return undefined;
  return { ...gw.state(), users: gw.userStates() };
}

/** One user's entry as an admin status value (no undefined fields). */
export function statusValue(u: MsnUserStatus): StatusSection {
  const out: StatusSection = { user: u.user, email: u.email, state: u.state, since: u.since };
  if (u.protocol !== undefined) out.protocol = u.protocol;
  if (u.reconnectAttempts !== undefined) out.reconnectAttempts = u.reconnectAttempts;
  if (u.lastError) out.lastError = { message: u.lastError.message, at: u.lastError.at };
  if (u.otherEndpoints?.length) out.otherEndpoints = [...u.otherEndpoints];
  return out;
}
