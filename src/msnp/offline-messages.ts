/**
 * Offline messages (OIM, MSNP13+), both ways, on top of soap/oim.ts.
 * Incoming: the notification server's Mail-Data (in the login's
 * initial-mail-data MSG, or an OIM notification later) lists waiting
 * messages; each is fetched, emitted as 'offlineMessage' in the order they
 * were sent, and then deleted on the server. Outgoing: Store2, with the lock
 * key worked out once per login and a run id and sequence number per contact.
 */
import { MsnError } from './errors.ts';
import { getHeader, type MimeMessage, parseFields } from './mime.ts';
import { type SessionCore, versionNumber } from './session-core.ts';
import {
  deleteMessages,
  getMessage,
  getMetadata,
  newRunId,
  type OfflineMessage,
  type OimContext,
  type OimHeader,
  parseMailData,
  storeOim,
} from './soap/oim.ts';

export class OfflineMessages {
  private lockKey: string | undefined;
  private readonly runs = new Map<string, { id: string; seq: number }>();
  /** Mail-Data seen before the login finished: handled once it has. */
  private pending: string[] = [];
  private ready = false;
  /** Fetches run one after another, so messages come out in order and none twice. */
  private chain: Promise<void> = Promise.resolve();
  private readonly seen = new Set<string>();

  constructor(
    private readonly core: SessionCore,
    private readonly nickname: () => string,
  ) {}

  /** True when the negotiated protocol has offline messages and the login got the tickets they need. */
  get supported(): boolean {
    return this.core.version >= 13 && this.core.tokens.has('messenger.msn.com') && this.storeTicket() !== undefined;
  }

  private ctx(): OimContext {
    return { baseUrl: this.core.servicesUrl, timeout: this.core.timeouts.request, trace: this.core.opts.trace };
  }

  /** The ticket Store2 takes: messengersecure.live.com where granted, else messenger.msn.com. */
  private storeTicket(): string | undefined {
    return this.core.tokens.get('messengersecure.live.com')?.token ?? this.core.tokens.get('messenger.msn.com')?.token;
  }

  /** A new login: forget the old lock key and runs; mail data waits until `loggedIn()`. */
  reset(): void {
    this.lockKey = undefined;
    this.runs.clear();
    this.ready = false;
    this.pending = [];
  }

  loggedIn(): void {
    this.ready = true;
    const waiting = this.pending;
    this.pending = [];
    for (const md of waiting) this.fetch(md);
  }

  /** An NS MSG from Hotmail: the initial mail data, or a new-OIM notification. */
  onHotmailMessage(msg: MimeMessage): boolean {
    const type = (getHeader(msg, 'Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'text/x-msmsgsinitialmdatanotification' && type !== 'text/x-msmsgsoimnotification') return false;
    // The Mail-Data field is in the body for these two types.
    const md = parseFields(msg.body.toString('utf8')).get('mail-data') ?? getHeader(msg, 'Mail-Data');
    if (md === undefined || this.core.version < 13) return true;
    if (this.ready) this.fetch(md);
    else this.pending.push(md);
    return true;
  }

  private fetch(mailData: string): void {
    this.chain = this.chain.then(() => this.fetchNow(mailData)).catch((err: Error) => this.core.emitError(err));
  }

  private async fetchNow(mailData: string): Promise<void> {
    const ticket = this.core.tokens.get('messenger.msn.com')?.token;
    if (!ticket) return;
    let headers: OimHeader[] | 'too-large' = parseMailData(mailData);
    if (headers === 'too-large') headers = await getMetadata(this.ctx(), ticket);
    const fresh = headers.filter((h) => !this.seen.has(h.id));
    if (fresh.length === 0) return;
    const messages: OfflineMessage[] = [];
    for (const h of fresh) {
      const m = await getMessage(this.ctx(), ticket, h.id);
      messages.push({ ...m, from: m.from || h.from, nickname: m.nickname || h.nickname });
    }
    messages.sort((a, b) => a.sent.getTime() - b.sent.getTime());
    for (const m of messages) {
      this.seen.add(m.id);
      this.core.emit('offlineMessage', { from: m.from, nickname: m.nickname, text: m.text, sent: m.sent });
    }
    // Emitted (and handed on by every listener): the server may forget them.
    await deleteMessages(this.ctx(), ticket, messages.map((m) => m.id));
  }

  /** Leaves `text` for an offline contact. Rejects with MsnError when the service refuses. */
  async send(to: string, text: string): Promise<void> {
    const core = this.core;
    core.requireOnline();
    const ticket = this.storeTicket();
    if (core.version < 13 || !ticket) throw new MsnError(502, `offline messages need MSNP13 or later (${core.negotiated})`, 'OIM');
    const who = to.toLowerCase();
    let run = this.runs.get(who);
    if (!run) {
      run = { id: newRunId(), seq: 0 };
      this.runs.set(who, run);
    }
    run.seq++;
    this.lockKey = await storeOim(this.ctx(), {
      ticket,
      from: core.email,
      fromNickname: this.nickname(),
      to: who,
      text,
      runId: run.id,
      sequence: run.seq,
      msnpVersion: `MSNP${versionNumber(core.negotiated)}`,
      lockKey: this.lockKey,
    });
  }
}
