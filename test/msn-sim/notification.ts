// The notification server (NS): login, contact lists, presence, challenges,
// and switchboard referrals. One NotificationSession per TCP connection.
//
// Formats follow MSNP11 (ABCHMigrated: 1: contacts and groups carry GUIDs,
// no list versions in replies). MSNP8-MSNP10 are accepted in VER; for them the
// version-dependent parts (USR OK, SYN/LST/LSG shape, QRY algorithm, presence
// fields) switch to their older forms. List editing uses ADC/REM (MSNP10-12).
// Later versions, as documented: MSNP12 adds the network id to LST; MSNP13
// replaces SYN and the list commands with the SOAP services (services.ts)
// plus ADL/RML, and lists offline messages in Mail-Data; MSNP14 adds network
// ids to presence; MSNP15 logs in with SSO (RST ticket + MBI_KEY challenge);
// MSNP16 lets an account sign in from several endpoints (machine GUIDs,
// endpoint data in UBX, "caps:extended" capabilities); MSNP18 writes
// handles as "1:email".

import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { type Account, type AccountStore, type ListName, LIST_BITS, type StoredOim, isValidHandle } from './accounts.ts';
import { verifyChallengeResponse } from './challenge.ts';
import type { SimContext } from './context.ts';
import { mailData, mailDataMessage } from './oim.ts';
import { checkSsoResponse } from './tokens.ts';
import { parseXml, findAll } from './soap.ts';
import {
  type Frame,
  FrameDecoder,
  byteLength,
  clientPayloadRule,
  encodeCommand,
  msnDecode,
  msnEncode,
} from './framing.ts';
import {
  SETTABLE_STATUSES,
  allows,
  announce,
  announceOffline,
  announcePersonalData,
  appearsOnline,
  capsFor,
  handleFor,
  refreshVisibility,
  sendInitialPresence,
  type PresenceSession,
} from './presence.ts';

/** Protocol versions this simulator speaks, best first. */
export const SUPPORTED_PROTOCOLS: readonly number[] = [18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8];

/** Commands MSNP13 removed (the address book replaced them): using one ends the session. */
const REMOVED_IN_13 = new Set(['SYN', 'ADC', 'REM', 'ADG', 'RMG', 'REG', 'GTC', 'SBP']);

const GUID = /^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$/;

/** Client versions reported in the CVR answer (MSN Messenger 7.0 era). */
const CVR_ANSWER =
  '7.0.0816 7.0.0816 7.0.0777 http://msgr.dlservice.microsoft.com/download/5/4/4/544E3D1D-6B0C-4ADF-B35C-F6E2EB8CF3CA/Install_MSN_Messenger.exe http://messenger.msn.com';

const MAX_GROUPS = 30;
const MAX_GROUP_NAME_BYTES = 61;
const MAX_FRIENDLY_NAME_BYTES = 387;
const PRP_PROPERTIES = new Set(['PHH', 'PHW', 'PHM', 'MOB', 'MBE', 'WWE', 'HSB']);

type Phase = 'connected' | 'versioned' | 'authenticating' | 'online' | 'closed';

/** Formats a Date like the MSNP10+ SYN timestamps ("2005-04-23T18:57:44.8130000-07:00"). */
export function synTimestamp(date: Date): string {
  const iso = date.toISOString(); // 2005-04-23T18:57:44.813Z
  return `${iso.slice(0, 23)}0000-00:00`;
}

/** "pppp" -> byte-swapped port, as in the profile's ClientPort field. */
function swappedPort(port: number): number {
  return ((port & 0xff) << 8) | ((port >> 8) & 0xff);
}

export class NotificationSession implements PresenceSession {
  private readonly decoder = new FrameDecoder(clientPayloadRule);
  private phase: Phase = 'connected';
  /** Set while acting as the dispatch server: USR TWN I answers with XFR. */
  private pendingEmail = '';
  protocol = 0;
  email = '';
  private accountRef: Account | null = null;
  status = 'FLN';
  capabilities = '0';
  msnObject: string | null = null;
  receivesPresence = false;
  readonly knownOnline = new Set<string>();
  readonly declared = new Set<string>();
  /** MSNP16+: this endpoint's machine GUID (braces included, lower case), null before and below. */
  machineGuid: string | null = null;
  /** MSNP16+: the name the endpoint gave itself (UUX PrivateEndpointData). */
  endpointName = '';
  /** When this endpoint last changed status: the most recent one shows the account's status. */
  lastChg = 0;
  /** The SSO nonce handed out with USR SSO S. */
  private ssoNonce = '';
  /** Challenges still answerable: the latest and the one before it. */
  private challenges: string[] = [];
  private challengeTimer: NodeJS.Timeout | null = null;
  private challengeInterval: NodeJS.Timeout | null = null;

