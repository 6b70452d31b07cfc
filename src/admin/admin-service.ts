// The server end of the admin channel: a Unix socket (0600, in the store's
// folder by default) on which `jabberfly adduser/passwd/deluser/users/
// status/kick` reach the running server. Anyone who can open it can manage
// accounts, exactly as anyone who can open the store can; file permissions
// are the access control, as with prosodyctl's and ejabberdctl's.
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { Logger } from '../log.ts';
import type { Server } from '../server.ts';
import type { Service } from '../services.ts';
import {
  AdminError,
  addUser,
  changePassword,
  deleteUser,
  kick,
  listUsers,
  localUser,
} from './account-admin.ts';
import {
  type AdminRequest,
  type AdminResponse,
  adminSocketPath,
  MAX_REQUEST_BYTES,
  MAX_SOCKET_PATH,
} from './protocol.ts';

export class AdminService implements Service {
  readonly path: string;
  private readonly log: Logger;
  private listener: NetServer | null = null;
  /** The socket path while listening, else null. */
  get listening(): string | null {
    return this.listener ? this.path : null;
  }
  private readonly sockets = new Set<Socket>();

  constructor(private readonly server: Server) {
    this.path = adminSocketPath(server.config);
    this.log = server.log.child('admin');
  }

  async start(): Promise<void> {
    if (Buffer.byteLength(this.path) > MAX_SOCKET_PATH) {
      // Not fatal: the server runs; the CLI says it cannot reach it.
      this.log.warn('admin socket path too long for a Unix socket; set admin.socket to a shorter path', {
        path: this.path,
      });
      return;
    }
    // The store is locked by this process already, so a socket file left
    // here belongs to a server that died without cleaning up.
    removeStaleSocket(this.path);
    const listener = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(this.path, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.path, 0o600);
    this.listener = listener;
    this.log.debug('admin socket listening', { path: this.path });
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setEncoding('utf8');
    let buffer = '';
    let busy = Promise.resolve();
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (Buffer.byteLength(buffer) > MAX_REQUEST_BYTES && !buffer.includes('\n')) {
        socket.end(`${JSON.stringify({ ok: false, error: 'request too large' })}\n`);
        return;
      }
      let nl = buffer.indexOf('\n');
      while (nl !== -1) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        // One at a time per connection, answered in order.
        busy = busy
          .then(() => this.answer(line))
          .then((r) => {
            if (!socket.destroyed) socket.write(`${JSON.stringify(r)}\n`);
          });
        nl = buffer.indexOf('\n');
      }
    });
  }

  private async answer(line: string): Promise<AdminResponse> {
    let req: AdminRequest;
    try {
      req = JSON.parse(line) as AdminRequest;
      if (typeof req !== 'object' || req === null || typeof req.op !== 'string') throw new Error();
    } catch {
      return { ok: false, error: 'malformed request' };
    }
    try {
      return { ok: true, result: await this.run(req) };
    } catch (err) {
      if (err instanceof AdminError) return { ok: false, error: err.message };
      // Never the request itself: it may hold a password.
      this.log.error('admin command failed', { op: req.op, error: String((err as Error)?.stack ?? err) });
      return { ok: false, error: `internal error: ${(err as Error).message}` };
    }
  }

  private async run(req: AdminRequest): Promise<unknown> {
    const server = this.server;
    const target = {
      domain: server.config.domain,
      config: server.config,
      accounts: server.accounts,
      storage: server.storage,
      live: server,
    };
    const user = () => localUser((req as { user?: unknown }).user, target.domain);
    switch (req.op) {
      case 'adduser':
        return addUser(target, user(), req.password);
      case 'passwd':
        return changePassword(target, user(), req.password);
      case 'deluser':
        return deleteUser(target, user());
      case 'users':
        return listUsers(target);
      case 'status':
        return server.statusSections.collect();
      case 'kick':
        return kick(server, req.jid);
      case 'reload-certs':
        if (!server.certs.reload())
          throw new AdminError('the certificates could not be reloaded (see the server log)');
        return { names: [...server.certs.pairs.keys()].sort() };
      default:
        throw new AdminError(`unknown command '${(req as { op: string }).op}'`);
    }
  }

  async stop(): Promise<void> {
    const listener = this.listener;
    if (!listener) return;
    this.listener = null;
    for (const s of this.sockets) s.destroy();
    // close() unlinks the socket file.
    await new Promise<void>((r) => listener.close(() => r()));
  }
}

function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export function adminServiceFactory(server: Server): AdminService | null {
  return server.config.admin.enabled ? new AdminService(server) : null;
}
