// The durability barrier on its own (storage/durability.ts): output waits
// for the storage work of earlier stanzas, follow-up work in the same
// stanza's continuations counts, later stanzas' work does not hold earlier
// output, and whenDurable/whenSent report what XEP-0198 needs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DurabilityBarrier, trackDurable } from '../../src/storage/durability.ts';
import type { InboundStream } from '../../src/stream/inbound-context.ts';
import { KeyedMutex } from '../../src/util/keyed-mutex.ts';

const stream: InboundStream = { pauseReading() {}, resumeReading() {}, closed: false };

/** A storage operation the test settles by hand. */
function operation(): { promise: Promise<void>; done: () => void } {
  let done!: () => void;
  const promise = new Promise<void>((r) => {
    done = r;
  });
  return { promise, done };
}

/** Waits until the barrier's deferred check has run (it runs in a setImmediate). */
const checked = () => new Promise((r) => setImmediate(() => setImmediate(r)));

describe('durability barrier', () => {
  it('delivers at once when nothing is pending', () => {
    const out: string[] = [];
    const b = new DurabilityBarrier<string>((x) => out.push(x));
    b.run(stream, () => b.output('pong'));
    assert.deepEqual(out, ['pong']);
  });

  it('holds a later reply until an earlier stanza’s write settles, then sends in order', async () => {
    const out: string[] = [];
    const b = new DurabilityBarrier<string>((x) => out.push(x));
    const write = operation();
    b.run(stream, () => void trackDurable(write.promise)); // stanza 1: a message stored offline
    b.run(stream, () => b.output('pong 2')); // stanza 2: a ping, answered at once
    b.output('from bob');
    await checked();
    assert.deepEqual(out, [], 'nothing overtakes the pending write');
    assert.equal(b.durableThrough, 0);
    write.done();
    await checked();
    assert.deepEqual(out, ['pong 2', 'from bob']);
    assert.equal(b.durableThrough, 2);
  });

  it('counts a write that starts in the continuation of an earlier read of the same stanza', async () => {
    const out: string[] = [];
    const b = new DurabilityBarrier<string>((x) => out.push(x));
    const read = operation();
    const write = operation();
    b.run(stream, () => {
      // read-modify-write: the write is started only after the read resolves
      void trackDurable(read.promise).then(() => trackDurable(write.promise));
    });
    b.run(stream, () => b.output('pong'));
    read.done();
    await checked();
    assert.deepEqual(out, [], 'the read settled but the write it led to is pending');
    write.done();
    await checked();
    assert.deepEqual(out, ['pong']);
  });

  it('counts the wait for a mutex turn held by other work', async () => {
    const out: string[] = [];
    const b = new DurabilityBarrier<string>((x) => out.push(x));
    const mutex = new KeyedMutex();
    const other = operation();
    void mutex.run('bob', () => other.promise); // someone else's work holds bob's queue
    b.run(stream, () => void mutex.run('bob', async () => {}));
    b.run(stream, () => b.output('pong'));
    await checked();
    assert.deepEqual(out, []);
    other.done();
    await checked();
    assert.deepEqual(out, ['pong']);
  });

  it('does not hold output behind work of later stanzas', async () => {
    const out: string[] = [];
    const b = new DurabilityBarrier<string>((x) => out.push(x));
    const first = operation();
    const later = operation();
    b.run(stream, () => void trackDurable(first.promise));
    b.output('after 1');
    b.run(stream, () => void trackDurable(later.promise));
    b.output('after 2');
    first.done();
    await checked();
    assert.deepEqual(out, ['after 1'], 'released as soon as stanza 1 is durable');
    later.done();
    await checked();
    assert.deepEqual(out, ['after 1', 'after 2']);
  });

  it('whenDurable and whenSent resolve at the right moments; end() drops held output', async () => {
    const out: string[] = [];
    const b = new DurabilityBarrier<string>((x) => out.push(x));
    const write = operation();
    b.run(stream, () => void trackDurable(write.promise));
    b.output('held');
    let durable = false;
    void b.whenDurable().then(() => {
      durable = true;
    });
    const sent = b.whenSent();
    await checked();
    assert.equal(durable, false);
    write.done();
    await checked();
    assert.equal(durable, true);
    assert.equal(await sent, true);

    const stuck = operation();
    b.run(stream, () => void trackDurable(stuck.promise));
    b.output('never');
    const lost = b.whenSent();
    b.end();
    assert.equal(await lost, false);
    stuck.done();
    await checked();
    assert.deepEqual(out, ['held'], 'output held when the stream ended is dropped');
  });

  it('ignores work outside any stanza (timers, s2s)', async () => {
    const out: string[] = [];
    const b = new DurabilityBarrier<string>((x) => out.push(x));
    void trackDurable(operation().promise); // never settles, but belongs to no client stanza
    b.output('free');
    assert.deepEqual(out, ['free']);
  });
});