  constructor(
    private readonly ctx: SimContext,
    private readonly socket: Socket,
    private readonly registry: NotificationRegistry,
    /** Dispatch mode: after USR TWN I, refer the client to the NS and hang up. */
    private readonly dispatch = false,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onClose());
    socket.on('error', () => {
      // Resets from clients are normal; 'close' does the cleanup.
    });
  }

  get account(): Account {
    if (!this.accountRef) throw new Error('session is not logged in');
    return this.accountRef;
  }

  get isOnline(): boolean {
    return this.phase === 'online';
  }

  send(line: string, payload?: Buffer | string): void {
    if (this.phase === 'closed' || this.socket.destroyed) return;
    this.ctx.log({
      server: this.dispatch ? 'DS' : 'NS',
      direction: 'out',
      email: this.email || undefined,
      text: line,
    });
    this.socket.write(encodeCommand(line, payload));
  }

  /** Ends the connection after flushing what was written. */
  close(): void {
    if (this.phase === 'closed') return;
    this.socket.end();
    // Do not wait for a slow peer forever.
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.finish();
  }

  /** OUT <reason> and disconnect (OTH on a second login, SSD on shutdown). */
  kick(reason: string): void {
    this.send(`OUT ${reason}`);
    this.close();
  }

  /** Sends a CHL now (also used by the simulator's sendChallenge()). */
  challenge(): void {
    if (this.phase !== 'online') return;
    const chl = this.ctx.options.challengeGenerator();
    this.challenges = [this.challenges[this.challenges.length - 1], chl].filter((c): c is string => !!c);
    this.send(`CHL 0 ${chl}`);
    if (this.challengeTimer) clearTimeout(this.challengeTimer);
    if (this.ctx.options.challengeTimeoutMs > 0) {
      this.challengeTimer = setTimeout(() => {
        this.ctx.log({ server: 'NS', direction: 'info', email: this.email, text: 'challenge timed out' });
        this.send('OUT');
        this.close();
      }, this.ctx.options.challengeTimeoutMs);
      this.challengeTimer.unref();
    }
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch {
      this.close();
      return;
    }
    for (const frame of frames) {
      if (this.phase === 'closed') return;
      this.ctx.log({
        server: this.dispatch ? 'DS' : 'NS',
        direction: 'in',
        email: this.email || undefined,
        text: frame.line,
      });
      try {
        this.handle(frame);
      } catch (err) {
        this.ctx.log({
          server: 'NS',
          direction: 'info',
          email: this.email,
          text: `handler error: ${String(err)}`,
        });
        this.close();
      }
    }
  }

  private onClose(): void {
    this.finish();
  }

  private finish(): void {
    if (this.phase === 'closed') return;
    const wasOnline = this.phase === 'online';
    this.phase = 'closed';
    if (this.challengeTimer) clearTimeout(this.challengeTimer);
    if (this.challengeInterval) clearInterval(this.challengeInterval);
    if (wasOnline) this.registry.unregister(this);
  }

  // ---- dispatch -----------------------------------------------------------

  private handle(frame: Frame): void {
    const { name, args } = frame;
    if (name === 'OUT') {
      this.send('OUT');
      this.close();
      return;
    }
    if (name === 'PNG') {
      this.send(this.protocol >= 9 ? `QNG ${this.ctx.options.pingIntervalSeconds}` : 'QNG');
      return;
    }
    const trid = args[0];
    if (trid === undefined || !/^\d+$/.test(trid)) {
      // Every other command needs a transaction id; garbage ends the session.
      this.close();
      return;
    }
    if (this.phase === 'connected') {
      if (name === 'VER') {
        this.onVer(trid, args.slice(1));
        return;
      }
      this.close();
      return;
    }
    if (this.phase === 'versioned' || this.phase === 'authenticating') {
      if (name === 'CVR') {
        this.send(`CVR ${trid} ${CVR_ANSWER}`);
        return;
      }
      if (name === 'USR') {
        this.onUsr(trid, args.slice(1));
        return;
      }
      this.close();
      return;
    }
    if (this.protocol >= 13 && REMOVED_IN_13.has(name)) {
      this.close();
      return;
    }
    switch (name) {
      case 'ADL':
      case 'RML':
        this.onListPayload(name, trid, frame.payload ?? Buffer.alloc(0));
        return;
      case 'SYN':
        this.onSyn(trid, args.slice(1));
        return;
      case 'CHG':
        this.onChg(trid, args.slice(1));
        return;
      case 'ADC':
        this.onAdc(trid, args.slice(1));
        return;
      case 'REM':
        this.onRem(trid, args.slice(1));
        return;
      case 'ADG':
        this.onAdg(trid, args.slice(1));
        return;
      case 'RMG':
        this.onRmg(trid, args.slice(1));
        return;
      case 'REG':
        this.onReg(trid, args.slice(1));
        return;
      case 'BLP':
        this.onBlp(trid, args.slice(1));
        return;
      case 'GTC':
        this.onGtc(trid, args.slice(1));
        return;
      case 'PRP':
        this.onPrp(trid, args.slice(1));
        return;
      case 'SBP':
        this.onSbp(trid, args.slice(1));
        return;
      case 'UUX':
        this.onUux(trid, frame.payload ?? Buffer.alloc(0));
        return;
      case 'XFR':
        this.onXfr(trid, args.slice(1));
        return;
      case 'QRY':
        this.onQry(trid, args.slice(1), frame.payload ?? Buffer.alloc(0));
        return;
      case 'CHL':
        this.onClientChl(trid);
        return;
      case 'USR':
        // USR after login: "already logged in".
        this.send(`207 ${trid}`);
        return;
      case 'CVR':
        this.send(`CVR ${trid} ${CVR_ANSWER}`);
        return;
      default:
        // Unknown commands end the session, as on the real service.
        this.close();
    }
  }

  // ---- login --------------------------------------------------------------

  private onVer(trid: string, offered: string[]): void {
    const versions = new Set(offered);
    const chosen = this.ctx.options.protocols.find((v) => versions.has(`MSNP${v}`));
    if (chosen === undefined) {
      this.send(`VER ${trid} 0`);
      this.close();
      return;
    }
    this.protocol = chosen;
    this.phase = 'versioned';
    this.send(`VER ${trid} MSNP${chosen}`);
  }

  private onUsr(trid: string, args: string[]): void {
    const [method, stage, value] = args;
    // TWN up to MSNP14, SSO from MSNP15: the other one ends the session.
    const expected = this.protocol >= 15 ? 'SSO' : 'TWN';
    if (method !== expected || value === undefined) {
      this.send(`911 ${trid}`);
      this.close();
      return;
    }
    if (stage === 'I' && this.phase === 'versioned') {
      const email = value.toLowerCase();
      if (!isValidHandle(email)) {
        this.send(`911 ${trid}`);
        this.close();
        return;
      }
      if (this.dispatch) {
        const tail = this.protocol >= 13 ? 'U D' : `0 ${this.registry.dispatchAddress()}`;
        this.send(`XFR ${trid} NS ${this.registry.address()} ${tail}`);
        this.close();
        return;
      }
      this.pendingEmail = email;
      this.phase = 'authenticating';
      if (method === 'SSO') {
        this.ssoNonce = randomBytes(48).toString('base64');
        this.send(`USR ${trid} SSO S MBI_KEY_OLD ${this.ssoNonce}`);
      } else {
        this.send(`USR ${trid} TWN S ${this.ctx.passport.newChallenge()}`);
      }
      return;
    }
    if (stage === 'S' && this.phase === 'authenticating') {
      const account = this.ctx.accounts.get(this.pendingEmail);
      if (!account) {
        this.send(`911 ${trid}`);
        this.close();
        return;
      }
      if (method === 'SSO') {
        // USR trid SSO S <ticket> <MBI_KEY answer> [{machine-guid} from MSNP16]
        const ticket = this.ctx.tokens.check(value, ['messengerclear.live.com']);
        const guid = args[4];
        const ok =
          ticket?.email === account.email &&
          ticket.secret !== undefined &&
          args[3] !== undefined &&
          checkSsoResponse(ticket.secret, this.ssoNonce, args[3]) &&
          (this.protocol < 16 || (guid !== undefined && GUID.test(guid)));
        if (!ok) {
          this.send(`911 ${trid}`);
          this.close();
          return;
        }
        if (this.protocol >= 16) this.machineGuid = guid!.toLowerCase();
        this.loginOk(trid, account, value);
        return;
      }
      // The ticket is everything after "TWN S", normally t=...&p=...: a Passport 1.4
      // ticket, or (as MSNP13+ clients get it) a messenger.msn.com ticket from RST.
      const ticket = args.slice(2).join(' ');
      const rst = this.ctx.tokens.check(ticket, ['messenger.msn.com']);
      if (!this.ctx.passport.checkTicket(this.pendingEmail, ticket) && rst?.email !== account.email) {
        this.send(`911 ${trid}`);
        this.close();
        return;
      }
      this.loginOk(trid, account, ticket);
      return;
    }
    this.send(`911 ${trid}`);
    this.close();
  }

  private loginOk(trid: string, account: Account, ticket: string): void {
    this.accountRef = account;
    this.email = account.email;
    this.phase = 'online';
    // A second login of the same account pushes the older one out, unless both
    // are MSNP16+ endpoints with different machine GUIDs (MPOP).
    for (const previous of this.registry.register(this)) previous.kick('OTH');
    if (this.protocol >= 10) this.send(`USR ${trid} OK ${account.email} 1 0`);
    else this.send(`USR ${trid} OK ${account.email} ${msnEncode(account.friendlyName)} 1 0`);
    if (this.protocol >= 11) this.send('SBS 0 null');
    this.send(`MSG Hotmail Hotmail ${byteLength(this.profile(ticket))}`, this.profile(ticket));
    if (this.protocol >= 13) {
      const oims = this.ctx.options.offlineMessages ? account.oims : [];
      const body = mailDataMessage('initial', mailData(oims));
      this.send(`MSG Hotmail Hotmail ${byteLength(body)}`, body);
    }
    if (this.protocol >= 16) this.registry.sendEndpoints(account.email);
    if (this.ctx.options.challengeIntervalMs > 0) {
      this.challengeInterval = setInterval(() => this.challenge(), this.ctx.options.challengeIntervalMs);
      this.challengeInterval.unref();
    }
  }

  private profile(ticket: string): string {
    const t = /(?:^|&)t=([^&]*)/.exec(ticket)?.[1] ?? '';
    const remotePort = this.socket.remotePort ?? 0;
    const memberId = Array.from(this.email).reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
    const lines = [
      'MIME-Version: 1.0',
      'Content-Type: text/x-msmsgsprofile; charset=UTF-8',
      `LoginTime: ${Math.floor(Date.now() / 1000)}`,
      'EmailEnabled: 0',
      'MemberIdHigh: 0',
      `MemberIdLow: ${memberId}`,
      'lang_preference: 1033',
      `preferredEmail: ${this.email}`,
      'country: US',
      'PostalCode: ',
      'Gender: ',
      'Kid: 0',
      'Age: ',
      'BDayPre: ',
      'Birthday: ',
      'Wallet: ',
      'Flags: 1027',
      'sid: 507',
      'kv: 11',
      `MSPAuth: ${t}$`,
      `ClientIP: ${this.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1'}`,
      `ClientPort: ${swappedPort(remotePort)}`,
      'ABCHMigrated: 1',
      ...(this.protocol >= 16 ? ['MPOPEnabled: 1'] : []),
    ];
    return `${lines.join('\r\n')}\r\n\r\n`;
  }

  // ---- lists --------------------------------------------------------------

  private onSyn(trid: string, args: string[]): void {
    const account = this.account;
    const contacts = [...account.contacts.values()].filter((c) => c.lists.size > 0);
    const groups = [...account.groups.values()];
    if (this.protocol >= 10) {
      const listTs = synTimestamp(account.listChanged);
      const settingsTs = synTimestamp(account.settingsChanged);
      if (args[0] === listTs && args[1] === settingsTs) {
        // The client's cache is current: no list follows.
        this.send(`SYN ${trid} ${listTs} ${settingsTs}`);
        return;
      }
      this.send(`SYN ${trid} ${listTs} ${settingsTs} ${contacts.length} ${groups.length}`);
    } else {
      const version = String(account.listVersion);
      if (args[0] === version) {
        this.send(`SYN ${trid} ${version}`);
        return;
      }
      this.send(`SYN ${trid} ${version} ${contacts.length} ${groups.length}`);
    }
    this.send(`GTC ${account.gtc}`);
    this.send(`BLP ${account.blp}`);
    if (this.protocol >= 10) this.send(`PRP MFN ${msnEncode(account.friendlyName)}`);
    for (const [key, value] of account.properties) this.send(`PRP ${key} ${value}`);
    if (this.protocol >= 10) {
      for (const group of groups) this.send(`LSG ${msnEncode(group.name)} ${group.guid}`);
    } else {
      for (const [index, group] of groups.entries()) this.send(`LSG ${index} ${msnEncode(group.name)} 0`);
    }
    for (const contact of contacts) {
      let bits = 0;
      for (const list of contact.lists) bits |= LIST_BITS[list];
      const inFl = contact.lists.has('FL');
      if (this.protocol >= 10) {
        let line = `LST N=${contact.email} F=${msnEncode(contact.nickname)}`;
        if (inFl) line += ` C=${contact.guid}`;
        line += ` ${bits}`;
        if (inFl && contact.groups.size > 0) line += ` ${[...contact.groups].join(',')}`;
        this.send(line);
      } else {
        const ids = groups
          .map((g, i) => (contact.groups.has(g.guid) ? String(i) : null))
          .filter((x) => x !== null);
        let line = `LST ${contact.email} ${msnEncode(contact.nickname)} ${bits}`;
        if (inFl) line += ` ${ids.length > 0 ? ids.join(',') : '0'}`;
        this.send(line);
      }
    }
  }

  private parseList(token: string | undefined): ListName | null {
    return token === 'FL' || token === 'AL' || token === 'BL' || token === 'RL' ? token : null;
  }

  private onAdc(trid: string, args: string[]): void {
    if (this.protocol < 10) {
      this.close();
      return;
    }
    const list = this.parseList(args[0]);
    // Nobody may add to their own reverse list: that ends the session.
    if (list === null || list === 'RL') {
      this.close();
      return;
    }
    const params = new Map<string, string>();
    const rest: string[] = [];
    for (const token of args.slice(1)) {
      const m = /^([NFC])=(.*)$/.exec(token);
      if (m) params.set(m[1]!, m[2]!);
      else rest.push(token);
    }
    const account = this.account;
    const accounts = this.ctx.accounts;

    // "ADC trid FL C=guid group-guid": put an FL contact into a group.
    if (list === 'FL' && params.has('C') && !params.has('N')) {
      const entry = accounts.findByGuid(account, params.get('C')!);
      const groupGuid = rest[0];
      if (!entry?.lists.has('FL')) {
        this.send(`216 ${trid}`);
        return;
      }
      if (groupGuid === undefined || !account.groups.has(groupGuid)) {
        this.send(`224 ${trid}`);
        return;
      }
      if (entry.groups.has(groupGuid)) {
        this.send(`215 ${trid}`);
        return;
      }
      entry.groups.add(groupGuid);
      accounts.touch(account);
      this.send(`ADC ${trid} FL C=${entry.guid} ${groupGuid}`);
      return;
    }

    const handle = params.get('N')?.toLowerCase();
    if (handle === undefined) {
      this.close();
      return;
    }
    if (!isValidHandle(handle)) {
      this.send(`201 ${trid}`);
      return;
    }
    const target = accounts.get(handle);
    if (!target) {
      this.send(`208 ${trid}`);
      return;
    }
    if (accounts.inList(account, handle, list)) {
      this.send(`215 ${trid}`);
      return;
    }
    if (list === 'AL' && accounts.inList(account, handle, 'BL')) {
      this.send(`219 ${trid}`);
      return;
    }
    if (list === 'BL' && accounts.inList(account, handle, 'AL')) {
      this.send(`219 ${trid}`);
      return;
    }
    const groupGuid = list === 'FL' ? rest[0] : undefined;
    if (groupGuid !== undefined && !account.groups.has(groupGuid)) {
      this.send(`224 ${trid}`);
      return;
    }

    if (list === 'FL') {
      const nickname = params.has('F') ? msnDecode(params.get('F')!) : target.friendlyName;
      accounts.addToList(account, handle, 'FL', nickname);
      const entry = accounts.entry(account, handle);
      if (groupGuid !== undefined) entry.groups.add(groupGuid);
      let reply = `ADC ${trid} FL N=${handle} F=${msnEncode(entry.nickname)} C=${entry.guid}`;
      if (groupGuid !== undefined) reply += ` ${groupGuid}`;
      this.send(reply);
      // The added user learns it is on our forward list (their RL).
      this.registry.tellReverse(handle, account, true);
      const other = this.registry.sessionOf(handle);
      if (other) sendInitialPresence(this, other, trid);
      return;
    }

    accounts.addToList(account, handle, list);
    this.send(`ADC ${trid} ${list} N=${handle}`);
    refreshVisibility(this.registry, this);
  }

  private onRem(trid: string, args: string[]): void {
    const list = this.parseList(args[0]);
    const id = args[1];
    if (list === null || list === 'RL' || id === undefined) {
      this.close();
      return;
    }
    const account = this.account;
    const accounts = this.ctx.accounts;
    if (list === 'FL') {
      // MSNP10+ names FL contacts by GUID; accept a handle as well.
      const entry = accounts.findByGuid(account, id) ?? account.contacts.get(id.toLowerCase());
      if (!entry?.lists.has('FL')) {
        this.send(`216 ${trid}`);
        return;
      }
      const groupGuid = args[2];
      if (groupGuid !== undefined) {
        if (!account.groups.has(groupGuid)) {
          this.send(`224 ${trid}`);
          return;
        }
        if (!entry.groups.has(groupGuid)) {
          this.send(`225 ${trid}`);
          return;
        }
        entry.groups.delete(groupGuid);
        accounts.touch(account);
        this.send(`REM ${trid} FL ${id} ${groupGuid}`);
        return;
      }
      const email = entry.email;
      accounts.removeFromList(account, email, 'FL');
      this.knownOnline.delete(email);
      this.send(`REM ${trid} FL ${id}`);
      this.registry.tellReverse(email, account, false);
      return;
    }
    const email = id.toLowerCase();
    if (!accounts.inList(account, email, list)) {
      this.send(`216 ${trid}`);
      return;
    }
    accounts.removeFromList(account, email, list);
    this.send(`REM ${trid} ${list} ${email}`);
    refreshVisibility(this.registry, this);
  }

  private onAdg(trid: string, args: string[]): void {
    const encoded = args[0];
    if (encoded === undefined) {
      this.close();
      return;
    }
    if (byteLength(encoded) > MAX_GROUP_NAME_BYTES) {
      this.send(`229 ${trid}`);
      return;
    }
    const account = this.account;
    if (account.groups.size >= MAX_GROUPS) {
      this.send(`223 ${trid}`);
      return;
    }
    const group = this.ctx.accounts.addGroup(account, msnDecode(encoded));
    this.send(`ADG ${trid} ${msnEncode(group.name)} ${group.guid}`);
  }

  private onRmg(trid: string, args: string[]): void {
    const guid = args[0];
    if (guid === undefined) {
      this.close();
      return;
    }
    const account = this.account;
    if (!account.groups.has(guid)) {
      this.send(`224 ${trid}`);
      return;
    }
    account.groups.delete(guid);
    for (const entry of account.contacts.values()) entry.groups.delete(guid);
    this.ctx.accounts.touch(account);
    this.send(`RMG ${trid} ${guid}`);
  }

  private onReg(trid: string, args: string[]): void {
    const [guid, encoded] = args;
    if (guid === undefined || encoded === undefined) {
      this.close();
      return;
    }
    const group = this.account.groups.get(guid);
    if (!group) {
      this.send(`224 ${trid}`);
      return;
    }
    if (byteLength(encoded) > MAX_GROUP_NAME_BYTES) {
      this.send(`229 ${trid}`);
      return;
    }
    group.name = msnDecode(encoded);
    this.ctx.accounts.touch(this.account);
    this.send(`REG ${trid} ${guid} ${msnEncode(group.name)}`);
  }

  private onBlp(trid: string, args: string[]): void {
    const mode = args[0];
    if (mode !== 'AL' && mode !== 'BL') {
      this.send(`201 ${trid}`);
      return;
    }
    const account = this.account;
    if (account.blp === mode) {
      this.send(`218 ${trid}`);
      return;
    }
    account.blp = mode;
    this.ctx.accounts.touchSettings(account);
    this.send(`BLP ${trid} ${mode}`);
    refreshVisibility(this.registry, this);
  }

  private onGtc(trid: string, args: string[]): void {
    const mode = args[0];
    if (mode !== 'A' && mode !== 'N') {
      this.close();
      return;
    }
    const account = this.account;
    if (account.gtc === mode) {
      this.send(`218 ${trid}`);
      return;
    }
    account.gtc = mode;
    this.ctx.accounts.touchSettings(account);
    this.send(`GTC ${trid} ${mode}`);
  }

  private onPrp(trid: string, args: string[]): void {
    const [key, value] = args;
    if (key === undefined) {
      this.close();
      return;
    }
    if (key.length > 3) {
      this.close();
      return;
    }
    const account = this.account;
    if (key === 'MFN') {
      if (value === undefined || byteLength(value) > MAX_FRIENDLY_NAME_BYTES) {
        this.close();
        return;
      }
      account.friendlyName = msnDecode(value);
      this.ctx.accounts.touchSettings(account);
      this.send(`PRP ${trid} MFN ${msnEncode(account.friendlyName)}`);
      // Watchers see the new name in a fresh NLN.
      if (this.receivesPresence && appearsOnline(this)) announce(this.registry, this);
      return;
    }
    if (!PRP_PROPERTIES.has(key)) {
      this.send(`715 ${trid}`);
      return;
    }
    if (value !== undefined && byteLength(value) > 95) {
      this.close();
      return;
    }
    if (value === undefined) account.properties.delete(key);
    else account.properties.set(key, value);
    this.ctx.accounts.touchSettings(account);
    this.send(value === undefined ? `PRP ${trid} ${key}` : `PRP ${trid} ${key} ${value}`);
  }

  /** SBP: rename a contact on our list (stored name only). */
  private onSbp(trid: string, args: string[]): void {
    const [guid, key, value] = args;
    if (guid === undefined || key !== 'MFN' || value === undefined) {
      this.close();
      return;
    }
    const entry = this.ctx.accounts.findByGuid(this.account, guid);
    if (!entry?.lists.has('FL')) {
      this.send(`216 ${trid}`);
      return;
    }
    entry.nickname = msnDecode(value);
    this.ctx.accounts.touch(this.account);
    this.send(`SBP ${trid} ${guid} MFN ${msnEncode(entry.nickname)}`);
  }

  /**
   * ADL/RML (MSNP13+): `<ml [l="1"]><d n="domain"><c n="user" l="bits" t="1"/></d></ml>`.
   * The initial ADL declares the contacts the client wants presence for;
   * later ones add to or remove from the lists (and are told to the other side).
   */
  private onListPayload(name: 'ADL' | 'RML', trid: string, payload: Buffer): void {
    if (this.protocol < 13) {
      this.close();
      return;
    }
    const doc = parseXml(payload.toString('utf8'));
    if (doc?.name !== 'ml') {
      this.send(`240 ${trid}`);
      this.close();
      return;
    }
    const account = this.account;
    const accounts = this.ctx.accounts;
    const initial = name === 'ADL' && doc.attrs.l === '1';
    const entries: { email: string; bits: number }[] = [];
    for (const d of findAll(doc, 'd')) {
      for (const c of findAll(d, 'c')) {
        const bits = Number(c.attrs.l);
        const email = `${c.attrs.n ?? ''}@${d.attrs.n ?? ''}`.toLowerCase();
        // Nobody declares the reverse or pending list: those are the server's to say.
        if (!Number.isInteger(bits) || bits <= 0 || (bits & (LIST_BITS.RL | 16)) !== 0 || !isValidHandle(email)) {
          this.send(`240 ${trid}`);
          this.close();
          return;
        }
        if (!accounts.get(email)) {
          this.send(`208 ${trid}`);
          return;
        }
        entries.push({ email, bits });
      }
    }
    for (const { email, bits } of entries) {
      for (const list of ['FL', 'AL', 'BL'] as const) {
        if ((bits & LIST_BITS[list]) === 0) continue;
        if (name === 'RML') {
          if (list === 'FL') this.declared.delete(email);
          if (accounts.removeFromList(account, email, list)) this.registry.listChanged(account, email, list, false);
          continue;
        }
        if (list === 'FL') this.declared.add(email);
        if (initial) continue; // the stored lists stand; the ADL says what to watch
        if (accounts.addToList(account, email, list)) this.registry.listChanged(account, email, list, true);
        if (list === 'FL') {
          const other = this.registry.sessionOf(email);
          if (other) sendInitialPresence(this, other, trid);
        }
      }
    }
    this.send(`${name} ${trid} OK`);
  }

  // ---- presence -----------------------------------------------------------

  private onChg(trid: string, args: string[]): void {
    const [status, caps, msnObject] = args;
    if (status === undefined || !SETTABLE_STATUSES.has(status)) {
      this.send(`201 ${trid}`);
      return;
    }
    // MSNP16+: "capabilities:extended-capabilities".
    if (caps !== undefined && !(this.protocol >= 16 ? /^\d+(:\d+)?$/ : /^\d+$/).test(caps)) {
      this.send(`201 ${trid}`);
      return;
    }
    this.lastChg = Date.now();
    this.status = status;
    this.capabilities = caps ?? '0';
    this.msnObject = msnObject ?? null;
    let reply = `CHG ${trid} ${status}`;
    if (caps !== undefined) reply += ` ${caps}`;
    if (msnObject !== undefined) reply += ` ${msnObject}`;
    this.send(reply);

    if (!this.receivesPresence) {
      // First CHG: the client now gets its contacts' presence (ILN, same trid).
      this.receivesPresence = true;
      for (const entry of this.account.contacts.values()) {
        if (!entry.lists.has('FL')) continue;
        const target = this.registry.sessionOf(entry.email);
        if (target && target !== this) sendInitialPresence(this, target, trid);
      }
      announce(this.registry, this);
      if (this.ctx.options.challengeAfterLogin) this.challenge();
      return;
    }
    announce(this.registry, this);
  }

  private onUux(trid: string, payload: Buffer): void {
    if (this.protocol < 11) {
      this.close();
      return;
    }
    const text = payload.toString('utf8');
    // MSNP16+: an endpoint describes itself (its name shows in the other endpoints' UBX).
    if (this.protocol >= 16 && /^\s*<PrivateEndpointData>[\s\S]*<\/PrivateEndpointData>\s*$/.test(text)) {
      this.endpointName = /<EpName>([\s\S]*?)<\/EpName>/.exec(text)?.[1] ?? '';
      this.send(`UUX ${trid} 0`);
      this.registry.sendEndpoints(this.email);
      return;
    }
    if (!/^\s*<Data>[\s\S]*<\/Data>\s*$/.test(text)) {
      this.close();
      return;
    }
    // The machine GUID is the sender endpoint's, not part of what contacts see.
    this.account.personalData = text.replace(/<MachineGuid>[\s\S]*?<\/MachineGuid>/, '');
    this.send(`UUX ${trid} 0`);
    if (this.receivesPresence && appearsOnline(this)) announcePersonalData(this.registry, this);
  }

  // ---- switchboard referral -------------------------------------------------

  private onXfr(trid: string, args: string[]): void {
    if (args[0] !== 'SB') {
      this.close();
      return;
    }
    // Invisible or not yet online users cannot start conversations.
    if (!appearsOnline(this)) {
      this.send(`913 ${trid}`);
      return;
    }
    const cookie = this.ctx.switchboard.issueXfrCookie(this.email, this.protocol, this.machineGuid);
    // MSNP13 added "U messenger.msn.com", MSNP14 a trailing 1.
    const tail = this.protocol >= 14 ? ' U messenger.msn.com 1' : this.protocol >= 13 ? ' U messenger.msn.com' : '';
    this.send(`XFR ${trid} SB ${this.ctx.switchboard.address()} CKI ${cookie}${tail}`);
  }

  // ---- challenges -------------------------------------------------------------

  private onQry(trid: string, args: string[], payload: Buffer): void {
    const productId = args[0] ?? '';
    const ok =
      this.challenges.length > 0 &&
      verifyChallengeResponse(this.protocol, this.challenges, productId, payload.toString('latin1'));
    if (!ok) {
      this.send(`540 ${trid}`);
      this.close();
      return;
    }
    this.challenges = [];
    if (this.challengeTimer) clearTimeout(this.challengeTimer);
    this.challengeTimer = null;
    this.send(`QRY ${trid}`);
  }

  /** A client may ask for a challenge itself: "CHL trid" -> "CHL trid <chl>". */
  private onClientChl(trid: string): void {
    const chl = this.ctx.options.challengeGenerator();
    this.challenges = [this.challenges[this.challenges.length - 1], chl].filter((c): c is string => !!c);
    this.send(`CHL ${trid} ${chl}`);
  }
}

