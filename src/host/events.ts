// A named-event bus with priorities, after Prosody's util.events: handlers
// run from the highest priority down; the first that says "handled" stops
// the chain. A handler signals "handled" by returning true or a Promise (an
// async handler owns the stanza); returning false/undefined passes it on.
export type HandlerResult = boolean | void | Promise<unknown>;
export type Handler<E> = (event: E) => HandlerResult;

interface Entry<E> {
  handler: Handler<E>;
  priority: number;
}

export class EventBus<E> {
  private readonly handlers = new Map<string, Entry<E>[]>();

  /** Adds a handler; returns a function that removes it. */
  hook(name: string, handler: Handler<E>, priority = 0): () => void {
    const list = this.handlers.get(name) ?? [];
    const entry = { handler, priority };
    list.push(entry);
    list.sort((a, b) => b.priority - a.priority);
    this.handlers.set(name, list);
    return () => {
      const cur = this.handlers.get(name);
      if (!cur) return;
      const i = cur.indexOf(entry);
      if (i >= 0) cur.splice(i, 1);
    };
  }

  has(name: string): boolean {
    return (this.handlers.get(name)?.length ?? 0) > 0;
  }

  /**
   * Runs the chain. Returns the first handled result: true for a sync
   * handler, the Promise for an async one, or false when nobody handled it.
   */
  fire(name: string, event: E): true | false | Promise<unknown> {
    const list = this.handlers.get(name);
    if (!list) return false;
    for (const { handler } of list) {
      const r = handler(event);
      if (r === true) return true;
      if (r instanceof Promise) return r;
    }
    return false;
  }
}
