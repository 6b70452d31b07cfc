// Concurrent connections per client address, counted from the TCP accept
// (before any TLS handshake, so connections that never finish one count
// too) until the socket closes. IPv6 addresses count per /64, the block
// one host usually holds.
import type { Socket } from 'node:net';

export class ConnectionsPerAddress {
  private readonly counts = new Map<string, number>();

  constructor(private readonly limit: () => number) {}

  /** Counts `socket` until it closes; false when its address is now over the limit. */
  admit(socket: Socket): boolean {
    const key = addressKey(socket.remoteAddress ?? 'unknown');
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    socket.once('close', () => {
      const left = (this.counts.get(key) ?? 1) - 1;
      if (left <= 0) this.counts.delete(key);
      else this.counts.set(key, left);
    });
    return n <= this.limit();
  }

  /** Open connections from `ip` (its /64 for IPv6). */
  count(ip: string): number {
    return this.counts.get(addressKey(ip)) ?? 0;
  }
}

/** The unit an address is counted in: the address itself, or its /64 for IPv6. */
export function addressKey(ip: string): string {
  if (ip.startsWith('::ffff:') && ip.includes('.')) return ip.slice(7);
  if (!ip.includes(':')) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g || '0', 16).toString(16))
    .join(':')}::/64`;
}
