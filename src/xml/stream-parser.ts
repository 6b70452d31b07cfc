// Incremental parser for one XML stream (RFC 6120 §4), built on ltx's SAX
// parser. ltx alone has no limits and some unsafe habits (it swallows a
// DOCTYPE, throws on unknown entities, passes mismatched end tags), so this
// wrapper adds what an XMPP server needs:
//   - strict UTF-8 decoding across chunk boundaries (invalid bytes → error),
//   - restricted XML (RFC 6120 §11.1): no DTD, comments or processing
//     instructions, so entity-expansion bombs never reach the parser,
//   - a per-stanza size limit that counts what the stanza costs in memory,
//     not only its bytes: each element, attribute and text node is charged
//     what the parsed tree spends on it (measured on Node 20: ~150 bytes
//     per element or text node, ~150 more for an element with children,
//     ~80 per attribute), so 240 KB of `<a/>` cannot become 10 MB of
//     objects; and an element depth limit,
//   - a process-wide budget (ParseBudget) for the unfinished stanzas of all
//     streams together,
//   - end-tag matching and "only whitespace between stanzas".
// A stream restart (after STARTTLS or SASL) needs a fresh parser: call reset().
// A parser that is dropped must release() what it holds in the budget.
import SaxLtx from 'ltx/src/parsers/ltx.js';
import { Element } from './element.ts';

export type StreamErrorCondition =
  | 'bad-format'
  | 'not-well-formed'
  | 'restricted-xml'
  | 'policy-violation'
  | 'invalid-namespace'
  | 'unsupported-encoding'
  | 'resource-constraint';

export interface ParserLimits {
  /**
   * Largest stanza, in bytes on the wire plus the structure charges below
   * (so roughly what the parsed stanza occupies in memory).
   */
  maxStanzaSize: number;
  /** Deepest element nesting inside a stanza (the stanza itself is depth 1). */
  maxDepth: number;
  /** Shared by all the parsers of a server; absent means unbounded. */
  budget?: ParseBudget;
}

// What the parsed tree spends per node beyond the node's own bytes (ltx
// Elements on Node 20, heap measured over 10,000 of each; an element is
// charged as if it had children, whose array costs it ~150 more).
export const ELEMENT_COST = 250;
export const ATTRIBUTE_COST = 80;
export const TEXT_COST = 160;

/**
 * The memory all unfinished stanzas of a server may hold together. A
 * stream whose stanza would take it over the limit is ended with
 * resource-constraint; what others hold is untouched.
 */
export class ParseBudget {
  used = 0;
  constructor(readonly limit: number) {}
}

export interface ParserHandlers {
  open(name: string, attrs: Record<string, string>): void;
  stanza(el: Element): void;
  close(): void;
  error(condition: StreamErrorCondition, text: string): void;
}

// XML 1.0 forbids these code points even as character references.
const ILLEGAL_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const RESTRICTED = /<[!?]/;
// XML 1.0 Name (§2.3). ltx takes anything up to whitespace or '=' as a name,
// so `<a"b/>` or an attribute named `x'y` would otherwise be relayed to
// other users as markup their parsers reject, breaking their streams.
const NAME_START =
  ':A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D\\u2070-\\u218F' +
  '\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const XML_NAME = new RegExp(`^[${NAME_START}][${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040]*$`, 'u');
const PIECE = 16 * 1024;

export class XmlStreamParser {
  private sax!: SaxLtx;
  private decoder!: TextDecoder;
  private depth = 0;
  private current: Element | null = null;
  private names: string[] = [];
  private bytes = 0;
  private failed = false;
  private rootSeen = false;
  private pendingLt = false;
  private rootAttrs: Record<string, string> = {};
  /** Structure charges of the stanza being read (elements, attributes, text nodes). */
  private structure = 0;
  /** What this parser holds in the budget now. */
  private charged = 0;

  constructor(
    private limits: ParserLimits,
    private readonly handlers: ParserHandlers,
  ) {
    this.reset();
  }

  /** Changes the limits (e.g. once the peer has authenticated); applies from the next byte. */
  setLimits(limits: ParserLimits): void {
    this.limits = limits;
  }

  /** What the stanza being read costs so far (bytes plus structure). */
  get holding(): number {
    return this.bytes + this.structure;
  }

  /** Gives back what this parser holds in the shared budget (call when dropping it). */
  release(): void {
    if (this.charged && this.limits.budget) this.limits.budget.used -= this.charged;
    this.charged = 0;
  }

