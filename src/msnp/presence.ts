/**
 * Presence, both ways: our own status, personal message, friendly name and
 * display picture (CHG, UUX, PRP MFN), and our contacts' (ILN/NLN/FLN, UBX,
 * PRP). Own values are kept while offline and applied at the next login.
 */
import type { MsnCommand } from './command.ts';
import type { MsnConnection } from './connection.ts';
import { MsnError } from './errors.ts';
import { createMsnObject, type MsnObject, parseMsnObject, serializeMsnObject } from './msnobject.ts';
import type { OwnAvatar } from './p2p-transfer.ts';
import { buildPsmPayload, parsePsmPayload } from './psm.ts';
import { decodeText, encodeText, type SessionCore } from './session-core.ts';
import { type MsnEndpoint, type MsnStatus, SETTABLE_STATUSES, type SettableStatus } from './types.ts';

/** "1:email" (MSNP18) or "email;{guid}" → the plain, lower-case address. */
export function parseHandle(token: string | undefined): string | undefined {
  if (!token) return undefined;
  const noNetwork = /^\d+:/.test(token) ? token.slice(token.indexOf(':') + 1) : token;
  const email = noNetwork.split(';')[0]!;
  return email.includes('@') ? email.toLowerCase() : undefined;
}

/** MSNP16+: this endpoint's private data (its name, type and state), sent with UUX. */
function privateEndpointPayload(status: SettableStatus): string {
  return `<PrivateEndpointData><EpName>jabberfly</EpName><Idle>false</Idle><ClientType>1</ClientType><State>${status}</State></PrivateEndpointData>`;
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export class Presence {
  status: SettableStatus;
  nickname: string;
  /** Nickname the user asked for, re-applied after a reconnect. */
  private wantedNickname: string | undefined;
  personalMessage = '';
  avatar: OwnAvatar | undefined;

  constructor(
    private readonly core: SessionCore,
    private readonly clientId: number,
    /** True while the contact list is being downloaded: a PRP MFN then is not a change. */
    private readonly syncing: () => boolean,
  ) {
    this.status = core.opts.initialStatus ?? 'NLN';
    this.nickname = core.email;
  }

  /** Sets the initial status (plus PSM and nickname wanted from before a reconnect). */
  async announce(conn: MsnConnection): Promise<void> {
    const chg = await conn.request('CHG', this.chgArgs(this.status));
    this.status = (chg.args[1] as SettableStatus) ?? this.status;
    if (this.wantedNickname !== undefined && this.wantedNickname !== this.nickname) {
      const prp = await conn.request('PRP', ['MFN', encodeText(this.wantedNickname)]);
      this.nickname = decodeText(prp.args[2], this.wantedNickname);
    }
    if (this.core.version >= 16) {
      // MPOP: say who this endpoint is; the PSM document carries the machine GUID.
      await conn.request('UUX', [], { payload: this.psmPayload(this.personalMessage) });
      await conn.request('UUX', [], { payload: privateEndpointPayload(this.status) });
    } else if (this.core.version >= 11 && this.personalMessage !== '') {
      await conn.request('UUX', [], { payload: this.psmPayload(this.personalMessage) });
    }
  }

  private psmPayload(text: string): string {
    return buildPsmPayload(text, '', this.core.version >= 16 ? this.core.machineGuid : undefined);
  }

  private chgArgs(status: SettableStatus): string[] {
    // MSNP16+: "capabilities:extended-capabilities".
    const args = [status, this.core.version >= 16 ? `${this.clientId}:0` : String(this.clientId)];
    if (this.avatar && this.core.version >= 9) args.push(encodeText(serializeMsnObject(this.avatar.object)));
    return args;
  }

  /** Handles the presence commands of the NS; returns false for anything else. */
  onCommand(cmd: MsnCommand): boolean {
    const a = cmd.args;
    switch (cmd.name) {
      case 'PRP':
        this.onPrp(a);
        return true;
      case 'ILN':
        // ILN trid status handle ... (the initial burst after the first CHG)
        this.onStatusLine(a[1], a.slice(2), true);
        return true;
      case 'NLN':
        this.onStatusLine(a[0], a.slice(1), false);
        return true;
      case 'FLN': {
        const email = parseHandle(a[0]);
        if (email) this.onContactPresence('FLN', email, undefined, undefined, undefined, false);
        return true;
      }
      case 'UBX':
        this.onUbx(parseHandle(a[0]), cmd.payload);
        return true;
      default:
        return false;
    }
  }

  /**
   * The tail of ILN/NLN: "handle [network] nick caps [msnobj]". MSNP14-17
   * put a network id after the handle; MSNP18 writes the handle as
   * "1:email"; MSNP16+ write capabilities as "caps:extended-caps".
   */
  private onStatusLine(status: string | undefined, rest: string[], initial: boolean): void {
    const email = parseHandle(rest[0]);
    if (!status || !email) return;
    let i = 1;
    const v = this.core.version;
    if (v >= 14 && v <= 17) i = 2;
    const [nick, caps, obj] = [rest[i], rest[i + 1], rest[i + 2]];
    this.onContactPresence(status as MsnStatus, email, nick, caps?.split(':')[0], obj, initial);
  }

  private onPrp(a: string[]): void {
    // During SYN: PRP MFN name. Unsolicited change: PRP MFN name (no TrID) or PRP trid MFN name.
    const i = a[0] === 'MFN' ? 0 : a[1] === 'MFN' ? 1 : -1;
    if (i < 0 || a[i + 1] === undefined) return;
    const nick = decodeText(a[i + 1]);
    const changed = nick !== this.nickname;
    this.nickname = nick;
    if (changed && !this.syncing()) this.core.emit('nickname', { email: this.core.email, nickname: nick });
  }

  private onContactPresence(
    status: MsnStatus,
    email: string | undefined,
    nickRaw: string | undefined,
    clientIdRaw: string | undefined,
    msnObjRaw: string | undefined,
    initial: boolean,
  ): void {
    if (!email) return;
    const core = this.core;
    const c = core.ensureContact(email);
    const prevNick = c.nickname;
    const prevSha = c.msnObject?.sha1d;
    c.status = status;
    if (nickRaw !== undefined) c.nickname = decodeText(nickRaw, c.email);
    if (clientIdRaw !== undefined) c.clientId = Number(clientIdRaw) || 0;
    if (status === 'FLN') c.clientId = 0;
    else if (core.version >= 9) c.msnObject = parseMsnObject(msnObjRaw);
    core.emit('presence', {
      email: c.email,
      status,
      nickname: c.nickname,
      clientId: c.clientId,
      msnObject: c.msnObject,
      initial,
    });
    if (c.nickname !== prevNick) core.emit('nickname', { email: c.email, nickname: c.nickname });
    if (status !== 'FLN' && c.msnObject?.sha1d !== prevSha) core.emit('avatar', { email: c.email, msnObject: c.msnObject });
  }

  private onUbx(email: string | undefined, payload: Buffer | undefined): void {
    if (!email) return;
    const xml = payload?.toString('utf8') ?? '';
    if (email === this.core.email) {
      // MSNP16+: our own UBX lists every endpoint the account is signed in from.
      this.onOwnEndpoints(xml);
      return;
    }
    const c = this.core.ensureContact(email);
    const { psm, currentMedia } = parsePsmPayload(xml);
    c.personalMessage = psm;
    c.currentMedia = currentMedia;
    this.core.emit('personalMessage', { email: c.email, text: psm, currentMedia });
  }

  /** The other endpoints of our account, from our own UBX (MSNP16+). */
  endpoints: MsnEndpoint[] = [];

  private onOwnEndpoints(xml: string): void {
    const names = new Map<string, string>();
    for (const m of xml.matchAll(/<PrivateEndpointData id="([^"]+)">([\s\S]*?)<\/PrivateEndpointData>/g)) {
      const name = /<EpName>([\s\S]*?)<\/EpName>/.exec(m[2]!)?.[1];
      if (name) names.set(m[1]!.toLowerCase(), unescapeXml(name));
    }
    const mine = this.core.machineGuid.toLowerCase();
    const others: MsnEndpoint[] = [];
    for (const m of xml.matchAll(/<EndpointData id="([^"]+)"/g)) {
      const id = m[1]!.toLowerCase();
      if (id === mine || others.some((e) => e.id === id)) continue;
      others.push(names.has(id) ? { id, name: names.get(id) } : { id });
    }
    const changed = JSON.stringify(others) !== JSON.stringify(this.endpoints);
    this.endpoints = others;
    if (changed) this.core.emit('endpoints', { endpoints: others.map((e) => ({ ...e })) });
  }

  /** Every online contact goes FLN (the NS connection dropped or we logged out). */
  markAllOffline(emit: boolean): void {
    for (const c of this.core.contacts.values()) {
      if (c.status === 'FLN') continue;
      c.status = 'FLN';
      c.clientId = 0;
      if (emit) {
        this.core.emit('presence', {
          email: c.email,
          status: 'FLN',
          nickname: c.nickname,
          clientId: 0,
          msnObject: c.msnObject,
          initial: false,
        });
      }
    }
  }

  // ---------------------------------------------------------------- own presence

  async setStatus(status: SettableStatus): Promise<void> {
    if (!SETTABLE_STATUSES.includes(status)) throw new MsnError(201, `invalid status ${status}`, 'CHG');
    this.status = status;
    if (this.core.state !== 'online') return; // applied at the next (re)connect
    const reply = await this.core.requireOnline().request('CHG', this.chgArgs(status));
    this.status = (reply.args[1] as SettableStatus) ?? status;
  }

  async setPersonalMessage(text: string): Promise<void> {
    this.personalMessage = text;
    if (this.core.state !== 'online' || this.core.version < 11) return;
    await this.core.requireOnline().request('UUX', [], { payload: this.psmPayload(text) });
  }

  async setNickname(name: string): Promise<void> {
    if (name.length === 0) throw new MsnError(209, 'empty nickname', 'PRP');
    this.wantedNickname = name;
    if (this.core.state !== 'online') return;
    const reply = await this.core.requireOnline().request('PRP', ['MFN', encodeText(name)]);
    const nick = decodeText(reply.args[2], name);
    this.nickname = nick;
    this.core.emit('nickname', { email: this.core.email, nickname: nick });
  }

  async setAvatar(png: Buffer | null): Promise<MsnObject | undefined> {
    if (png === null) {
      this.avatar = undefined;
    } else {
      if (png.length < 8 || !png.subarray(0, 8).equals(PNG_SIGNATURE))
        throw new MsnError(201, 'display picture must be a PNG', 'CHG');
      this.avatar = { object: createMsnObject(this.core.email, png), data: Buffer.from(png) };
    }
    if (this.core.state === 'online') await this.setStatus(this.status);
    return this.avatar?.object;
  }
}
