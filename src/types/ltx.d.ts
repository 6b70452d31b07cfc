// ltx ships no TypeScript declarations; this covers the part jabberfly uses.
declare module 'ltx' {
  export type Node = Element | string;
  export class Element {
    constructor(name: string, attrs?: Record<string, string | number | undefined | null>);
    name: string;
    parent: Element | null;
    children: Node[];
    attrs: Record<string, string>;
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    getAttr(name: string, xmlns?: string): string | undefined;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    c(name: string, attrs?: Record<string, string | number | undefined | null>): Element;
    cnode<T extends Node>(child: T): T;
    append(...nodes: Node[]): Element;
    t(text: string): Element;
    up(): Element;
    root(): Element;
    remove(el: Element | string, xmlns?: string): Element;
    text(val?: string): string;
    attr(attr: string, val?: string): string;
    toString(): string;
    write(writer: (chunk: string) => void): void;
  }
  export class SaxLtx {
    on(event: 'startElement', cb: (name: string, attrs: Record<string, string>) => void): this;
    on(event: 'endElement', cb: (name: string, selfClosing: boolean) => void): this;
    on(event: 'text', cb: (text: string) => void): this;
    write(data: string): void;
    end(data?: string): void;
  }
  export function parse(xml: string): Element;
  export function clone<T extends Element>(el: T): T;
  export function escapeXML(s: string): string;
  export function escapeXMLText(s: string): string;
  export function createElement(
    name: string,
    attrs?: Record<string, string | number | undefined | null> | null,
    ...children: Node[]
  ): Element;
}
declare module 'ltx/src/parsers/ltx.js' {
  import { SaxLtx } from 'ltx';
  export default SaxLtx;
}