  /** Starts a new stream on the same connection (after STARTTLS / SASL). */
  reset(): void {
    this.release();
    this.structure = 0;
    this.sax = new SaxLtx();
    this.decoder = new TextDecoder('utf-8', { fatal: true });
    this.depth = 0;
    this.current = null;
    this.names = [];
    this.bytes = 0;
    this.rootSeen = false;
    this.rootAttrs = {};
    this.pendingLt = false;
    this.sax.on('startElement', (name, attrs) => this.onStart(name, attrs));
    this.sax.on('endElement', (name) => this.onEnd(name));
    this.sax.on('text', (text) => this.onText(text));
  }

  write(chunk: Buffer | string): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    // Feed big chunks in pieces so the stanza size limit trips early.
    const piece = Math.min(PIECE, Math.max(512, this.limits.maxStanzaSize >> 2));
    for (let off = 0; off < buf.length && !this.failed; off += piece) {
      this.writePiece(buf.subarray(off, Math.min(off + piece, buf.length)));
    }
  }

  private writePiece(piece: Buffer): void {
    let text: string;
    try {
      text = this.decoder.decode(piece, { stream: true });
    } catch {
      return this.fail('not-well-formed', 'invalid UTF-8');
    }
    if (text.length === 0) return;
    if (ILLEGAL_CHARS.test(text)) return this.fail('not-well-formed', 'character not allowed in XML');
    if ((this.pendingLt && (text[0] === '!' || text[0] === '?')) || RESTRICTED.test(text)) {
      // The XML declaration may precede the stream header; nothing else may.
      if (!this.onlyXmlDeclaration(text)) {
        return this.fail('restricted-xml', 'comments, processing instructions and DTDs are not allowed');
      }
    }
    this.pendingLt = text.endsWith('<');
    this.bytes += piece.length;
    if (!this.charge()) return;
    try {
      this.sax.write(text);
    } catch (err) {
      const msg = (err as Error).message ?? '';
      return this.fail(msg.includes('entity') ? 'restricted-xml' : 'not-well-formed', msg);
    }
    if (!this.failed) this.charge();
  }

  /**
   * Brings the budget up to date with what the stanza holds; false (and the
   * stream failed) when the stanza is too large or the budget is spent.
   */
  private charge(): boolean {
    const holding = this.bytes + this.structure;
    if (holding > this.limits.maxStanzaSize) {
      this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
      return false;
    }
    const budget = this.limits.budget;
    if (budget) {
      budget.used += holding - this.charged;
      this.charged = holding;
      if (budget.used > budget.limit && holding > 0) {
        this.fail('resource-constraint', 'the server is short of memory for unfinished stanzas: try again later');
        return false;
      }
    }
    return true;
  }

  /** True when the only `<?`/`<!` in text is an XML declaration before the root. */
  private onlyXmlDeclaration(text: string): boolean {
    if (this.rootSeen) return false;
    const trimmed = this.pendingLt ? `<${text}` : text;
    const rest = trimmed.replace(/^\s*<\?xml\s[^>]*\?>/, '');
    return rest !== trimmed && !RESTRICTED.test(rest);
  }

  private onStart(name: string, attrs: Record<string, string>): void {
    if (this.failed) return;
    if (this.depth === 0) {
      const bad = badName(name, attrs, (p) => attrs[`xmlns:${p}`]);
      if (bad) return this.fail('not-well-formed', bad);
      this.rootSeen = true;
      this.rootAttrs = attrs;
      this.depth = 1;
      this.names.push(name);
      this.bytes = 0;
      this.handlers.open(name, attrs);
      return;
    }
    if (this.depth >= this.limits.maxDepth + 1) {
      return this.fail('policy-violation', `elements nested deeper than ${this.limits.maxDepth}`);
    }
    this.fromHeader = null;
    this.currentAttrs = attrs;
    let n = 0;
    for (const _ in attrs) n++;
    this.structure += ELEMENT_COST + n * ATTRIBUTE_COST;
    // Checked per element, so one big piece of tiny elements stops early.
    if (this.bytes + this.structure > this.limits.maxStanzaSize) {
      return this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
    }
    const bad = badName(name, attrs, this.lookupPrefix);
    if (bad) return this.fail('not-well-formed', bad);
    // A prefix bound only on the stream header is declared on the element
    // itself, so the stanza stays namespace-well-formed when it is relayed
    // alone (another stream, a WebSocket frame, offline storage).
    // (Read back as the wider type: the lookup above may have filled it.)
    const fromHeader = this.fromHeader as Map<string, string> | null;
    if (fromHeader) for (const [prefix, ns] of fromHeader) attrs[`xmlns:${prefix}`] = ns;
    const el = new Element(name, attrs);
    if (this.current) this.current.cnode(el);
    this.current = el;
    this.names.push(name);
    this.depth++;
  }

  private onEnd(name: string): void {
    if (this.failed) return;
    const expected = this.names.pop();
    if (expected !== name) return this.fail('not-well-formed', `end tag </${name}> does not match <${expected}>`);
    this.depth--;
    if (this.depth === 0) {
      this.handlers.close();
      return;
    }
    const el = this.current!;
    this.current = el.parent;
    if (this.depth === 1) {
      el.parent = null;
      // `bytes` counts whole pieces, so it can overstate a stanza that
      // ended mid-piece: only then is the exact size worth computing.
      if (
        this.bytes + this.structure > this.limits.maxStanzaSize &&
        Buffer.byteLength(el.toString()) + this.structure > this.limits.maxStanzaSize
      ) {
        return this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
      }
      this.bytes = 0;
      this.structure = 0;
      // The stanza now belongs to the router: it leaves the parse budget.
      this.release();
      this.handlers.stanza(el);
    }
  }

  /** The namespace bound to a prefix here: on the element, its ancestors, or the stream header. */
  // Per element: prefixes found only on the stream header (rare, so lazy).
  private fromHeader: Map<string, string> | null = null;
  private currentAttrs: Record<string, string> = {};

  /** Resolves a prefix for the element being opened; one bound function, not a closure per element. */
  private readonly lookupPrefix = (prefix: string): string | undefined => {
    const key = `xmlns:${prefix}`;
    const own = this.currentAttrs[key];
    if (own !== undefined) return own;
    for (let e = this.current; e; e = e.parent) if (e.attrs[key] !== undefined) return e.attrs[key];
    const ns = this.rootAttrs[key];
    if (ns) {
      this.fromHeader ??= new Map();
      this.fromHeader.set(prefix, ns);
    }
    return ns;
  };


  private onText(text: string): void {
    if (this.failed) return;
    if (this.current) {
      this.structure += TEXT_COST;
      if (this.bytes + this.structure > this.limits.maxStanzaSize) {
        return this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
      }
      this.current.t(text);
    } else if (text.trim() !== '') {
      this.fail('not-well-formed', 'text outside of a stanza');
    }
  }

  private fail(condition: StreamErrorCondition, text: string): void {
    if (this.failed) return;
    this.failed = true;
    // What was parsed is dropped with the stream.
    this.release();
    this.current = null;
    this.handlers.error(condition, text);
  }
}

