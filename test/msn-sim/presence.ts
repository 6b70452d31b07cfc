// Presence visibility and fan-out.
//
// Who sees whom: a watcher W sees user U when W has U on its forward list
// (so W is on U's reverse list), U is online and not appearing offline
// (HDN), and U's privacy allows W: W is not on U's block list, and either
// W is on U's allow list or U's BLP is AL ("allow all not blocked").
// Everyone else gets FLN, i.e. sees U as offline.
//
// Each watcher session remembers which contacts it has been told are online,
// so FLN is only sent to watchers that previously got NLN/ILN.

import type { Account } from './accounts.ts';
import { byteLength, msnEncode } from './framing.ts';

/** Statuses a client may set with CHG (FLN is rejected with 201). */
export const SETTABLE_STATUSES: ReadonlySet<string> = new Set([
  'NLN',
  'BSY',
  'IDL',
  'BRB',
  'AWY',
  'PHN',
  'LUN',
  'HDN',
]);

/** What presence code needs from a notification-server session. */
export interface PresenceSession {
  readonly email: string;
  readonly account: Account;
  /** Negotiated protocol number, e.g. 11 for MSNP11. */
  readonly protocol: number;
  /** FLN until the first CHG, then the CHG status. */
  status: string;
  capabilities: string;
  /** MSNObject exactly as the client sent it in CHG (URL-encoded). */
  msnObject: string | null;
  /** Set once the first CHG was answered (the session gets presence from then on). */
  receivesPresence: boolean;
  /** Contacts this watcher has been told are online. */
  readonly knownOnline: Set<string>;
  /** MSNP13+: contacts the client declared with ADL on its forward list (it gets presence for those only). */
  readonly declared: Set<string>;
  send(line: string, payload?: Buffer | string): void;
}

export interface PresenceRegistry {
  /** The session whose status the account shows (MSNP16+ accounts may have several endpoints). */
  sessionOf(email: string): PresenceSession | undefined;
  /** Every logged-in endpoint of the account. */
  sessionsOf(email: string): PresenceSession[];
  account(email: string): Account | undefined;
}

export function appearsOnline(session: PresenceSession): boolean {
  return session.status !== 'FLN' && session.status !== 'HDN';
}

/** Does `owner`'s privacy let `viewer` see them / contact them? */
export function allows(owner: Account, viewer: string): boolean {
  const entry = owner.contacts.get(viewer.toLowerCase());
  if (entry?.lists.has('BL')) return false;
  if (entry?.lists.has('AL')) return true;
  return owner.blp === 'AL';
}

export function canSee(watcher: PresenceSession, target: PresenceSession): boolean {
  if (!watcher.receivesPresence) return false;
  if (!watcher.account.contacts.get(target.email)?.lists.has('FL')) return false;
  // From MSNP13 presence flows only for contacts the client declared (ADL).
  if (watcher.protocol >= 13 && !watcher.declared.has(target.email)) return false;
  return appearsOnline(target) && allows(target.account, watcher.email);
}

/**
 * How an account is named in presence commands for a viewer of protocol `v`:
 * "email" up to MSNP13, "email 1" (the network id, 1 = MSN) in MSNP14-17,
 * "1:email" from MSNP18.
 */
export function handleFor(email: string, v: number): string {
  if (v >= 18) return `1:${email}`;
  if (v >= 14) return `${email} 1`;
  return email;
}

/** Capabilities as a viewer of protocol `v` reads them: "caps:extended" from MSNP16, "caps" before. */
export function capsFor(caps: string, v: number): string {
  const [base = '0', ext = '0'] = caps.split(':');
  return v >= 16 ? `${base}:${ext}` : base;
}

/**
 * The tail shared by ILN and NLN: "status handle friendly-name caps [msnobj]".
 * Capabilities appear since MSNP8 and the MSNObject since MSNP9.
 */
export function presenceTail(target: PresenceSession, viewerProtocol: number): string {
  let tail = `${target.status} ${handleFor(target.email, viewerProtocol)} ${msnEncode(target.account.friendlyName)}`;
  if (viewerProtocol >= 8) tail += ` ${capsFor(target.capabilities, viewerProtocol)}`;
  if (viewerProtocol >= 9 && target.msnObject) tail += ` ${target.msnObject}`;
  return tail;
}

