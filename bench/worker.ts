// A load-generator worker process (forked by bench/run.ts). It holds client
// connections and runs one command at a time from the parent over IPC; the
// parent reads this process's CPU time from /proc to show whether the load
// generator, rather than the server, was the limit.
import { createHash } from 'node:crypto';
import { Conn, Counter, localAddressFor, nowUs, type Target } from './client.ts';

export type Command =
  | {
      cmd: 'logins';
      users: string[];
      concurrency: number;
      warmupMs: number;
      durationMs: number;
      offset: number;
    }
  | { cmd: 'connect'; users: string[]; concurrency: number; offset: number; resource: string }
  | { cmd: 'disconnect' }
  | { cmd: 'messages'; from: string; to: string; window: number; warmupMs: number; durationMs: number }
  | { cmd: 'latency'; rate: number; warmupMs: number; durationMs: number }
  | { cmd: 'sub-approve'; user: string; expected: number; timeoutMs: number }
  | { cmd: 'sub-request'; to: string; exclude: string; timeoutMs: number }
  | { cmd: 'fanout-count'; expected: number; exclude: string; timeoutMs: number }
  | { cmd: 'fanout-send'; user: string; updates: number }
  | { cmd: 'muc-create'; user: string; room: string; timeoutMs: number }
  | { cmd: 'muc-join'; room: string; exclude: string; timeoutMs: number }
  | { cmd: 'muc-count'; expected: number; exclude: string; timeoutMs: number }
  | { cmd: 'muc-send'; user: string; room: string; messages: number }
  | { cmd: 'mam-query'; user: string; ids: string[]; correspondents: string[]; queries: number; page: number }
  | { cmd: 'pep-present'; to: string; exclude: string; feature: string; timeoutMs: number }
  | { cmd: 'pep-count'; expected: number; exclude: string; timeoutMs: number }
  | { cmd: 'pep-send'; user: string; updates: number };