/** Live NS sessions by account (several per account from MSNP16), plus the glue PresenceRegistry needs. */
export class NotificationRegistry {
  /** Endpoints per account, in login order. */
  private readonly sessions = new Map<string, NotificationSession[]>();
  /** "127.0.0.1:port" of the notification and dispatch listeners. */
  nsAddress = '';
  dsAddress = '';
  offlineMessages = true;

  constructor(private readonly accounts: AccountStore) {}

  address(): string {
    return this.nsAddress;
  }

  dispatchAddress(): string {
    return this.dsAddress;
  }

  /**
   * Registers a freshly logged-in session; returns the ones it replaces.
   * Before MSNP16 an account has one endpoint; from MSNP16 several, each
   * with its own machine GUID (a second login with the same GUID replaces it).
   */
  register(session: NotificationSession): NotificationSession[] {
    const current = this.sessions.get(session.email) ?? [];
    const mpop = session.protocol >= 16 && session.machineGuid !== null;
    const replaced = current.filter(
      (s) => !mpop || s.protocol < 16 || s.machineGuid === null || s.machineGuid === session.machineGuid,
    );
    const kept = current.filter((s) => !replaced.includes(s));
    this.sessions.set(session.email, [...kept, session]);
    // Watchers saw the old endpoint online; the account shows the kept ones' status (or none until CHG).
    if (replaced.length > 0 && kept.length === 0) for (const old of replaced) announceOffline(this, old);
    return replaced;
  }

