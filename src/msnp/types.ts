/**
 * Public types of the MSN client: statuses, lists, contacts, events, options.
 */
import type { MsnError } from './errors.ts';
import type { TextFormat } from './messages.ts';
import type { MsnObject } from './msnobject.ts';
import type { FileOffer } from './file-transfer.ts';
import type { MsnTrace } from './trace.ts';

/** Presence codes a user can set. HDN = appear offline. */
export type SettableStatus = 'NLN' | 'BSY' | 'IDL' | 'BRB' | 'AWY' | 'PHN' | 'LUN' | 'HDN';
/** Presence codes a contact can have; FLN = offline. */
export type MsnStatus = Exclude<SettableStatus, 'HDN'> | 'FLN';

export const SETTABLE_STATUSES: readonly SettableStatus[] = [
  'NLN',
  'BSY',
  'IDL',
  'BRB',
  'AWY',
  'PHN',
  'LUN',
  'HDN',
];

/** Forward (contacts), Allow, Block, Reverse (who added us), Pending. */
export type ListName = 'FL' | 'AL' | 'BL' | 'RL' | 'PL';

export const LIST_BITS: Readonly<Record<ListName, number>> = { FL: 1, AL: 2, BL: 4, RL: 8, PL: 16 };

export function listsFromBits(bits: number): ListName[] {
  return (Object.keys(LIST_BITS) as ListName[]).filter((l) => (bits & LIST_BITS[l]) !== 0);
}

export interface MsnContact {
  email: string;
  nickname: string;
  /** Contact GUID on MSNP10+ (needed to remove from FL); undefined on MSNP8/9. */
  guid?: string;
  lists: ListName[];
  /** Group ids (GUIDs on MSNP10+, numbers on MSNP8/9). */
  groups: string[];
  status: MsnStatus;
  /** Personal message (PSM) from UBX. */
  personalMessage: string;
  /** Now-playing text from UBX CurrentMedia, raw. */
  currentMedia: string;
  clientId: number;
  msnObject?: MsnObject;
}

export interface MsnGroup {
  id: string;
  name: string;
}

export interface PresenceEvent {
  email: string;
  status: MsnStatus;
  nickname: string;
  clientId: number;
  msnObject?: MsnObject;
  /** True for the initial ILN burst after login. */
  initial: boolean;
}

export interface MessageEvent {
  from: string;
  nickname: string;
  text: string;
  format: TextFormat;
  /** Set when the message came through a multi-party conversation. */
  conversationId?: string;
}

export interface TypingEvent {
  from: string;
  conversationId?: string;
}

export interface NudgeEvent {
  from: string;
  conversationId?: string;
}

export interface ConversationEvent {
  id: string;
  /** Other participants currently in the conversation. */
  participants: string[];
  joined?: string;
  left?: string;
  /** True when the conversation is over (we left or everyone else did). */
  closed?: boolean;
}

export interface ContactListEvent {
  contacts: MsnContact[];
  groups: MsnGroup[];
}

export interface ContactChangeEvent {
  email: string;
  list: ListName;
  nickname?: string;
  /** Group affected, for group membership changes. */
  group?: string;
}

export interface AvatarEvent {
  email: string;
  /** The new picture descriptor; undefined when the contact removed the picture. */
  msnObject?: MsnObject;
}

export type DisconnectReason =
  | 'logout'
  | 'otherLogin'
  | 'serverShutdown'
  | 'network'
  | 'authFailed'
  | 'protocol';

export interface DisconnectedEvent {
  reason: DisconnectReason;
  willReconnect: boolean;
  error?: Error;
}

export interface ReconnectingEvent {
  attempt: number;
  /** Milliseconds until this attempt starts. */
  delay: number;
}

/** Where a session is: logged out, logging in, logged in, or waiting to log in again. */
export type MsnSessionState = 'offline' | 'connecting' | 'online' | 'reconnecting';

export interface StateEvent {
  state: MsnSessionState;
  previous: MsnSessionState;
  /** Why, in a few words ("logout", "network", "login failed", ...). */
  reason?: string;
  /** The failure behind the change, when there was one. */
  error?: Error;
}

