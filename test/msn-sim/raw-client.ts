// A deliberately dumb MSNP client for the simulator's own tests: it writes
// exactly the lines a test gives it and hands back exactly what the server
// sent, one frame at a time. Protocol knowledge lives in the tests, not here,
// so the tests read as transcripts. Not a client library (that is src/msnp/).

import { request } from 'node:http';
import { type Socket, connect } from 'node:net';
import { type Frame, FrameDecoder, encodeCommand, serverPayloadRule } from './framing.ts';

const DEFAULT_TIMEOUT_MS = 2000;

export class RawClient {
  private readonly decoder = new FrameDecoder(serverPayloadRule);
  private readonly frames: Frame[] = [];
  private waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private closeWaiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk)) this.deliver(frame);
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters) w();
      this.closeWaiters = [];
    });
    socket.on('error', () => {
      // Resets are expected in disconnect tests; 'close' follows.
    });
  }

  static connect(host: string, port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  private deliver(frame: Frame): void {
    const index = this.waiters.findIndex((w) => w.match(frame));
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      waiter!.resolve(frame);
      return;
    }
    this.frames.push(frame);
  }

  send(line: string, payload?: Buffer | string): void {
    this.socket.write(encodeCommand(line, payload));
  }

  /** Raw bytes, for framing tests (split/merged commands). */
  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** The next frame the server sent, in order. */
  next(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    return this.waitFor(() => true, timeoutMs, 'any frame');
  }

  /** The next frame's line (without CRLF). */
  async nextLine(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    return (await this.next(timeoutMs)).line;
  }

  /**
   * The first not-yet-consumed frame matching `match` (earlier, non-matching
   * frames stay queued for later calls).
   */
  waitFor(match: (f: Frame) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS, what = 'frame'): Promise<Frame> {
    const index = this.frames.findIndex(match);
    if (index >= 0) return Promise.resolve(this.frames.splice(index, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out waiting for ${what}; queued: ${JSON.stringify(this.pendingLines())}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Waits for a frame whose line starts with `prefix`. */
  waitForLine(prefix: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Frame> {
    return this.waitFor((f) => f.line.startsWith(prefix), timeoutMs, JSON.stringify(prefix));
  }

  /** Lines received but not consumed yet. */
  pendingLines(): string[] {
    return this.frames.map((f) => f.line);
  }

  /** Resolves when the server has closed the connection. */
  waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection was not closed')), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/** A plain GET without keep-alive, so tests leave no sockets behind. */
export function httpGet(url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}
