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
import { type MsnStatus, SETTABLE_STATUSES, type SettableStatus } from './types.ts';

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
    if (this.core.version >= 11 && this.personalMessage !== '') {
      await conn.request('UUX', [], { payload: buildPsmPayload(this.personalMessage) });
    }
  }

  private chgArgs(status: SettableStatus): string[] {
    const args = [status, String(this.clientId)];
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
        // ILN trid status email nick [clientid [msnobj]]
        this.onContactPresence(a[1] as MsnStatus, a[2], a[3], a[4], a[5], true);
        return true;
      case 'NLN':
        // NLN status email nick [clientid [msnobj]]
        this.onContactPresence(a[0] as MsnStatus, a[1], a[2], a[3], a[4], false);
        return true;
      case 'FLN':
        this.onContactPresence('FLN', a[0], undefined, undefined, undefined, false);
        return true;
      case 'UBX':
        this.onUbx(a[0], cmd.payload);
        return true;
      default:
        return false;
    }
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
    const c = this.core.ensureContact(email);
    const { psm, currentMedia } = parsePsmPayload(payload?.toString('utf8') ?? '');
    c.personalMessage = psm;
    c.currentMedia = currentMedia;
    this.core.emit('personalMessage', { email: c.email, text: psm, currentMedia });
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
    await this.core.requireOnline().request('UUX', [], { payload: buildPsmPayload(text) });
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