export interface MsnSessionEvents {
  /** Every state change, and every failed attempt to log in again. */
  state: [StateEvent];
  connected: [{ email: string; nickname: string; protocol: string }];
  disconnected: [DisconnectedEvent];
  reconnecting: [ReconnectingEvent];
  error: [Error];
  presence: [PresenceEvent];
  personalMessage: [{ email: string; text: string; currentMedia: string }];
  nickname: [{ email: string; nickname: string }];
  contactList: [ContactListEvent];
  contactAdded: [ContactChangeEvent];
  contactRemoved: [ContactChangeEvent];
  addedBy: [{ email: string; nickname: string }];
  message: [MessageEvent];
  typing: [TypingEvent];
  nudge: [NudgeEvent];
  conversation: [ConversationEvent];
  avatar: [AvatarEvent];
  /** An offline message (OIM) that waited for us; it is deleted from the server once every listener ran. */
  offlineMessage: [OfflineMessageEvent];
  /** MSNP16+: the other places our account is signed in from changed. */
  endpoints: [{ endpoints: MsnEndpoint[] }];
  /** A contact offers a file (MSNP2P): accept() or decline() it. Without listeners offers are declined. */
  fileOffer: [FileOffer];
}

export interface OfflineMessageEvent {
  from: string;
  nickname: string;
  text: string;
  /** When the contact sent it. */
  sent: Date;
}

/** Another endpoint (machine) our account is signed in from (MSNP16+). */
export interface MsnEndpoint {
  /** Machine GUID, braces included. */
  id: string;
  /** The name that endpoint gave itself, when it did. */
  name?: string;
}

export interface MsnTimeouts {
  /** TCP connect, ms. Default 10000. */
  connect: number;
  /** Any command reply, ms. Default 15000. */
  request: number;
  /** Each Passport HTTP request, ms. Default 15000. */
  passport: number;
  /** Whole login (all redirects included), ms. Default 45000. */
  login: number;
  /** Contact joining a switchboard after CAL, ms. Default 30000. */
  join: number;
  /** Display picture transfer, ms. Default 30000. */
  transfer: number;
  /** A whole file transfer (offer answered, every byte through), ms. Default 300000. */
  fileTransfer: number;
  /** Close switchboards idle this long, ms. Default 300000. */
  switchboardIdle: number;
  /** Interval between PNGs, ms (QNG may shorten it). Default 45000. */
  ping: number;
  /** Drop the connection if QNG does not come within this, ms. Default 20000. */
  pong: number;
}

export interface MsnReconnectOptions {
  /** Default true. */
  enabled: boolean;
  /** First backoff delay, ms. Default 1000. */
  initialDelay: number;
  /** Ceiling of the backoff, ms. Default 60000. */
  maxDelay: number;
  /** Give up after this many failed attempts. Default Infinity. */
  maxAttempts: number;
}

export interface MsnSessionOptions {
  email: string;
  password: string;
  /** Dispatch/notification server as "host:port" (default port 1863). */
  server: string;
  /** Passport nexus URL (http or https). */
  nexusUrl: string;
  /** Optional Passport login URL, skipping the nexus. */
  loginUrl?: string;
  timeouts?: Partial<MsnTimeouts>;
  reconnect?: Partial<MsnReconnectOptions>;
  /** Status to go online with. Default NLN. */
  initialStatus?: SettableStatus;
  /** Client capability flags sent in CHG. Default MSNC4 + multi-packet + ink. */
  clientId?: number;
  /** Versions offered in VER, most preferred first. Default MSNP18..MSNP8. */
  protocols?: string[];
  /** Receives every command line in and out of every connection, secrets redacted (for debug logs). */
  trace?: MsnTrace;
  /**
   * Base URL of the SOAP services used from MSNP13 on: the security token
   * service (RST.srf), the address book and sharing services
   * (/abservice/...), offline messages (/OimWS/oim.asmx, /rsi/rsi.asmx).
   * Default: the origin of `nexusUrl` (where the revived service runs them all).
   */
  servicesUrl?: string;
  /** This endpoint's machine GUID for MSNP16+ (several endpoints per account); random by default. */
  machineGuid?: string;
}

export type { MsnError };
