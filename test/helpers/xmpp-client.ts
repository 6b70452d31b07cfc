// Thin helpers around @xmpp/client (the real npm client) for tests: connect,
// wait for a matching stanza with a timeout, collect stanzas.
import { client, type Client } from '@xmpp/client';
import type { Element } from '@xmpp/xml';

export interface ConnectOptions {
  port: number;
  username: string;
  password: string;
  domain?: string;
  resource?: string;
  mechanism?: 'SCRAM-SHA-1' | 'PLAIN';
  directTls?: boolean;
  websocketUrl?: string;
  /**
   * Log in with XEP-0388 SASL2 (and Bind2, inline stream management, FAST)
   * as @xmpp/client does by itself when the server offers it. Off by
   * default: the client then sees no SASL2 feature and logs in like the
   * older clients most tests stand for (legacy SASL, resource binding with
   * the resource it asks for).
   */
  sasl2?: boolean;
}

export interface TestClient {
  xmpp: Client;
  jid: string;
  received: Element[];
  waitFor(pred: (s: Element) => boolean, what?: string, ms?: number): Promise<Element>;
  send(s: Element): Promise<void>;
  stop(): Promise<void>;
}

export async function connect(o: ConnectOptions): Promise<TestClient> {
  const domain = o.domain ?? 'localhost';
  const service = o.websocketUrl ?? `${o.directTls ? 'xmpps' : 'xmpp'}://127.0.0.1:${o.port}`;
  const xmpp = client({
    service,
    domain,
    // The library's 2 s default trips on a loaded CI machine.
    timeout: 10000,
    resource: o.resource,
    credentials: async (authenticate: (c: object, m: string) => Promise<void>, mechanisms: string[]) => {
      const mech = o.mechanism ?? (mechanisms.includes('SCRAM-SHA-1') ? 'SCRAM-SHA-1' : mechanisms[0]!);
      await authenticate({ username: o.username, password: o.password }, mech);
    },
  });
  xmpp.reconnect.stop();
  if (!o.sasl2) hideSasl2(xmpp);
  xmpp.on('error', () => {});
  const received: Element[] = [];
  const waiters: Array<{ pred: (s: Element) => boolean; resolve: (s: Element) => void }> = [];
  xmpp.on('stanza', (s: Element) => {
    received.push(s);
    for (const w of [...waiters]) {
      if (w.pred(s)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(s);
      }
    }
  });
  const address = await xmpp.start();
  return {
    xmpp,
    jid: address.toString(),
    received,
    waitFor(pred, what = 'stanza', ms = 5000) {
      const seen = received.find(pred);
      if (seen) {
        received.splice(received.indexOf(seen), 1);
        return Promise.resolve(seen);
      }
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (s: Element) => {
            clearTimeout(timer);
            received.splice(received.indexOf(s), 1);
            resolve(s);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timed out waiting for ${what}`));
        }, ms);
        waiters.push(w);
      });
    },
    send: (s) => xmpp.send(s),
    async stop() {
      await xmpp.stop().catch(() => {});
    },
  };
}

/** Makes an @xmpp/client blind to the SASL2 stream feature, so it logs in with legacy SASL. */
export function hideSasl2(xmpp: Client): void {
  xmpp.prependListener('element', (element: Element) => {
    if (!element.is('features', 'http://etherx.jabber.org/streams')) return;
    const sasl2 = element.getChild('authentication', 'urn:xmpp:sasl:2');
    if (sasl2) element.remove(sasl2);
  });
}

/**
 * Resolves with the first element of `list` matching `pred` (left in the
 * list), now or when one of `waiters` is called after it arrives (the
 * caller wakes them as it appends); rejects after `ms`.
 */
export function waitInList(
  list: Element[],
  waiters: Array<() => void>,
  pred: (s: Element) => boolean,
  what: string,
  ms: number,
): Promise<Element> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const hit = list.find(pred);
      if (!hit) return;
      clearTimeout(timer);
      waiters.splice(waiters.indexOf(check), 1);
      resolve(hit);
    };
    const timer = setTimeout(() => {
      waiters.splice(waiters.indexOf(check), 1);
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    waiters.push(check);
    check();
  });
}
