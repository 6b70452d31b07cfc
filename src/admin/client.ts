// The CLI end of the admin channel: one request, one answer. `null` means no
// server is listening (no socket, or a socket nobody answers on), so the
// caller may work on the store directly.
import { connect } from 'node:net';
import { AdminError } from './account-admin.ts';
import type { AdminRequest, AdminResponse, AdminResults } from './protocol.ts';

/** How long to wait for a running server's answer (deleting a big account takes a while). */
const ANSWER_TIMEOUT_MS = 60_000;

export async function adminCall<Op extends AdminRequest['op']>(
  path: string,
  req: Extract<AdminRequest, { op: Op }>,
): Promise<AdminResults[Op] | null> {
  const res = await exchange(path, req);
  if (res === null) return null;
  if (!res.ok) throw new AdminError(res.error);
  return res.result as AdminResults[Op];
}

function exchange(path: string, req: AdminRequest): Promise<AdminResponse | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buffer = '';
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AdminError(`the server did not answer on ${path} within ${ANSWER_TIMEOUT_MS / 1000} s`));
    }, ANSWER_TIMEOUT_MS);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(req)}\n`);
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl === -1) return;
      const line = buffer.slice(0, nl);
      done(() => {
        try {
          resolve(JSON.parse(line) as AdminResponse);
        } catch {
          reject(new AdminError(`unreadable answer from ${path}`));
        }
      });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED'))
        return done(() => resolve(null));
      if (err.code === 'EACCES') {
        return done(() =>
          reject(
            new AdminError(
              `permission denied on the admin socket ${path}: run this as the user the server runs as (or root)`,
            ),
          ),
        );
      }
      done(() => reject(new AdminError(`admin socket ${path}: ${err.message}`)));
    });
    socket.on('close', () =>
      done(() => reject(new AdminError(`the server closed the admin connection without answering`))),
    );
  });
}