  /** Removes an endpoint; the account goes offline with its last one. */
  unregister(session: NotificationSession): void {
    const current = this.sessions.get(session.email);
    if (!current?.includes(session)) return;
    const rest = current.filter((s) => s !== session);
    if (rest.length === 0) {
      this.sessions.delete(session.email);
      announceOffline(this, session);
      return;
    }
    this.sessions.set(session.email, rest);
    const primary = this.sessionOf(session.email);
    if (primary?.receivesPresence) announce(this, primary);
    this.sendEndpoints(session.email);
  }

  /** The endpoint whose status the account shows: the one that changed it last. */
  sessionOf(email: string): NotificationSession | undefined {
    const list = this.sessions.get(email.toLowerCase());
    if (!list || list.length === 0) return undefined;
    let best = list[list.length - 1]!;
    for (const s of list) if (s.lastChg > best.lastChg) best = s;
    return best;
  }

  sessionsOf(email: string): NotificationSession[] {
    return [...(this.sessions.get(email.toLowerCase()) ?? [])];
  }

  account(email: string): Account | undefined {
    return this.accounts.get(email);
  }

  all(): NotificationSession[] {
    return [...this.sessions.values()].flat();
  }

  clear(): void {
    this.sessions.clear();
  }

  /** Can `caller` start a conversation with `callee` (the CAL checks)? */
  reachable(caller: string, callee: string): 'ok' | 'offline' | 'blocked' {
    const session = this.sessionOf(callee);
    if (!session || !appearsOnline(session)) return 'offline';
    if (!allows(session.account, caller)) return 'blocked';
    return 'ok';
  }

