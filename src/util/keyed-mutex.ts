// Serialises async read-modify-write work per key (e.g. one user's roster),
// so two stanzas from the same user never interleave their storage updates.
import { trackDurable } from '../storage/durability.ts';

export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    // Waiting for the turn is part of the stanza's work: its storage
    // operations start only then (storage/durability.ts).
    if (this.tails.has(key)) trackDurable(prev);
    const next = prev.then(work, work);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
