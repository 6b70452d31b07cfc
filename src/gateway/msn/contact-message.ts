// Messages from the user to an MSN contact JID: the body goes over a
// switchboard (and the ACK comes back as an XEP-0184 receipt when one was
// asked for), or, to an offline contact on MSNP13+, is left as an offline
// message (OIM); XEP-0224 attention becomes a nudge, XEP-0085/XEP-0022
// composing a typing notice. A failure is an error stanza, unless the
// sender added sapo:noerror (PyMSNt's rule for bots).
import type { StanzaEvent } from '../../host/host.ts';
import { MsnError, type MsnSession } from '../../msnp/index.ts';
import { type Element, el } from '../../xml/element.ts';
import { StanzaError } from '../../xml/errors.ts';
import { NS } from '../../xml/namespaces.ts';
import type { MsnGateway } from './gateway.ts';

export async function onContactMessage(gw: MsnGateway, e: StanzaEvent): Promise<void> {
  const { stanza } = e;
  if (stanza.attrs.type === 'error' || stanza.attrs.type === 'groupchat') return;
  const noerror = stanza.getChild('noerror', NS.sapoNoerror) !== undefined;
  try {
    const email = gw.emailOf(e.to);
    if (!email) throw new StanzaError('item-not-found', 'not an MSN contact address');
    // A message written while the MSN login is still finishing (contacts'
    // presence arrives before it completes) waits for it, up to msn.loginWait.
    const s = gw.sessions.get(e.from.bare)?.online ? gw.sessions.get(e.from.bare) : await gw.whenOnline(e.from.toBare());
    if (!s) {
      const registered = await gw.registrations.get(e.from.bare);
      throw new StanzaError(registered ? 'recipient-unavailable' : 'registration-required', 'you are not logged in to MSN');
    }
    const body = stanza.getChildText('body');
    // A shared file (XEP-0066 OOB, or an XEP-0363 upload URL as the whole body):
    // as an MSNP2P transfer where the contact takes one, else the text carries the link.
    const url = fileUrl(stanza, body);
    if (url && (await gw.files.sendAsTransfer(s.msn, email, url))) {
      if (stanza.getChild('request', NS.receipts) && stanza.attrs.id) sendReceipt(gw, e, stanza.attrs.id);
      return;
    }
    const text = body !== null && body !== '' ? body : url;
    if (text) {
      const delivered = await sendText(s.msn, email, text);
      // The switchboard ACKed every part: the contact's client has it. (An
      // offline message is only stored: no receipt until it is read, which MSN never says.)
      if (delivered && stanza.getChild('request', NS.receipts) && stanza.attrs.id) sendReceipt(gw, e, stanza.attrs.id);
    }
    if (stanza.getChild('attention', NS.attention)) {
      await s.msn.sendNudge(email).catch((err) => {
        throw new StanzaError(msnCondition(err), msnReason(err));
      });
    }
    if (!text && isComposing(stanza)) await s.msn.sendTyping(email).catch(() => {});
  } catch (err) {
    // sapo:noerror: the sender asked not to hear about failures.
    if (noerror) return;
    throw err;
  }
}

/**
 * Sends a text: live over a switchboard when the contact is online; as an
 * offline message (OIM, MSNP13+) when the contact is offline. Resolves true
 * when delivered live, false when left offline; a failure is a StanzaError.
 */
async function sendText(msn: MsnSession, email: string, body: string): Promise<boolean> {
  if (msn.contactStatus(email) === 'FLN' && msn.offlineMessagesSupported) {
    await leaveOffline(msn, email, body);
    return false;
  }
  try {
    await msn.sendMessage(email, body);
    return true;
  } catch (err) {
    // 217: offline after all (or appearing offline): leave it for later where the server can.
    if (err instanceof MsnError && err.code === 217 && msn.offlineMessagesSupported) {
      await leaveOffline(msn, email, body);
      return false;
    }
    throw new StanzaError(msnCondition(err), msnReason(err));
  }
}

async function leaveOffline(msn: MsnSession, email: string, body: string): Promise<void> {
  await msn.sendOfflineMessage(email, body).catch((err) => {
    throw new StanzaError('recipient-unavailable', `the MSN contact is offline and MSN did not keep the message: ${(err as Error).message}`);
  });
}

/** The URL of a shared file: the XEP-0066 OOB URL, or a body that is nothing but an http(s) URL. */
function fileUrl(stanza: Element, body: string | null): string | undefined {
  const oob = stanza.getChild('x', NS.oob)?.getChildText('url')?.trim();
  if (oob && /^https?:\/\/\S+$/.test(oob)) return oob;
  const b = body?.trim();
  return b && /^https:\/\/\S+$/.test(b) ? b : undefined;
}

/** XEP-0184: the contact's client has the message. */
function sendReceipt(gw: MsnGateway, e: StanzaEvent, id: string): void {
  gw.send(el('message', { type: 'chat', from: e.to.bare, to: e.from.toString() }, el('received', { xmlns: NS.receipts, id })));
}

function msnCondition(err: unknown): 'recipient-unavailable' | 'not-allowed' {
  return err instanceof MsnError && err.code === 913 ? 'not-allowed' : 'recipient-unavailable';
}

function msnReason(err: unknown): string {
  if (err instanceof MsnError && err.code === 217) return 'the MSN contact is offline';
  if (err instanceof MsnError && err.code === 913) return 'MSN does not let you start conversations while you appear offline';
  return `MSN did not deliver the message: ${(err as Error).message}`;
}

/** XEP-0085 composing, or XEP-0022's composing event (without a body). */
function isComposing(stanza: Element): boolean {
  if (stanza.getChild('composing', NS.chatStates)) return true;
  const x = stanza.getChild('x', NS.events);
  return x?.getChild('composing') !== undefined && x.getChild('id') !== undefined;
}
