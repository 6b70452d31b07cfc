/**
 * One TCP connection to an MSN server (notification or switchboard).
 *
 * It hands out transaction ids, matches replies (and numeric error replies)
 * to the request that carries the same TrID, and passes everything else on as
 * unsolicited 'command' events. Every request has a deadline, and closing the
 * socket fails every outstanding request, so nothing waits forever.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { CommandParser, encodeCommand, type MsnCommand, SERVER_PAYLOAD_COMMANDS, trIdOf } from './command.ts';
import { isErrorCode, MsnConnectionError, MsnError, MsnTimeoutError } from './errors.ts';
import { type MsnTrace, redactedLine, type TraceServer } from './trace.ts';

export interface RequestOptions {
  /** Body for payload commands (MSG, UUX, QRY, ...). */
  payload?: Buffer | string;
  /** Reply command names accepted besides the request's own name (e.g. USR answered by XFR). */
  accept?: readonly string[];
  /** Milliseconds to wait for the reply. */
  timeout?: number;
}

interface Pending {
  name: string;
  accept: readonly string[];
  resolve: (cmd: MsnCommand) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface ConnectionEvents {
  command: [MsnCommand];
  close: [Error | undefined];
}

export interface ConnectOptions {
  connectTimeout: number;
  requestTimeout: number;
  /** Receives every command line in and out (secrets redacted). */
  trace?: MsnTrace;
  /** Which kind of server this is, for the trace. Default NS. */
  server?: TraceServer;
}

export class MsnConnection extends EventEmitter<ConnectionEvents> {
  private readonly socket: net.Socket;
  private readonly parser: CommandParser;
  private nextTrId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  private closeError: Error | undefined;
  readonly host: string;
  readonly port: number;
  /** Default per-request timeout in milliseconds. */
  requestTimeout: number;
  private readonly trace: MsnTrace | undefined;
  private readonly server: TraceServer;

  private constructor(socket: net.Socket, host: string, port: number, opts: ConnectOptions) {
    super();
    this.socket = socket;
    this.host = host;
    this.port = port;
    this.requestTimeout = opts.requestTimeout;
    this.trace = opts.trace;
    this.server = opts.server ?? 'NS';
    this.parser = new CommandParser(SERVER_PAYLOAD_COMMANDS);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.closeError ??= err;
    });
    socket.on('close', () => this.onClose());
  }

  /** Opens a TCP connection, failing with MsnConnectionError / MsnTimeoutError instead of hanging. */
  static connect(host: string, port: number, opts: ConnectOptions): Promise<MsnConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MsnTimeoutError(`connecting to ${host}:${port}`));
      }, opts.connectTimeout);
      const onError = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new MsnConnectionError(`cannot connect to ${host}:${port}: ${err.message}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new MsnConnection(socket, host, port, opts));
      });
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Sends a command with a fresh TrID and returns that TrID without waiting for anything. */
  send(name: string, args: readonly (string | number)[] = [], payload?: Buffer | string): number {
    const trId = this.nextTrId++;
    this.out(name, [trId, ...args], payload);
    return trId;
  }

  /** Sends a command that has no TrID at all (PNG, OUT). */
  sendBare(name: string, args: readonly (string | number)[] = []): void {
    this.out(name, args);
  }

  /**
   * Sends a command and resolves with the reply bearing the same TrID.
   * A numeric reply rejects with MsnError(code).
   */
  request(
    name: string,
    args: readonly (string | number)[] = [],
    opts: RequestOptions = {},
  ): Promise<MsnCommand> {
    if (this.closed) return Promise.reject(new MsnConnectionError(`connection closed before ${name}`));
    const trId = this.nextTrId++;
    return new Promise<MsnCommand>((resolve, reject) => {
      const timeout = opts.timeout ?? this.requestTimeout;
      const timer = setTimeout(() => {
        this.pending.delete(trId);
        reject(new MsnTimeoutError(`${name} reply from ${this.host}:${this.port}`));
      }, timeout);
      this.pending.set(trId, { name, accept: opts.accept ?? [], resolve, reject, timer });
      this.out(name, [trId, ...args], opts.payload);
    });
  }

  /**
   * Registers interest in the reply to a TrID already sent with send(): used
   * for switchboard MSGs, whose ACK/NAK arrive asynchronously.
   */
  expectReply(trId: number, name: string, accept: readonly string[], timeout: number): Promise<MsnCommand> {
    if (this.closed) return Promise.reject(new MsnConnectionError(`connection closed before ${name} reply`));
    return new Promise<MsnCommand>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(trId);
        reject(new MsnTimeoutError(`${name} reply from ${this.host}:${this.port}`));
      }, timeout);
      this.pending.set(trId, { name, accept, resolve, reject, timer });
    });
  }

  /** Closes the socket; outstanding requests fail with MsnConnectionError. */
  close(): void {
    if (this.closed) return;
    this.socket.end();
    // end() waits for the peer; destroy soon after so no handle lingers.
    const t = setTimeout(() => this.socket.destroy(), 200);
    t.unref();
  }

  /** Drops the socket at once (used when the peer stopped answering pings). */
  destroy(err?: Error): void {
    if (err) this.closeError ??= err;
    this.socket.destroy();
  }

  private out(name: string, args: readonly (string | number)[], payload?: Buffer | string): void {
    if (this.closed || this.socket.destroyed) return;
    if (this.trace) {
      const bytes = payload === undefined ? undefined : Buffer.byteLength(payload);
      this.trace({ direction: 'out', server: this.server, line: redactedLine(name, args, bytes) });
    }
    this.socket.write(encodeCommand(name, args, payload));
  }

  private onData(chunk: Buffer): void {
    let cmds: MsnCommand[];
    try {
      cmds = this.parser.push(chunk);
    } catch (err) {
      // A broken frame cannot be resynchronised: drop the connection.
      this.destroy(err as Error);
      return;
    }
    for (const cmd of cmds) this.dispatch(cmd);
  }

  private dispatch(cmd: MsnCommand): void {
    if (this.trace) {
      this.trace({ direction: 'in', server: this.server, line: redactedLine(cmd.name, cmd.args, cmd.payload?.length) });
    }
    const trId = trIdOf(cmd);
    if (trId !== undefined) {
      const p = this.pending.get(trId);
      if (p) {
        if (isErrorCode(cmd.name)) {
          this.pending.delete(trId);
          clearTimeout(p.timer);
          p.reject(new MsnError(Number(cmd.name), undefined, p.name));
          return;
        }
        if (cmd.name === p.name || p.accept.includes(cmd.name)) {
          this.pending.delete(trId);
          clearTimeout(p.timer);
          p.resolve(cmd);
          return;
        }
      }
    }
    this.emit('command', cmd);
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new MsnConnectionError(`connection to ${this.host}:${this.port} closed during ${p.name}`));
    }
    this.pending.clear();
    this.emit('close', this.closeError);
  }
}
