// An HTTP CONNECT proxy on 127.0.0.1 standing in for DNS: programs that
// resolve names themselves (Go's resolver does not map *.localhost to
// loopback) reach `upload.localhost:PORT` through it via HTTPS_PROXY. It
// only tunnels bytes — TLS stays end to end between the program and our
// server, so certificate checks are the program's own — and it tunnels only
// to the names it was given, on loopback.
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface ConnectProxy {
  port: number;
  /** Host:port pairs clients asked to reach, in order. */
  tunnels: string[];
  close(): Promise<void>;
}

export async function startConnectProxy(allowedHosts: string[]): Promise<ConnectProxy> {
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req, client: Socket) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const target = req.url ?? '';
    const m = /^([^:]+):(\d+)$/.exec(target);
    if (!m || !allowedHosts.includes(m[1]!)) {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    tunnels.push(target);
    const upstream = connect(Number(m[2]), '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    tunnels,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
