// Presence ⇄ MSN status, both directions (documented in docs/transport.md).
// XMPP `show` has five values and MSN eight codes, so each direction picks
// the nearest meaning; the status text travels as the MSN personal message.
import type { MsnStatus, SettableStatus } from '../../msnp/index.ts';

export type Show = 'chat' | 'away' | 'xa' | 'dnd' | undefined;

/** The user's XMPP presence → the status code set on MSN. */
export function showToMsn(show: string | undefined, invisible = false): SettableStatus {
  if (invisible) return 'HDN';
  switch (show) {
    case 'away':
      return 'AWY';
    case 'xa':
      return 'IDL';
    case 'dnd':
      return 'BSY';
    default:
      return 'NLN'; // available and chat
  }
}

/** A contact's MSN status → XMPP show (undefined = plain available). FLN is unavailable. */
export function msnToShow(status: MsnStatus): Show | 'unavailable' {
  switch (status) {
    case 'NLN':
      return undefined;
    case 'BSY':
    case 'PHN':
      return 'dnd';
    case 'AWY':
    case 'BRB':
    case 'LUN':
      return 'away';
    case 'IDL':
      return 'xa';
    default:
      return 'unavailable';
  }
}

/** Human words for codes XMPP cannot express, used when a contact has no PSM. */
export const MSN_STATUS_TEXT: Record<MsnStatus, string> = {
  NLN: '',
  BSY: 'Busy',
  IDL: 'Idle',
  BRB: 'Be right back',
  AWY: 'Away',
  PHN: 'On the phone',
  LUN: 'Out to lunch',
  FLN: '',
};
