// adduser, passwd, deluser, users, status and kick from the command line.
// Each first asks a running server over the admin socket; when none
// answers it opens the store itself (status and kick need a running server).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AdminError,
  type AdminTarget,
  addUser,
  changePassword,
  checkPassword,
  deleteUser,
  listUsers,
  localUser,
} from '../admin/account-admin.ts';
import { adminCall } from '../admin/client.ts';
import { type AdminRequest, type AdminResults, adminSocketPath } from '../admin/protocol.ts';
import type { StatusValue } from '../admin/status-sections.ts';
import type { Config } from '../config/schema.ts';
import { AccountStore } from '../storage/accounts.ts';
import { StorageLockedError } from '../storage/level.ts';
import { openBackend } from '../storage/open.ts';
import type { StorageBackend } from '../storage/types.ts';
import { readNewPassword } from './password-prompt.ts';

/** Exit code of `status` when no server runs (as systemctl and LSB scripts). */
export const NOT_RUNNING = 3;
/** How long to wait for a server that holds the store but has not opened its socket yet (starting up). */
const STARTING_WAIT_MS = 20_000;

export interface AdminCommandOptions {
  password?: string;
  json?: boolean;
  /** Where normal output goes (stdout). */
  print: (line: string) => void;
}

/** Runs one command; returns the exit code. */
export async function runAdminCommand(
  command: string,
  arg: string | undefined,
  config: Config,
  o: AdminCommandOptions,
): Promise<number> {
  const domain = config.domain;
  switch (command) {
    case 'adduser':
    case 'passwd': {
      const user = localUser(arg, domain);
      const password = checkPassword(o.password ?? (await readNewPassword()));
      const r = await call(config, { op: command, user, password }, (t) =>
        command === 'adduser' ? addUser(t, user, password) : changePassword(t, user, password),
      );
      if (command === 'adduser') o.print(`created ${r.jid}`);
      else
        o.print(`password changed for ${r.jid}${closedNote((r as AdminResults['passwd']).sessionsClosed)}`);
      return 0;
    }
    case 'deluser': {
      const user = localUser(arg, domain);
      const r = await call(config, { op: 'deluser', user }, (t) => deleteUser(t, user));
      o.print(`deleted ${r.jid}${closedNote(r.sessionsClosed)}`);
      return 0;
    }
    case 'users': {
      const list = await call(config, { op: 'users' }, (t) => listUsers(t));
      if (o.json) o.print(JSON.stringify(list, null, 2));
      else
        for (const u of list)
          o.print(u.sessions ? `${u.jid}\t${u.sessions} session${u.sessions > 1 ? 's' : ''}` : u.jid);
      if (!list.length && !o.json)
        process.stderr.write(`no accounts yet: add one with 'jabberfly adduser alice@${domain}'\n`);
      return 0;
    }
    case 'status': {
      const path = adminSocketPath(config);
      const sections = await adminCall(path, { op: 'status' });
      if (sections === null) {
        if (o.json) o.print(JSON.stringify({ running: false }));
        else o.print(`jabberfly is not running (nothing answers on ${path})`);
        return NOT_RUNNING;
      }
      if (o.json) o.print(JSON.stringify({ running: true, ...sections }, null, 2));
      else for (const line of renderSections(sections)) o.print(line);
      return 0;
    }
    case 'kick': {
      if (!arg) throw new AdminError(`a JID is required, e.g. alice@${domain} or alice@${domain}/phone`);
      const path = adminSocketPath(config);
      const r = await adminCall(path, { op: 'kick', jid: arg });
      if (r === null) throw new AdminError(`jabberfly is not running (nothing answers on ${path})`);
      for (const jid of r.closed) o.print(`disconnected ${jid}`);
      return 0;
    }
    default:
      throw new AdminError(`unknown command '${command}'`);
  }
}

function closedNote(n: number): string {
  return n ? ` (${n} session${n > 1 ? 's' : ''} disconnected)` : '';
}

/**
 * The running server's answer, or the same work done on the store when no
 * server runs. A server that holds the store but is not answering yet is
 * starting: it is given a moment to open its socket.
 */
async function call<Op extends 'adduser' | 'passwd' | 'deluser' | 'users'>(
  config: Config,
  req: Extract<AdminRequest, { op: Op }>,
  direct: (t: AdminTarget) => Promise<AdminResults[Op]>,
): Promise<AdminResults[Op]> {
  const path = adminSocketPath(config);
  const deadline = Date.now() + STARTING_WAIT_MS;
  for (;;) {
    if (config.admin.enabled) {
      const live = await adminCall(path, req);
      if (live !== null) return live;
    }
    let backend: StorageBackend;
    try {
      backend = await openBackend(config.storage);
    } catch (err) {
      if (!(err instanceof StorageLockedError)) throw err;
      if (!config.admin.enabled || Date.now() > deadline) {
        throw new AdminError(
          config.admin.enabled
            ? `${err.message}, and it does not answer on its admin socket ${path}` +
                ' (does that server use another admin.socket in its configuration?)'
            : `${err.message} and admin.enabled is false: stop the server first`,
        );
      }
      await sleep(250);
      continue;
    }
    try {
      return await direct({ domain: config.domain, config, accounts: new AccountStore(backend), storage: backend });
    } finally {
      await backend.close();
    }
  }
}

/** `status` for people: each section a heading, its keys indented. */
export function renderSections(sections: Record<string, Record<string, StatusValue>>): string[] {
  const lines: string[] = [];
  for (const [name, section] of Object.entries(sections)) {
    lines.push(name);
    renderValue(section, '  ', lines);
  }
  return lines;
}

function renderValue(value: Record<string, StatusValue>, indent: string, lines: string[]): void {
  const width = Math.max(0, ...Object.keys(value).map((k) => k.length));
  for (const [key, v] of Object.entries(value)) {
    if (Array.isArray(v)) {
      lines.push(`${indent}${key}:${v.length ? '' : ' (none)'}`);
      for (const item of v) {
        if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
          lines.push(`${indent}  -`);
          renderValue(item, `${indent}    `, lines);
        } else lines.push(`${indent}  - ${String(item)}`);
      }
    } else if (v !== null && typeof v === 'object') {
      lines.push(`${indent}${key}:`);
      renderValue(v, `${indent}  `, lines);
    } else {
      lines.push(`${indent}${`${key}:`.padEnd(width + 2)}${String(v)}`);
    }
  }
}
