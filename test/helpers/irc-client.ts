// A tiny raw-socket IRC client (RFC 2812 lines) for tests: registers a
// nick, answers PINGs, and waits for lines matching a pattern.
import { connect, type Socket } from 'node:net';

export class IrcClient {
  readonly lines: string[] = [];
  private buffer = '';
  private readonly watchers: Array<() => void> = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      let nl = this.buffer.indexOf('\n');
      while (nl >= 0) {
        const line = this.buffer.slice(0, nl).replace(/\r$/, '');
        this.buffer = this.buffer.slice(nl + 1);
        if (line.startsWith('PING ')) this.send(`PONG ${line.slice(5)}`);
        this.lines.push(line);
        nl = this.buffer.indexOf('\n');
      }
      for (const w of [...this.watchers]) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of [...this.watchers]) w();
    });
    socket.on('error', () => {});
  }

  /** Connects and registers `nick`; resolves once the server welcomed it (001). */
  static async register(port: number, nick: string): Promise<IrcClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new IrcClient(socket);
    c.send(`NICK ${nick}`);
    c.send(`USER ${nick} 0 * :${nick}`);
    await c.waitLine(new RegExp(`^:\\S+ 001 ${nick} `), 'welcome');
    return c;
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  /** Resolves with the first line (past or future) matching pattern, and forgets it. */
  waitLine(pattern: RegExp, what: string, ms = 20000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.lines.findIndex((l) => pattern.test(l));
        if (i >= 0) {
          done();
          resolve(this.lines.splice(i, 1)[0]!);
        } else if (this.closed) {
          done();
          reject(new Error(`IRC connection closed before ${what}; got:\n${this.lines.join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`IRC: timed out waiting for ${what}; got:\n${this.lines.slice(-30).join('\n')}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        const i = this.watchers.indexOf(check);
        if (i >= 0) this.watchers.splice(i, 1);
      };
      this.watchers.push(check);
      check();
    });
  }

  close(): void {
    if (!this.closed) this.send('QUIT :bye');
    this.socket.end();
  }
}
