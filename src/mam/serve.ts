// Answering a XEP-0313 query from an archive, for any archive owner: a
// user's archive (modules/mam.ts) or a room's (the MUC service passes its
// own archive, owner, `selectWith` and `present`). The page is read lazily
// from the store (never the whole archive), sent as <result/> messages,
// and summed up in the <fin/> that goes into the iq result.
import type { Jid } from '../jid/jid.ts';
import type { ArchiveEntry, ArchiveStore } from '../storage/types.ts';
import { type Element, el, parse } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { MamQuery } from './query.ts';

/** How a `with` JID selects entries: the correspondent index key, and a finer check per stanza. */
export interface WithSelection {
  index: string;
  accept?(stanza: Element, entry: ArchiveEntry): boolean;
}

export interface ServeOptions {
  archive: ArchiveStore;
  owner: string;
  query: MamQuery;
  /** Page size when the client gives none, and the most it may ask for. */
  pageSize: { default: number; max: number };
  /** Addresses of the result messages: the requester, and the archive's JID (omitted for one's own). */
  to: string;
  from?: string;
  send(message: Element): void;
  /** Default: user-archive rules (a bare JID matches any resource; a full JID only itself). */
  selectWith?(jid: Jid): WithSelection;
  /** The message to forward for an entry (a room sets occupant `from`, drops `to`); null skips it. */
  present?(stanza: Element, entry: ArchiveEntry): Element | null;
  /** Called if an entry cannot be read back (logged by the caller; the entry is skipped). */
  onBadEntry?(entry: ArchiveEntry, err: unknown): void;
}

/** XEP-0313 §4.1.2 for a user's archive: bare JIDs match every resource, full JIDs only themselves. */
export function userArchiveWith(jid: Jid): WithSelection {
  if (!jid.resource) return { index: jid.bare };
  const full = jid.toString();
  return { index: jid.bare, accept: (s) => s.attrs.from === full || s.attrs.to === full };
}

/** Sends the page; resolves with the <fin/> for the iq result. Errors are StanzaErrors. */
export async function serveQuery(o: ServeOptions): Promise<Element> {
  const q = o.query;
  const limit = Math.min(q.max ?? o.pageSize.default, o.pageSize.max);
  // Each named id is a lookup: no more of them than a page may hold.
  if (q.ids && q.ids.length > o.pageSize.max) {
    throw new StanzaError('policy-violation', `at most ${o.pageSize.max} ids per query`);
  }
  const ids = [q.after, q.before || undefined, q.afterId, q.beforeId, ...(q.ids ?? [])].filter(
    (id): id is string => id !== undefined,
  );
  if (ids.length) {
    const found = await o.archive.get(o.owner, [...new Set(ids)]);
    if (found.includes(undefined)) throw new StanzaError('item-not-found', 'no such id in this archive');
  }
  const selection = q.with ? (o.selectWith ?? userArchiveWith)(q.with) : undefined;
  const afterId = later(q.afterId, q.after);
  const beforeId = earlier(q.beforeId, q.before || undefined);
  // RSM <before/> pages backwards from the end (or from its id).
  const backwards = q.before !== undefined;

  const page: Array<{ entry: ArchiveEntry; stanza: Element }> = [];
  let complete = true;
  const take = (entry: ArchiveEntry): boolean => {
    let stanza: Element;
    try {
      stanza = parse(entry.xml);
    } catch (err) {
      o.onBadEntry?.(entry, err);
      return true;
    }
    if (selection?.accept && !selection.accept(stanza, entry)) return true;
    if (page.length === limit) {
      complete = false;
      return false;
    }
    page.push({ entry, stanza });
    return true;
  };

  if (q.ids) {
    const named = (await o.archive.get(o.owner, q.ids)).filter((e): e is ArchiveEntry => e !== undefined);
    named.sort((a, b) => (a.id < b.id ? -1 : 1));
    if (backwards) named.reverse();
    for (const e of named) {
      if (selection && e.with !== selection.index) continue;
      if ((afterId && e.id <= afterId) || (beforeId && e.id >= beforeId)) continue;
      if ((q.start !== undefined && e.when < q.start) || (q.end !== undefined && e.when > q.end)) continue;
      if (!take(e)) break;
    }
  } else {
    const entries = o.archive.query(o.owner, {
      with: selection?.index,
      afterId,
      beforeId,
      start: q.start,
      end: q.end,
      reverse: backwards,
      // One more than the page says whether the page is the last one.
      limit: selection?.accept ? undefined : limit + 1,
    });
    for await (const e of entries) if (!take(e)) break;
  }
  if (backwards) page.reverse();

  const order = q.flip ? [...page].reverse() : page;
  for (const { entry, stanza } of order) {
    const forwarded = o.present ? o.present(stanza, entry) : stanza;
    if (!forwarded) continue;
    forwarded.attrs.xmlns = NS.client;
    o.send(
      el(
        'message',
        { to: o.to, from: o.from },
        el(
          'result',
          { xmlns: NS.mam, queryid: q.queryId, id: entry.id },
          el('forwarded', { xmlns: NS.forward }, el('delay', { xmlns: NS.delay, stamp: stamp(entry.when) }), forwarded),
        ),
      ),
    );
  }
  const set = el('set', { xmlns: NS.rsm });
  if (page.length) {
    set.cnode(el('first', null, page[0]!.entry.id));
    set.cnode(el('last', null, page[page.length - 1]!.entry.id));
  }
  return el('fin', { xmlns: NS.mam, queryid: q.queryId, complete: complete ? 'true' : undefined }, set);
}

/** XEP-0313 §5 (#extended): the first and last entries of an archive. */
export async function archiveMetadata(archive: ArchiveStore, owner: string): Promise<Element> {
  const md = el('metadata', { xmlns: NS.mam });
  const first = await firstOf(archive.query(owner, { limit: 1 }));
  if (!first) return md;
  const last = (await firstOf(archive.query(owner, { limit: 1, reverse: true }))) ?? first;
  md.cnode(el('start', { id: first.id, timestamp: stamp(first.when) }));
  md.cnode(el('end', { id: last.id, timestamp: stamp(last.when) }));
  return md;
}

async function firstOf(entries: AsyncIterable<ArchiveEntry>): Promise<ArchiveEntry | undefined> {
  for await (const e of entries) return e;
  return undefined;
}

/** XEP-0082 with milliseconds. */
function stamp(ms: number): string {
  return new Date(ms).toISOString();
}

function later(a?: string, b?: string): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

function earlier(a?: string, b?: string): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}