export interface Request {
  id: number;
  target: Target;
  command: Command;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const held = new Map<string, Conn>();
let cipher = '';

async function logins(t: Target, c: Extract<Command, { cmd: 'logins' }>) {
  const start = Date.now();
  const measureFrom = start + c.warmupMs;
  const end = measureFrom + c.durationMs;
  let next = 0;
  let count = 0;
  let errors = 0;
  let firstError = '';
  let i = c.offset;
  const loop = async () => {
    while (Date.now() < end) {
      const user = c.users[next++ % c.users.length]!;
      const conn = new Conn(t, user, localAddressFor(i++));
      try {
        await conn.login();
        cipher ||= conn.cipher;
        const now = Date.now();
        if (now >= measureFrom && now <= end) count++;
        void conn.close();
      } catch (err) {
        errors++;
        firstError ||= (err as Error).message;
        conn.destroy();
        await sleep(50);
      }
    }
  };
  await Promise.all(Array.from({ length: c.concurrency }, loop));
  return { count, seconds: c.durationMs / 1000, errors, firstError, cipher };
}

async function connect(t: Target, c: Extract<Command, { cmd: 'connect' }>) {
  let next = 0;
  let errors = 0;
  let firstError = '';
  const started = Date.now();
  const loop = async () => {
    while (next < c.users.length) {
      const idx = next++;
      const user = c.users[idx]!;
      const conn = new Conn(t, user, localAddressFor(c.offset + idx));
      try {
        await conn.login(c.resource, 60000);
        cipher ||= conn.cipher;
        held.set(user, conn);
      } catch (err) {
        errors++;
        firstError ||= (err as Error).message;
        conn.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: c.concurrency }, loop));
  return { connected: held.size, errors, firstError, seconds: (Date.now() - started) / 1000, cipher };
}

async function disconnect() {
  const all = [...held.values()];
  held.clear();
  for (let i = 0; i < all.length; i += 500) await Promise.all(all.slice(i, i + 500).map((c) => c.close()));
  return { closed: all.length };
}

function conn(user: string): Conn {
  const c = held.get(user);
  if (!c) throw new Error(`${user} is not connected in this worker`);
  return c;
}

/** One-to-one messages with a fixed window in flight; counts deliveries. */
async function messages(c: Extract<Command, { cmd: 'messages' }>) {
  const a = conn(c.from);
  const b = conn(c.to);
  const to = b.jid;
  const body = 'The quick brown fox jumps over the lazy dog, 0123456789.';
  const stanza = `<message to='${to}' type='chat'><body>${body}</body></message>`;
  const counter = new Counter('</message>');
  let sent = 0;
  let received = 0;
  let measuring = false;
  let counted = 0;
  let stopped = false;
  const send = (n: number) => {
    if (stopped || n <= 0) return;
    a.write(n === 1 ? stanza : stanza.repeat(n));
    sent += n;
  };
  b.onData = (chunk) => {
    const n = counter.feed(chunk);
    received += n;
    if (measuring) counted += n;
    send(c.window - (sent - received));
  };
  send(c.window);
  await sleep(c.warmupMs);
  measuring = true;
  const t0 = nowUs();
  await sleep(c.durationMs);
  measuring = false;
  const t1 = nowUs();
  stopped = true;
  // Let the window drain before the next run.
  const deadline = Date.now() + 10000;
  while (received < sent && Date.now() < deadline) await sleep(20);
  b.onData = null;
  return { count: counted, seconds: (t1 - t0) / 1e6, lost: sent - received };
}

/**
 * Fixed-rate messages across every held connection: the first half of them
 * send to the second half (pairs within this worker). The body carries the
 * send time in microseconds; receivers record the difference.
 */
async function latency(c: Extract<Command, { cmd: 'latency' }>) {
  const conns = [...held.values()];
  const half = conns.length >> 1;
  if (half === 0) throw new Error('no connections for the latency run');
  const senders = conns.slice(0, half);
  const receivers = conns.slice(half, half * 2);
  const samples: number[] = [];
  let received = 0;
  for (const r of receivers) {
    let carry = '';
    r.onData = (chunk) => {
      const s = carry + chunk;
      const now = nowUs();
      const re = /<body>(w?)(\d+)<\/body>/g;
      let m: RegExpExecArray | null = re.exec(s);
      let end = 0;
      while (m) {
        received++;
        if (m[1] === '') samples.push(now - Number(m[2]));
        end = re.lastIndex;
        m = re.exec(s);
      }
      carry = s.slice(end);
      if (carry.length > 4096) carry = carry.slice(-4096);
    };
  }
  const start = nowUs();
  const warmEnd = start + c.warmupMs * 1000;
  const end = warmEnd + c.durationMs * 1000;
  let sent = 0;
  let rr = 0;
  const out: string[] = new Array(half).fill('');
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = nowUs();
      if (now >= end) return resolve();
      const due = Math.floor(((now - start) / 1e6) * c.rate);
      const prefix = now < warmEnd ? 'w' : '';
      for (; sent < due; sent++) {
        const i = rr++ % half;
        out[i] += `<message to='${receivers[i]!.jid}' type='chat'><body>${prefix}${now}</body></message>`;
      }
      for (let i = 0; i < half; i++) {
        if (out[i]) {
          senders[i]!.write(out[i]!);
          out[i] = '';
        }
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const deadline = Date.now() + 10000;
  while (received < sent && Date.now() < deadline) await sleep(20);
  for (const r of receivers) r.onData = null;
  const measuredSent = Math.floor((c.durationMs / 1000) * c.rate);
  return { samples, sent, received, measuredSent, seconds: c.durationMs / 1000 };
}

/** The broadcaster's side of the roster set-up: approve every subscription request. */
async function subApprove(c: Extract<Command, { cmd: 'sub-approve' }>) {
  const u = conn(c.user);
  let carry = u.take();
  const approved = new Set<string>();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, c.timeoutMs);
    const scan = (chunk: string) => {
      const s = carry + chunk;
      const re = /<presence\b[^>]*>/g;
      let m: RegExpExecArray | null = re.exec(s);
      let end = 0;
      let reply = '';
      while (m) {
        end = re.lastIndex;
        const tag = m[0];
        if (/\btype=["']subscribe["']/.test(tag)) {
          const from = /\bfrom=["']([^"'/]+)/.exec(tag)?.[1];
          if (from && !approved.has(from)) {
            approved.add(from);
            reply += `<presence to='${from}' type='subscribed'/>`;
          }
        }
        m = re.exec(s);
      }
      carry = s.slice(end).slice(-2048);
      if (reply) u.write(reply);
      if (approved.size >= c.expected) {
        clearTimeout(timer);
        resolve();
      }
    };
    u.onData = scan;
    scan('');
  });
  u.onData = null;
  return { approved: approved.size };
}

/**
 * The contacts' side: ask to subscribe to the broadcaster, wait for the
 * approval: a `subscribed` presence or the broadcaster's available presence
 * (Prosody sends only the latter to a client that has not fetched its roster).
 */
async function subRequest(c: Extract<Command, { cmd: 'sub-request' }>) {
  const conns = [...held.values()].filter((k) => k.user !== c.exclude);
  const from = c.to.replace(/[.]/g, '\\.');
  const approved = new RegExp(
    `<presence\\b(?=[^>]*\\bfrom=["']${from}[/"'])(?:(?![^>]*\\btype=)|(?=[^>]*\\btype=["']subscribed["']))[^>]*>`,
  );
  const results = await Promise.all(
    conns.map(async (k) => {
      k.write(`<presence to='${c.to}' type='subscribe'/>`);
      try {
        await k.waitFor(approved, c.timeoutMs);
        return true;
      } catch {
        return false;
      }
    }),
  );
  for (const k of conns) k.take();
  return { subscribed: results.filter(Boolean).length, of: conns.length };
}

/** Counts presence stanzas arriving at every held connection until `expected` or quiet. */
async function fanoutCount(c: Extract<Command, { cmd: 'fanout-count' }>) {
  let count = 0;
  let lastAt = 0;
  let lastProgress = Date.now();
  const conns = [...held.values()].filter((k) => k.user !== c.exclude);
  for (const k of conns) {
    k.take();
    const counter = new Counter('<presence');
    k.onData = (chunk) => {
      const n = counter.feed(chunk);
      if (n) {
        count += n;
        lastAt = nowUs();
        lastProgress = Date.now();
      }
    };
  }
  process.send!({ ready: true });
  const started = Date.now();
  // A server may process a whole burst before it flushes any output, so
  // the first delivery can take a while; after it, 15 s of silence ends it.
  while (count < c.expected && Date.now() - started < c.timeoutMs) {
    if (count > 0 && Date.now() - lastProgress > 15000) break;
    await sleep(5);
  }
  for (const k of conns) k.onData = null;
  return { count, lastAt };
}

/** The broadcaster sends `updates` presence changes back to back. */
async function fanoutSend(c: Extract<Command, { cmd: 'fanout-send' }>) {
  const u = conn(c.user);
  u.onData = () => {};
  const firstAt = nowUs();
  let batch = '';
  for (let i = 0; i < c.updates; i++) {
    batch += `<presence><show>${i % 2 ? 'away' : 'chat'}</show><status>update ${i}</status></presence>`;
    if (batch.length > 8192) {
      u.write(batch);
      batch = '';
    }
  }
  if (batch) u.write(batch);
  await sleep(100);
  if (u.closed) throw new Error(`${c.user}'s stream was closed by the server`);
  return { firstAt };
}

const MUC = 'http://jabber.org/protocol/muc';

/** One user creates the room as an instant room (XEP-0045 §10.1.2): enter, then submit an empty form. */
async function mucCreate(c: Extract<Command, { cmd: 'muc-create' }>) {
  const u = conn(c.user);
  u.take();
  u.write(`<presence to='${c.room}/${c.user}'><x xmlns='${MUC}'><history maxstanzas='0'/></x></presence>`);
  const self = await u.waitFor(/<presence\b[^>]*>[\s\S]*?<\/presence>/, c.timeoutMs);
  if (/type=["']error["']/.test(self[0])) throw new Error(`${c.user} could not create ${c.room}: ${self[0]}`);
  u.write(
    `<iq type='set' id='muc-instant' to='${c.room}'><query xmlns='${MUC}#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`,
  );
  const done = await u.waitFor(/<iq\b[^>]*id=["']muc-instant["'][^>]*>/, c.timeoutMs);
  if (!/type=["']result["']/.test(done[0])) throw new Error(`instant room refused: ${done[0]}`);
  u.take();
  return { created: true };
}

/** Every held connection but the creator enters the room; a join ends with the subject message. */
async function mucJoin(c: Extract<Command, { cmd: 'muc-join' }>) {
  const conns = [...held.values()].filter((k) => k.user !== c.exclude);
  const results = await Promise.all(
    conns.map(async (k) => {
      k.take();
      k.write(
        `<presence to='${c.room}/${k.user}'><x xmlns='${MUC}'><history maxstanzas='0'/></x></presence>`,
      );
      try {
        await k.waitFor(/<subject\b|type=["']error["']/, c.timeoutMs);
        return true;
      } catch {
        return false;
      }
    }),
  );
  for (const k of conns) k.take();
  return { joined: results.filter(Boolean).length, of: conns.length };
}

/** Counts groupchat messages arriving at every held connection (the sender excepted). */
async function mucCount(c: Extract<Command, { cmd: 'muc-count' }>) {
  let count = 0;
  let lastAt = 0;
  let lastProgress = Date.now();
  const conns = [...held.values()].filter((k) => k.user !== c.exclude);
  for (const k of conns) {
    k.take();
    const counter = new Counter('</body>');
    k.onData = (chunk) => {
      const n = counter.feed(chunk);
      if (n) {
        count += n;
        lastAt = nowUs();
        lastProgress = Date.now();
      }
    };
  }
  process.send!({ ready: true });
  const started = Date.now();
  while (count < c.expected && Date.now() - started < c.timeoutMs) {
    if (count > 0 && Date.now() - lastProgress > 15000) break;
    await sleep(5);
  }
  for (const k of conns) k.onData = null;
  return { count, lastAt };
}

/** The sender writes its groupchat messages back to back. */
async function mucSend(c: Extract<Command, { cmd: 'muc-send' }>) {
  const u = conn(c.user);
  u.onData = () => {};
  const firstAt = nowUs();
  let batch = '';
  for (let i = 0; i < c.messages; i++) {
    batch += `<message to='${c.room}' type='groupchat' id='m${i}'><body>The quick brown fox jumps over the lazy dog, ${i}.</body></message>`;
    if (batch.length > 8192) {
      u.write(batch);
      batch = '';
    }
  }
  if (batch) u.write(batch);
  await sleep(100);
  if (u.closed) throw new Error(`${c.user}'s stream was closed by the server`);
  return { firstAt };
}

/**
 * MAM queries one at a time, each for a page: forward from a known id,
 * backward from a known id, and the last page with one correspondent, in
 * turn. Latency is from writing the iq to reading its result (which the
 * server sends after the page's messages).
 */
async function mamQuery(c: Extract<Command, { cmd: 'mam-query' }>) {
  const u = conn(c.user);
  const samples: number[] = [];
  const byKind: number[][] = [[], [], []];
  let results = 0;
  for (let i = 0; i < c.queries; i++) {
    const id = c.ids[(i * 7919) % c.ids.length]!;
    const kind = i % 3;
    const form =
      kind === 2
        ? `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='with'><value>${c.correspondents[i % c.correspondents.length]}</value></field></x>`
        : '';
    const rsm = kind === 0 ? `<after>${id}</after>` : kind === 1 ? `<before>${id}</before>` : '<before/>';
    const done = `id="mq${i}"`;
    let buf = '';
    const got = new Promise<void>((resolve) => {
      u.onData = (chunk) => {
        buf += chunk;
        if (buf.includes(done)) resolve();
      };
    });
    const t0 = nowUs();
    u.write(
      `<iq type='set' id='mq${i}'><query xmlns='urn:xmpp:mam:2' queryid='q${i}'>${form}<set xmlns='http://jabber.org/protocol/rsm'><max>${c.page}</max>${rsm}</set></query></iq>`,
    );
    await got;
    samples.push(nowUs() - t0);
    byKind[kind]!.push(nowUs() - t0);
    results += buf.split('<result ').length - 1;
  }
  u.onData = null;
  return { samples, results, byKind };
}

const PEP_NODE = 'http://jabber.org/protocol/tune';
const CAPS_NODE = 'https://jabberfly.org/bench';

/**
 * PEP interest: every held connection (but the publisher) sends the
 * publisher directed presence with XEP-0115 caps claiming `<node>+notify`
 * (plus a per-run feature, so the server asks afresh), and answers the
 * server's disco#info query. Resolves once this worker answered one query
 * (the server asks one entity per hash) or after the timeout.
 */
async function pepPresent(c: Extract<Command, { cmd: 'pep-present' }>) {
  const features = ['http://jabber.org/protocol/caps', 'http://jabber.org/protocol/disco#info', `${PEP_NODE}+notify`, c.feature].sort();
  const ver = createHash('sha1')
    .update(`client/pc//bench<${features.map((f) => `${f}<`).join('')}`)
    .digest('base64');
  const query = `<query xmlns='http://jabber.org/protocol/disco#info' node='${CAPS_NODE}#${ver}'><identity category='client' type='pc' name='bench'/>${features.map((f) => `<feature var='${f}'/>`).join('')}</query>`;
  let answered = 0;
  const conns = [...held.values()].filter((k) => k.user !== c.exclude);
  for (const k of conns) {
    k.take();
    let carry = '';
    k.onData = (chunk) => {
      const s = carry + chunk;
      const re = /<iq\b[^>]*>/g;
      let m: RegExpExecArray | null = re.exec(s);
      let end = 0;
      while (m) {
        end = re.lastIndex;
        const tag = m[0];
        if (/type=["']get["']/.test(tag) && s.indexOf('disco#info', end) !== -1) {
          const id = /\bid=["']([^"']+)/.exec(tag)?.[1];
          const from = /\bfrom=["']([^"']+)/.exec(tag)?.[1];
          k.write(`<iq type='result' id='${id}' to='${from}'>${query}</iq>`);
          answered++;
        }
        m = re.exec(s);
      }
      carry = s.slice(end).slice(-4096);
    };
    k.write(`<presence to='${c.to}'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='${CAPS_NODE}' ver='${ver}'/></presence>`);
  }
  const started = Date.now();
  while (answered === 0 && Date.now() - started < c.timeoutMs) await sleep(5);
  return { answered };
}

/** Counts PEP event notifications arriving at every held connection (the publisher excepted). */
async function pepCount(c: Extract<Command, { cmd: 'pep-count' }>) {
  let count = 0;
  let lastAt = 0;
  let lastProgress = Date.now();
  const conns = [...held.values()].filter((k) => k.user !== c.exclude);
  for (const k of conns) {
    k.take();
    const counter = new Counter('pubsub#event');
    k.onData = (chunk) => {
      const n = counter.feed(chunk);
      if (n) {
        count += n;
        lastAt = nowUs();
        lastProgress = Date.now();
      }
    };
  }
  process.send!({ ready: true });
  const started = Date.now();
  while (count < c.expected && Date.now() - started < c.timeoutMs) {
    if (count > 0 && Date.now() - lastProgress > 15000) break;
    await sleep(5);
  }
  for (const k of conns) k.onData = null;
  return { count, lastAt };
}

/** The publisher publishes `updates` items to its tune node back to back (PEP, no 'to'). */
async function pepSend(c: Extract<Command, { cmd: 'pep-send' }>) {
  const u = conn(c.user);
  u.onData = () => {};
  const firstAt = nowUs();
  let batch = '';
  for (let i = 0; i < c.updates; i++) {
    batch += `<iq type='set' id='pub${i}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='${PEP_NODE}'><item id='t${i}'><tune xmlns='${PEP_NODE}'><artist>Bench</artist><title>Update ${i}</title><length>${180 + i}</length></tune></item></publish></pubsub></iq>`;
    if (batch.length > 8192) {
      u.write(batch);
      batch = '';
    }
  }
  if (batch) u.write(batch);
  await sleep(100);
  if (u.closed) throw new Error(`${c.user}'s stream was closed by the server`);
  return { firstAt };
}

async function run(req: Request): Promise<unknown> {
  const { target: t, command: c } = req;
  switch (c.cmd) {
    case 'logins':
      return logins(t, c);
    case 'connect':
      return connect(t, c);
    case 'disconnect':
      return disconnect();
    case 'messages':
      return messages(c);
    case 'latency':
      return latency(c);
    case 'sub-approve':
      return subApprove(c);
    case 'sub-request':
      return subRequest(c);
    case 'fanout-count':
      return fanoutCount(c);
    case 'fanout-send':
      return fanoutSend(c);
    case 'muc-create':
      return mucCreate(c);
    case 'muc-join':
      return mucJoin(c);
    case 'muc-count':
      return mucCount(c);
    case 'muc-send':
      return mucSend(c);
    case 'mam-query':
      return mamQuery(c);
    case 'pep-present':
      return pepPresent(c);
    case 'pep-count':
      return pepCount(c);
    case 'pep-send':
      return pepSend(c);
  }
}

process.on('message', (req: Request) => {
  run(req).then(
    (result) => process.send!({ id: req.id, result }),
    (err: Error) => process.send!({ id: req.id, error: err.stack ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
