// TLS-ALPN-01 (RFC 8737) on a TLS listener: while a challenge is open, the
// first bytes of each connection (the ClientHello) are read before the
// handshake; a client asking for "acme-tls/1" (the CA validating) gets the
// challenge certificate, everyone else the listener's own, as before. With
// no challenge open, connections go straight through.
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { ACME_TLS_ALPN, type AcmeChallenges } from './challenges.ts';
import { offeredAlpn } from './client-hello.ts';

const MAX_HELLO = 16 * 1024 + 5;
const HELLO_TIMEOUT_MS = 10_000;

/** A plain listener that feeds `inner` (an https or tls server) its connections. */
export function tlsAlpnFront(inner: TlsServer, challenges: AcmeChallenges): NetServer {
  const validator = createTlsServer(
    {
      ALPNProtocols: [ACME_TLS_ALPN],
      SNICallback: (name, cb) => {
        const ctx = challenges.tlsContext(name);
        if (ctx) cb(null, ctx);
        else cb(new Error(`no TLS-ALPN-01 challenge for ${name}`));
      },
    },
    // The handshake is the whole validation (RFC 8737 §3): nothing to say after it.
    (s) => s.end(),
  );
  validator.on('tlsClientError', () => {});
  return createNetServer((socket) => {
    if (!challenges.tlsPending) {
      inner.emit('connection', socket);
      return;
    }
    peek(socket, (hello) => {
      socket.pause();
      socket.unshift(hello);
      const toValidator = offeredAlpn(hello)?.includes(ACME_TLS_ALPN);
      (toValidator ? validator : inner).emit('connection', socket);
    });
  });
}

function peek(socket: Socket, done: (hello: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), HELLO_TIMEOUT_MS);
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (offeredAlpn(buf) === null && buf.length < MAX_HELLO) return;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onError);
    done(buf);
  };
  const onError = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('error', onError);
}
