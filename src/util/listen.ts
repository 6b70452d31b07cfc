// Binds one server per configured address (a single all-interfaces server
// when the list is empty) and returns them with the port actually bound:
// with port 0 the first bind picks the port and the others reuse it.
import type { Server as NetServer } from 'node:net';

export interface Bound<S extends NetServer> {
  servers: S[];
  port: number;
}

export async function listenAll<S extends NetServer>(make: () => S, port: number, addresses: string[]): Promise<Bound<S>> {
  const hosts = addresses.length ? addresses : [undefined];
  const servers: S[] = [];
  let actual = port;
  try {
    for (const host of hosts) {
      const s = make();
      actual = await bind(s, actual, host);
      servers.push(s);
    }
  } catch (err) {
    await closeAll(servers);
    throw err;
  }
  return { servers, port: actual };
}

export function closeAll(servers: NetServer[]): Promise<void> {
  return Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined);
}

function bind(server: NetServer, port: number, host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'address in use' : err.message;
      reject(new Error(`cannot listen on ${host ?? '*'}:${port}: ${why}`));
    };
    server.once('error', onError);
    server.listen({ port, host }, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}
