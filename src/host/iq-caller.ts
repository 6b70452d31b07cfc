// Requests a host sends to another entity and whose answers it awaits (an
// iq get/set to a user's server, say). The answer is matched by id and by
// the address it came from (RFC 6120 §8.2.3: a reply from anyone else is
// not a reply), so a peer cannot answer for someone else. A request that
// gets no answer in time rejects with remote-server-timeout.
import { randomBytes } from 'node:crypto';
import { Jid } from '../jid/jid.ts';
import type { Element } from '../xml/element.ts';
import { StanzaError, type StanzaErrorCondition } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { Host, StanzaEvent } from './host.ts';

interface Pending {
  to: Jid;
  resolve(reply: Element): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class IqCaller {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly host: Host,
    private readonly timeoutMs: number,
  ) {
    // Above everything else on the host: replies are not requests.
    for (const type of ['host', 'bare', 'full']) host.hook(`iq/${type}`, (e) => this.onReply(e), 1000);
  }

  /**
   * Sends an iq get/set (its `from` and `to` set by the caller; the id is
   * chosen here) and resolves with the result, or rejects with the
   * StanzaError the peer answered.
   */
  request(iq: Element): Promise<Element> {
    const to = Jid.parse(iq.attrs.to);
    const id = `jf-${randomBytes(8).toString('hex')}`;
    iq.attrs.id = id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new StanzaError('remote-server-timeout', `no answer from ${to} in time`));
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(id, { to, resolve, reject, timer });
      this.host.server.router.route(iq, { kind: 'host', name: this.host.name });
    });
  }

  /** Rejects every request still waiting (the link to the peer went down). */
  cancelAll(why: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new StanzaError('remote-server-timeout', why));
    }
  }

  private onReply(e: StanzaEvent): boolean {
    const type = e.stanza.attrs.type;
    if (type !== 'result' && type !== 'error') return false;
    const id = e.stanza.attrs.id;
    const p = id === undefined ? undefined : this.pending.get(id);
    // A request to a bare JID may be answered by that bare JID only; to a full JID, by that full JID.
    if (!p || e.from.toString() !== p.to.toString()) return false;
    this.pending.delete(id!);
    clearTimeout(p.timer);
    if (type === 'result') p.resolve(e.stanza);
    else p.reject(errorOf(e.stanza));
    return true;
  }
}

const CONDITIONS = new Set<string>([
  'bad-request', 'conflict', 'feature-not-implemented', 'forbidden', 'gone', 'internal-server-error',
  'item-not-found', 'jid-malformed', 'not-acceptable', 'not-allowed', 'not-authorized', 'policy-violation',
  'recipient-unavailable', 'redirect', 'registration-required', 'remote-server-not-found',
  'remote-server-timeout', 'resource-constraint', 'service-unavailable', 'subscription-required',
  'undefined-condition', 'unexpected-request',
]);

/** The StanzaError an error reply carries (undefined-condition when unreadable). */
export function errorOf(reply: Element): StanzaError {
  const error = reply.getChild('error');
  const child = error?.children.find(
    (c): c is Element => typeof c !== 'string' && c.attrs.xmlns === NS.stanzas && c.name !== 'text',
  );
  const condition = (child && CONDITIONS.has(child.name) ? child.name : 'undefined-condition') as StanzaErrorCondition;
  // The peer's error type (wait: try later; cancel, auth, modify: do not), when it gave a valid one.
  const type = error?.attrs.type;
  const known = type === 'auth' || type === 'cancel' || type === 'continue' || type === 'modify' || type === 'wait';
  return new StanzaError(condition, error?.getChildText('text', NS.stanzas) ?? undefined, known ? type : undefined);
}
