// Output to a TLS socket in pieces that fit Node's first ciphertext buffer.
//
// Node keeps each TLS connection's encrypted output in a ring of buffers
// (NodeBIO, src/crypto/crypto_bio.cc): a 1 KiB buffer first, then a 16 KiB
// one the first time a single write's ciphertext does not fit in 1 KiB, and
// neither is freed while the connection lives. One 1.1 KiB stream-features
// element is enough for that. Measured with 5,000 idle authenticated
// connections (bench memory figure), the 16 KiB buffer costs ~12 KiB of
// resident memory per connection: 50 KiB with it, 38 KiB without.
//
// So while a connection's output is small, it goes out one piece of at most
// SMALL_WRITE bytes at a time, the next piece when the socket reports the
// previous one written (by then Node has emptied the 1 KiB buffer): the
// login exchange, a roster, presence and the odd message never need more.
// The first time output keeps waiting — more than BULK_WRITE bytes queued,
// or MAX_PIECES pieces in a row without the queue emptying (a busy
// receiver) — everything queued goes in one write and the connection stops
// pacing for good: it has the large buffer from then on, and pieces would
// only cost it throughput (one piece per event-loop turn: pacing busy
// receivers halved messages/s, and still cost a third with a 16 KiB
// threshold alone, which a receiver with 100 messages in flight rarely
// reaches).
import type { TLSSocket } from 'node:tls';

/**
 * Plaintext bytes per write while the output is small: its record (TLS 1.3:
 * 5-byte header, content type, 16-byte tag; TLS 1.2 CBC with SHA-384: at
 * most 85 bytes more) still fits the 1,024-byte first buffer.
 */
export const SMALL_WRITE = 900;
/** Bytes waiting above which the queue goes out in one write, and pacing stops. */
export const BULK_WRITE = 16 * 1024;
/** Pieces in a row (the queue never empty in between) after which pacing stops: about 7 KiB. */
export const MAX_PIECES = 8;

export class TlsPacedWriter {
  private queue: Array<string | Buffer> = [];
  private queuedBytes = 0;
  private inFlight = false;
  /** Pieces written since the queue was last empty. */
  private streak = 0;
  /** Set once a burst outgrew pacing: from then on the caller writes straight to the socket. */
  bulk = false;

  constructor(
    private readonly socket: TLSSocket,
    /** Called whenever the last write completed and nothing is queued. */
    private readonly onIdle: () => void,
  ) {}

  /** Bytes accepted but not yet handed to the socket. */
  get pending(): number {
    return this.queuedBytes;
  }

  write(data: string): void {
    if (!this.inFlight && this.queuedBytes === 0) {
      // UTF-8 takes at most 3 bytes per UTF-16 unit: most writes fit without counting.
      if (data.length * 3 <= SMALL_WRITE || Buffer.byteLength(data) <= SMALL_WRITE) {
        this.send(data);
        return;
      }
    }
    this.queue.push(data);
    this.queuedBytes += Buffer.byteLength(data);
    if (!this.inFlight) this.pump();
  }

  /** Hands everything queued to the socket at once (before it is ended). */
  flushAll(): void {
    if (this.queuedBytes === 0) return;
    const all = this.takeAll();
    if (this.socket.writable) this.socket.write(all);
  }

  private send(data: string | Buffer): void {
    this.inFlight = true;
    this.socket.write(data, this.written);
  }

  private readonly written = (err?: Error | null): void => {
    this.inFlight = false;
    if (err || !this.socket.writable) {
      // The socket is gone; its 'error'/'close' ends the stream.
      this.queue = [];
      this.queuedBytes = 0;
      return;
    }
    this.pump();
    if (!this.inFlight) {
      this.streak = 0;
      this.onIdle();
    }
  };

  private pump(): void {
    if (this.queuedBytes === 0 || !this.socket.writable) return;
    if (this.bulk || this.queuedBytes > BULK_WRITE || this.streak >= MAX_PIECES) {
      this.bulk = true;
      this.send(this.takeAll());
      return;
    }
    this.streak++;
    this.send(this.takePiece());
  }

  private takeAll(): string | Buffer {
    const q = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    if (q.length === 1) return q[0]!;
    return q.every((p) => typeof p === 'string')
      ? q.join('')
      : Buffer.concat(q.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  }

  /** At most SMALL_WRITE bytes from the front of the queue, whole strings joined where they fit. */
  private takePiece(): string | Buffer {
    let taken = '';
    let takenBytes = 0;
    while (this.queue.length) {
      const head = this.queue[0]!;
      const bytes = typeof head === 'string' ? Buffer.byteLength(head) : head.length;
      if (takenBytes + bytes <= SMALL_WRITE && typeof head === 'string') {
        taken += head;
        takenBytes += bytes;
        this.queue.shift();
        this.queuedBytes -= bytes;
        continue;
      }
      if (takenBytes > 0) break;
      // The head alone is larger than a piece (or already a byte remainder): cut it by bytes.
      const buf = typeof head === 'string' ? Buffer.from(head) : head;
      if (buf.length <= SMALL_WRITE) {
        this.queue.shift();
        this.queuedBytes -= buf.length;
        return buf;
      }
      this.queue[0] = buf.subarray(SMALL_WRITE);
      this.queuedBytes -= SMALL_WRITE;
      return buf.subarray(0, SMALL_WRITE);
    }
    return taken;
  }
}