  /**
   * Tells `email` that `owner` added them to (or removed them from) the
   * forward list, i.e. changed their reverse list, in each endpoint's dialect.
   */
  tellReverse(email: string, owner: Account, added: boolean): void {
    for (const s of this.sessionsOf(email)) {
      if (s.protocol >= 13) {
        const [user, domain] = owner.email.split('@') as [string, string];
        const f = added ? ` f="${msnEncode(owner.friendlyName)}"` : '';
        const body = `<ml><d n="${domain}"><c n="${user}" t="1" l="${LIST_BITS.RL}"${f}/></d></ml>`;
        s.send(`${added ? 'ADL' : 'RML'} 0 ${byteLength(body)}`, body);
      } else if (added) {
        s.send(`ADC 0 RL N=${owner.email} F=${msnEncode(owner.friendlyName)}`);
      } else {
        s.send(`REM 0 RL ${owner.email}`);
      }
    }
  }

  /** A list of `owner` changed (through the services or ADL/RML): the other side and visibility follow. */
  listChanged(owner: Account, contact: string, list: ListName, added: boolean): void {
    if (list === 'FL') this.tellReverse(contact, owner, added);
    if (!added && list === 'FL') for (const s of this.sessionsOf(owner.email)) s.knownOnline.delete(contact);
    const primary = this.sessionOf(owner.email);
    if ((list === 'AL' || list === 'BL') && primary?.receivesPresence) refreshVisibility(this, primary);
  }

