// The receiving side of STARTTLS (RFC 6120 §5.4.2), shared by client and
// server streams: <proceed/> and the upgrade, or <failure/> when TLS is not
// possible here (already encrypted, or a transport without it).
import type { Logger } from '../log.ts';
import { el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import type { Framing } from './framing.ts';

/** Returns false after sending <failure/>: the caller then closes the stream. */
export function answerStartTls(framing: Framing, log: Logger): boolean {
  if (framing.secure || !framing.canStartTls) {
    framing.send(el('failure', { xmlns: NS.tls }));
    return false;
  }
  framing.send(el('proceed', { xmlns: NS.tls }));
  framing.startTls((err) => {
    if (err) {
      log.debug('TLS handshake failed', { ip: framing.remoteAddress, error: err.message });
      framing.destroy();
    }
  });
  return true;
}
