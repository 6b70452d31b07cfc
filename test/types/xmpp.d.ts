// @xmpp/client ships no TypeScript declarations; tests use this much of it.
declare module '@xmpp/xml' {
  export interface Element {
    name: string;
    attrs: Record<string, string>;
    children: Array<Element | string>;
    is(name: string, xmlns?: string): boolean;
    // Loose on purpose: tests assert on the shape and fail loudly when it is absent.
    getChild(name: string, xmlns?: string): any;
    getChildren(name: string, xmlns?: string): any[];
    text(): string;
    [key: string]: any;
    getChildText(name: string, xmlns?: string): string | null;
    getChildElements(): Element[];
    getText(): string;
    getNS(): string | undefined;
    toString(): string;
  }
  export function xml(name: string, attrs?: Record<string, unknown> | null, ...children: unknown[]): Element;
  export default xml;
}
declare module '@xmpp/client' {
  import type { Element } from '@xmpp/xml';
  export { xml } from '@xmpp/xml';
  export interface Client {
    start(): Promise<{ toString(): string }>;
    stop(): Promise<void>;
    send(el: Element): Promise<void>;
    on(event: string, cb: (...args: any[]) => void): void;
    once(event: string, cb: (...args: any[]) => void): void;
    reconnect: { stop(): void };
    iqCaller: { request(el: Element, timeout?: number): Promise<Element> };
    socket?: { socket?: { destroy(): void }; end?(): void };
    jid?: { toString(): string };
    status: string;
    [key: string]: any;
  }
  export function client(options: Record<string, unknown>): Client;
  export function jid(s: string): { toString(): string; bare(): { toString(): string } };
}