  /** An offline message arrived: the account's MSNP13+ endpoints get an OIM notification. */
  oimStored(to: Account, oim: StoredOim): void {
    for (const s of this.sessionsOf(to.email)) {
      if (s.protocol < 13) continue;
      const body = mailDataMessage('new', mailData([oim], true));
      s.send(`MSG Hotmail Hotmail ${byteLength(body)}`, body);
    }
  }

  /** MSNP16+: each endpoint of the account hears (in its own UBX) where else the account is signed in. */
  sendEndpoints(email: string): void {
    const endpoints = this.sessionsOf(email).filter((s) => s.protocol >= 16 && s.machineGuid !== null);
    const data = endpoints
      .map((s) => `<EndpointData id="${s.machineGuid}"><Capabilities>${capsFor(s.capabilities, 16)}</Capabilities></EndpointData>`)
      .join('');
    const priv = endpoints
      .filter((s) => s.endpointName)
      .map((s) => `<PrivateEndpointData id="${s.machineGuid}"><EpName>${s.endpointName}</EpName><Idle>false</Idle></PrivateEndpointData>`)
      .join('');
    for (const s of endpoints) {
      const personal = (s.account.personalData ?? '<Data><PSM></PSM><CurrentMedia></CurrentMedia></Data>').replace(/<\/Data>\s*$/, '');
      const body = `${personal}${data}${priv}</Data>`;
      s.send(`UBX ${handleFor(email, s.protocol)} ${byteLength(body)}`, body);
    }
  }
}