/**
 * Why an element's name or attributes are not well-formed (XML 1.0 Names,
 * Namespaces in XML 1.0 QNames with bound prefixes), or null. `lookup`
 * gives the namespace a prefix is bound to in scope.
 */
// Unprefixed names already seen valid: most stanzas reuse a few dozen.
const GOOD_NAMES = new Set<string>();
const GOOD_NAMES_MAX = 4096;

function shortName(n: string): string {
  return n.length > 64 ? `${n.slice(0, 64)}…` : n;
}

function checkName(
  n: string,
  isAttr: boolean,
  attrs: Record<string, string>,
  lookup: (prefix: string) => string | undefined,
): string | null {
  if (GOOD_NAMES.has(n)) return null;
  if (!XML_NAME.test(n)) return `invalid XML name '${shortName(n)}'`;
  const parts = n.split(':');
  if (parts.length > 2 || parts.includes('')) return `invalid qualified name '${shortName(n)}'`;
  if (parts.length === 1) {
    if (GOOD_NAMES.size < GOOD_NAMES_MAX) GOOD_NAMES.add(n);
    return null;
  }
  const prefix = parts[0]!;
  if (prefix === 'xml') return null;
  if (prefix === 'xmlns') {
    if (!isAttr) return `element name with the xmlns prefix '${shortName(n)}'`;
    return attrs[n] === '' ? `empty namespace for prefix '${shortName(parts[1]!)}'` : null;
  }
  if (!lookup(prefix)) return `unbound namespace prefix '${shortName(prefix)}'`;
  return null;
}

function badName(
  name: string,
  attrs: Record<string, string>,
  lookup: (prefix: string) => string | undefined,
): string | null {
  const bad = checkName(name, false, attrs, lookup);
  if (bad) return bad;
  for (const key in attrs) {
    const b = checkName(key, true, attrs, lookup);
    if (b) return b;
  }
  return null;
}
