// Small helpers for the simulator's listeners: bind to 127.0.0.1, remember
// the real port so restart() can come back on the same one, and track sockets
// so stop() can drop every connection (servers only close once sockets do).

import type { Server as HttpServer } from 'node:http';
import { type Server, type Socket, createServer } from 'node:net';

export const LOOPBACK = '127.0.0.1';

export function listen(server: Server | HttpServer, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, LOOPBACK, () => {
      server.off('error', onError);
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('unexpected listen address'));
        return;
      }
      resolve(address.port);
    });
  });
}

export function closeServer(server: Server | HttpServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}

/** A TCP listener whose connections are all tracked. */
export class TcpListener {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly onConnection: (socket: Socket) => void) {}

  /** Binds to `port` (0 = ephemeral) and returns the bound port. */
  async start(port: number): Promise<number> {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      // Small command lines must not wait for Nagle coalescing.
      socket.setNoDelay(true);
      this.onConnection(socket);
    });
    this.server = server;
    this.port = await listen(server, port);
    return this.port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await closeServer(server);
  }
}
