// One stanza sent to many recipients (a room's message to every occupant):
// each recipient gets its own copy (its own attributes and child list, so a
// module changing one copy on its way cannot reach the others), while the
// children themselves are shared and serialised once. Building each copy
// with el() and serialising it with ltx cost ~10x more than the rest of
// the delivery. The children must not be changed after the first copy.
import { Element, escapeXML, escapeXMLText } from './element.ts';
import { xmlString } from './serialize.ts';

type Node = Element | string;

/** A copy whose children's XML was computed once for all copies. */
class FanoutCopy extends Element {
  /** The children's XML, valid while `children` is still the list it was made for. */
  inner = '';
  innerOf: Node[] = [];
  innerLength = 0;

  override toString(): string {
    let s = '';
    this.write((chunk) => {
      s += chunk;
    });
    return s;
  }

  override write(writer: (chunk: string) => void): void {
    // Changed since it was made (a child added or removed): serialise it the ordinary way.
    if (this.children !== this.innerOf || this.children.length !== this.innerLength)
      return super.write(writer);
    let s = `<${this.name}`;
    for (const k in this.attrs) {
      const v = this.attrs[k];
      if (v !== undefined && v !== null) s += ` ${k}="${escapeXML(String(v))}"`;
    }
    writer(`${s}>${this.inner}</${this.name}>`);
  }
}

export class Fanout {
  private inner: string | null = null;

  constructor(private readonly stanza: Element) {}

  /** The stanza addressed to `to`. */
  to(to: string): Element {
    const copy = new FanoutCopy(this.stanza.name);
    const attrs: Record<string, string> = {};
    for (const k in this.stanza.attrs) attrs[k] = this.stanza.attrs[k]!;
    attrs.to = to;
    copy.attrs = attrs;
    copy.children = this.stanza.children.slice();
    if (this.inner === null) {
      let inner = '';
      for (const c of this.stanza.children) inner += typeof c === 'string' ? escapeXMLText(c) : xmlString(c);
      this.inner = inner;
    }
    copy.inner = this.inner;
    copy.innerOf = copy.children;
    copy.innerLength = copy.children.length;
    return copy;
  }
}
