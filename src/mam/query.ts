// Reading a XEP-0313 query: the <query/> element with its data form
// (with, start, end, and the #extended before-id, after-id, ids), its RSM
// <set/> (XEP-0059: max, after, before) and <flip-page/>. The same reader
// serves every archive (user archives here, room archives in the MUC
// service); what the archive does with the query is in serve.ts.
import { Jid } from '../jid/jid.ts';
import { type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

export interface MamQuery {
  queryId?: string;
  with?: Jid;
  /** ms since the epoch, inclusive. */
  start?: number;
  end?: number;
  /** Exclusive bounds by archive id (#extended). */
  afterId?: string;
  beforeId?: string;
  /** Exactly these entries (#extended). */
  ids?: string[];
  /** RSM: page size asked for (the archive caps it). */
  max?: number;
  /** RSM: the page after / before this id; `before: ''` asks for the last page. */
  after?: string;
  before?: string;
  /** Send the page newest first (#extended); first/last keep their meaning. */
  flip: boolean;
}

/** The form a client may fill in (answer to an iq get with an empty <query/>). */
export function queryForm(): Element {
  const field = (name: string, type: string, ...children: Element[]) => el('field', { var: name, type }, ...children);
  return el(
    'query',
    { xmlns: NS.mam },
    el(
      'x',
      { xmlns: NS.dataForms, type: 'form' },
      field('FORM_TYPE', 'hidden', el('value', null, NS.mam)),
      field('with', 'jid-single'),
      field('start', 'text-single'),
      field('end', 'text-single'),
      field('before-id', 'text-single'),
      field('after-id', 'text-single'),
      // An open list (XEP-0122): any ids may be given, none are offered.
      field('ids', 'list-multi', el('validate', { xmlns: 'http://jabber.org/protocol/xdata-validate' }, el('open'))),
    ),
  );
}

/** Reads a query; bad-request (or feature-not-implemented for unknown fields) when it is wrong. */
export function readMamQuery(query: Element): MamQuery {
  if (query.attrs.node !== undefined) throw new StanzaError('feature-not-implemented', 'this archive has no nodes');
  const q: MamQuery = { flip: query.getChild('flip-page') !== undefined };
  if (query.attrs.queryid !== undefined) q.queryId = query.attrs.queryid;
  const form = query.getChild('x', NS.dataForms);
  if (form) readForm(form, q);
  const set = query.getChild('set', NS.rsm);
  if (set) readRsm(set, q);
  return q;
}

function readForm(form: Element, q: MamQuery): void {
  if (form.attrs.type !== undefined && form.attrs.type !== 'submit' && form.attrs.type !== 'form') {
    throw new StanzaError('bad-request', 'the query form must be submitted');
  }
  for (const field of form.getChildren('field')) {
    const name = field.attrs.var;
    const values = field.getChildren('value').map((v) => v.getText().trim());
    const value = values[0];
    if (name === 'FORM_TYPE') {
      if (value !== NS.mam) throw new StanzaError('bad-request', `FORM_TYPE must be ${NS.mam}`);
      continue;
    }
    // An empty field is a field not given (clients send the blank form back).
    if (name !== 'ids' && (value === undefined || value === '')) continue;
    switch (name) {
      case 'with': {
        const jid = Jid.tryParse(value);
        if (!jid) throw new StanzaError('jid-malformed', `'with' is not a JID: ${value}`);
        q.with = jid;
        break;
      }
      case 'start':
        q.start = readTime(name, value!);
        break;
      case 'end':
        q.end = readTime(name, value!);
        break;
      case 'after-id':
        q.afterId = value;
        break;
      case 'before-id':
        q.beforeId = value;
        break;
      case 'ids':
        if (values.length) q.ids = [...new Set(values.filter((v) => v !== ''))];
        break;
      default:
        // XEP-0313 §4.1.1: a field the server does not know is refused, not ignored.
        throw new StanzaError('feature-not-implemented', `unknown query field '${name ?? ''}'`);
    }
  }
}

function readRsm(set: Element, q: MamQuery): void {
  const max = set.getChildText('max');
  if (max !== null) {
    if (!/^\d{1,9}$/.test(max.trim())) throw new StanzaError('bad-request', 'RSM max must be a whole number');
    q.max = Number(max.trim());
  }
  const after = set.getChild('after');
  if (after) q.after = after.getText().trim();
  const before = set.getChild('before');
  if (before) q.before = before.getText().trim();
  if (q.after === '') throw new StanzaError('bad-request', 'RSM after needs an id');
  if (set.getChild('index')) throw new StanzaError('feature-not-implemented', 'RSM index is not supported; page with after/before');
}

// XEP-0082 DateTime: 2010-06-07T00:00:00Z, optional fraction, Z or ±hh:mm.
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function readTime(name: string, value: string): number {
  const ms = DATETIME.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new StanzaError('bad-request', `'${name}' is not a XEP-0082 date and time: ${value}`);
  return ms;
}
