// The admin channel's wire format: one JSON request per line from the CLI,
// one JSON response per line from the server, over a Unix socket that only
// the server's own user can open (0600, in the store's 0700 folder). It
// carries passwords (adduser/passwd), so it never leaves the machine and is
// never logged.
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { StatusSection } from './status-sections.ts';

export type AdminRequest =
  | { op: 'adduser'; user: string; password: string }
  | { op: 'passwd'; user: string; password: string }
  | { op: 'deluser'; user: string }
  | { op: 'users' }
  | { op: 'status' }
  | { op: 'kick'; jid: string }
  | { op: 'reload-certs' };

export type AdminOp = AdminRequest['op'];

export interface UserEntry {
  jid: string;
  /** Bound resources right now (0 when read from a stopped server's store). */
  sessions: number;
}

/** What each operation answers with. */
export interface AdminResults {
  adduser: { jid: string };
  passwd: { jid: string; sessionsClosed: number };
  deluser: { jid: string; sessionsClosed: number };
  users: UserEntry[];
  status: Record<string, StatusSection>;
  kick: { closed: string[] };
  'reload-certs': { names: string[] };
}

export type AdminResponse = { ok: true; result: unknown } | { ok: false; error: string };

/** Longest request line accepted (a password is at most a few KiB). */
export const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * Where the admin socket lives: admin.socket, or admin.sock in the store's
 * folder; a cluster node's is named after the node (workers on one machine
 * share the folder), admin-<node>.sock.
 */
export function adminSocketPath(config: Config): string {
  if (config.admin.socket) return resolve(config.admin.socket);
  const name = config.cluster.redis && config.cluster.node ? `admin-${config.cluster.node}.sock` : 'admin.sock';
  return resolve(join(config.storage.path, name));
}

/** Linux refuses longer Unix socket paths (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;