/** "FLN handle" with what each version adds (network id, empty capabilities). */
export function flnLine(email: string, v: number): string {
  if (v >= 16) return `FLN ${handleFor(email, v)} 0:0`;
  if (v >= 14) return `FLN ${handleFor(email, v)} 0`;
  return `FLN ${email}`;
}

export function ubxLine(email: string, v: number, bytes: number): string {
  return `UBX ${handleFor(email, v)} ${bytes}`;
}

function sendUbx(watcher: PresenceSession, target: PresenceSession): void {
  const data = target.account.personalData;
  if (data === null || watcher.protocol < 11) return;
  watcher.send(ubxLine(target.email, watcher.protocol, byteLength(data)), data);
}

/** Every endpoint of everyone who has `target` on their forward list and is online now. */
export function watchersOf(registry: PresenceRegistry, target: Account): PresenceSession[] {
  const out: PresenceSession[] = [];
  for (const entry of target.contacts.values()) {
    if (!entry.lists.has('RL')) continue;
    out.push(...registry.sessionsOf(entry.email));
  }
  return out;
}

/**
 * Tells every watcher about target's current state after a status, name or
 * MSNObject change: NLN to those who may see it, FLN to those who saw it
 * online before but may not any more.
 */
export function announce(registry: PresenceRegistry, target: PresenceSession): void {
  for (const watcher of watchersOf(registry, target.account)) {
    if (watcher === target) continue;
    if (canSee(watcher, target)) {
      const first = !watcher.knownOnline.has(target.email);
      watcher.knownOnline.add(target.email);
      watcher.send(`NLN ${presenceTail(target, watcher.protocol)}`);
      // A watcher that just started seeing the target also needs its PSM.
      if (first) sendUbx(watcher, target);
    } else if (watcher.knownOnline.delete(target.email)) {
      watcher.send(flnLine(target.email, watcher.protocol));
    }
  }
}

/**
 * Re-evaluates target's visibility after a privacy change (BLP, AL, BL):
 * only watchers whose view flips are told.
 */
export function refreshVisibility(registry: PresenceRegistry, target: PresenceSession): void {
  for (const watcher of watchersOf(registry, target.account)) {
    if (watcher === target) continue;
    const visible = canSee(watcher, target);
    const known = watcher.knownOnline.has(target.email);
    if (visible && !known) {
      watcher.knownOnline.add(target.email);
      watcher.send(`NLN ${presenceTail(target, watcher.protocol)}`);
      sendUbx(watcher, target);
    } else if (!visible && known) {
      watcher.knownOnline.delete(target.email);
      watcher.send(flnLine(target.email, watcher.protocol));
    }
  }
}

/** Target went away (logout, disconnect, kicked): FLN to whoever saw it. */
export function announceOffline(registry: PresenceRegistry, target: PresenceSession): void {
  for (const watcher of watchersOf(registry, target.account)) {
    if (watcher === target) continue;
    if (watcher.knownOnline.delete(target.email)) watcher.send(flnLine(target.email, watcher.protocol));
  }
}

/**
 * Sends `watcher` an ILN (with the given trid) for `target` if visible,
 * followed by its personal message. Used after the first CHG and after ADC FL.
 */
export function sendInitialPresence(watcher: PresenceSession, target: PresenceSession, trid: string): void {
  if (!canSee(watcher, target)) return;
  watcher.knownOnline.add(target.email);
  // MSNP18 has no ILN: the initial presence is an NLN too.
  watcher.send(watcher.protocol >= 18 ? `NLN ${presenceTail(target, watcher.protocol)}` : `ILN ${trid} ${presenceTail(target, watcher.protocol)}`);
  sendUbx(watcher, target);
}

/** UUX fan-out: the new personal data goes to watchers who can see target. */
export function announcePersonalData(registry: PresenceRegistry, target: PresenceSession): void {
  for (const watcher of watchersOf(registry, target.account)) {
    if (watcher === target || !canSee(watcher, target)) continue;
    sendUbx(watcher, target);
  }
}
