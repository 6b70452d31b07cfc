// A tiny authoritative DNS server on a loopback UDP port, for federation
// tests: it answers SRV and A records from a table and NXDOMAIN otherwise,
// so SRV resolution (ours through node:dns, Prosody's through libunbound's
// `forward`) can be exercised without any query leaving the machine.
import { createSocket, type Socket } from 'node:dgram';

export interface SrvAnswer {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export interface DnsZone {
  srv?: Record<string, SrvAnswer[]>;
  a?: Record<string, string>;
}

const TYPE_A = 1;
const TYPE_SRV = 33;

export class FakeDns {
  readonly queries: string[] = [];
  private constructor(
    private readonly socket: Socket,
    readonly port: number,
    readonly zone: DnsZone,
  ) {}

  static async start(zone: DnsZone): Promise<FakeDns> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    const dns = new FakeDns(socket, socket.address().port, zone);
    socket.on('message', (msg, rinfo) => {
      const reply = dns.answer(msg);
      if (reply) socket.send(reply, rinfo.port, rinfo.address);
    });
    return dns;
  }

  /** "127.0.0.1:port", for node's Resolver.setServers. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  private answer(msg: Buffer): Buffer | null {
    if (msg.length < 12) return null;
    const qdcount = msg.readUInt16BE(4);
    if (qdcount !== 1) return null;
    // Question: labels, then type and class.
    const labels: string[] = [];
    let off = 12;
    while (off < msg.length && msg[off] !== 0) {
      const len = msg[off]!;
      labels.push(msg.subarray(off + 1, off + 1 + len).toString('ascii'));
      off += len + 1;
    }
    off += 1;
    if (off + 4 > msg.length) return null;
    const qtype = msg.readUInt16BE(off);
    const question = msg.subarray(12, off + 4);
    const name = labels.join('.').toLowerCase();
    this.queries.push(`${name}/${qtype}`);
    const answers: Buffer[] = [];
    const srv = this.zone.srv?.[name];
    const a = this.zone.a?.[name];
    if (qtype === TYPE_SRV && srv) {
      for (const r of srv) {
        const rdata = Buffer.concat([u16(r.priority), u16(r.weight), u16(r.port), encodeName(r.target)]);
        answers.push(record(qtype, rdata));
      }
    } else if (qtype === TYPE_A && a) {
      answers.push(record(qtype, Buffer.from(a.split('.').map(Number))));
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    // QR, AA, RD copied; RA. Always NOERROR, empty when there is no such
    // record: an NXDOMAIN for a parent name would make a resolver that
    // minimises query names (libunbound) give up on the names below it.
    const rd = msg[2]! & 0x01;
    header[2] = 0x84 | rd;
    header[3] = 0x80;
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    return Buffer.concat([header, question, ...answers]);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

function encodeName(name: string): Buffer {
  const parts = name.split('.').filter(Boolean);
  return Buffer.concat([
    ...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'ascii')])),
    Buffer.from([0]),
  ]);
}

/** An answer record whose name points back at the question (offset 12). */
function record(type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4); // IN
  head.writeUInt32BE(60, 6); // TTL
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}
