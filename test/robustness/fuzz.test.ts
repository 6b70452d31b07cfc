// A small deterministic fuzzer: valid stanzas, mutated at the byte level
// (attributes dropped, duplicated or garbled, element names swapped, odd
// unicode and markup inserted, characters deleted, stanzas truncated), sent
// over logged-in streams. Our own stream parser is the oracle for what the
// mutation did to the XML:
//   - still complete, well-formed stanzas: the server answers the ping that
//     follows (or ends the stream with a stream error for a semantic fault,
//     such as a swapped stanza name), never with silence;
//   - broken XML: the server ends the stream with a stream error;
//   - an element left open (truncation): we hang up and log in again.
// Throughout, the server keeps serving, logs no handler failure, and what it
// relays (live, and from offline storage) is well-formed XML.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OfflineStore } from '../../src/storage/offline.ts';
import { XmlStreamParser } from '../../src/xml/stream-parser.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { assertCleanLogs, assertStillServing, nextId, Peer, witnesses } from './peer.ts';

// Fixed by default; FUZZ_SEED=n explores other inputs (a failure names its seed).
const SEED = Number(process.env.FUZZ_SEED ?? 0x6a6266);
const MUTATIONS = 500;
const MIN_MUTATIONS = 100;
const TIME_BUDGET_MS = 8000;

/** mulberry32: a tiny seeded PRNG, so every run sends the same bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Valid stanzas for every part of the server; {id} and {carol} are filled in.
// No password changes or account removal: those end sessions by design.
const CORPUS = [
  "<message to='{carol}' type='chat' id='{id}'><body>hello &amp; bye</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
  "<message to='bob@localhost' id='{id}' xml:lang='en'><subject>s</subject><body>offline</body><thread>t1</thread></message>",
  "<message to='bob@localhost/desk' type='headline' id='{id}'><body>news</body></message>",
  "<message to='localhost' type='normal' id='{id}'><body>to the server</body></message>",
  "<message type='groupchat' to='{carol}' id='{id}'><body>gc</body></message>",
  "<presence><show>away</show><status>brb</status><priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
  "<presence to='{carol}' id='{id}'><status>directed</status></presence>",
  "<presence to='bob@localhost' type='subscribe' id='{id}'><nick xmlns='http://jabber.org/protocol/nick'>F</nick></presence>",
  "<presence to='bob@localhost' type='unsubscribed' id='{id}'/>",
  "<presence type='unavailable'><status>gone</status></presence>",
  "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster' ver='1'/></iq>",
  "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='Dave'><group>Friends</group></item></query></iq>",
  "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' subscription='remove'/></query></iq>",
  "<iq type='set' id='{id}'><vCard xmlns='vcard-temp'><FN>Fuzz</FN><NICKNAME>f</NICKNAME><PHOTO><TYPE>image/png</TYPE><BINVAL>QUJD</BINVAL></PHOTO></vCard></iq>",
  "<iq type='get' id='{id}' to='bob@localhost'><vCard xmlns='vcard-temp'/></iq>",
  "<iq type='get' id='{id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='https://jabberfly.org#x'/></iq>",
  "<iq type='get' id='{id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
  "<iq type='set' id='{id}'><block xmlns='urn:xmpp:blocking'><item jid='spam@example.com'/></block></iq>",
  "<iq type='set' id='{id}'><unblock xmlns='urn:xmpp:blocking'><item jid='spam@example.com'/></unblock></iq>",
  "<iq type='get' id='{id}'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
  "<iq type='set' id='{id}'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
  "<iq type='get' id='{id}' to='localhost'><query xmlns='jabber:iq:version'/></iq>",
  "<iq type='get' id='{id}' to='localhost'><time xmlns='urn:xmpp:time'/></iq>",
  "<iq type='get' id='{id}' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>",
  "<iq type='get' id='{id}' to='{carol}'><ping xmlns='urn:xmpp:ping'/></iq>",
  "<iq type='get' id='{id}'><query xmlns='jabber:iq:register'/></iq>",
];

const NAMES = ['message', 'presence', 'iq', 'body', 'query', 'item', 'x', 'error', 'stream:stream', 'stream:features', 'vCard', 'a:b', '1x', 'q"', ''];
const VALUES = ['', '@@', 'a@b/', 'localhost', 'bob@localhost', 'error', 'result', 'get', 'bogus', '&#x1F600;', '&amp;', 'x'.repeat(3000), '\u202E', 'jabber:server'];
const INSERTS = [
  '\u{1F600}', '\uFFFE', '\u0000', '\u0007', '\uD800', '&#xFFFE;', '&#xD800;', '&#x1F600;', '&#0;', '&#x10FFFF;',
  '&amp;', '&bogus;', '&', '<', '>', "'", '"', '\u202E', '\uFEFF', '\u0301', ']]>', '<!--', '<?pi?>', '<![CDATA[x]]>',
  ' ', '\n', " xml:lang='\u2603'", ' xmlns:p="urn:p"', '<p:x/>', '</x>', '<x>', '=', 'é',
];

// complete: the stanza(s) and then the ping, intact; merged: well-formed, but
// the mutation swallowed the ping into its own element (an unclosed
// attribute, say), so the ping's id may come back in an error.
type Outcome = 'complete' | 'merged' | 'broken' | 'open';

/** What our parser makes of a stanza and the ping behind it, sent on a fresh, healthy stream. */
function classify(bytes: string, ping: string, pingId: string): Outcome {
  let broken = false;
  let pingSeen: 'intact' | 'altered' | null = null;
  const pristine = new XmlStreamParser({ maxStanzaSize: 262144, maxDepth: 32 }, {
    open: () => {},
    stanza: (e) => {
      expected = e.toString();
    },
    close: () => {},
    error: () => {},
  });
  let expected = '';
  pristine.write(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>${ping}`);
  const parser = new XmlStreamParser(
    { maxStanzaSize: 262144, maxDepth: 32 },
    {
      open: () => {},
      stanza: (e) => {
        if (e.attrs.id === pingId) pingSeen = e.toString() === expected ? 'intact' : 'altered';
      },
      close: () => {
        broken = true; // the stream itself would be closed: the server just ends it
      },
      error: () => {
        broken = true;
      },
    },
  );
  parser.write("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
  parser.write(bytes + ping);
  if (broken) return 'broken';
  return pingSeen === 'intact' ? 'complete' : pingSeen === 'altered' ? 'merged' : 'open';
}

function mutate(rand: () => number, stanza: string): { bytes: string } {
  const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)]!;
  let s = stanza;
  const count = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < count; i++) {
    const attrs = [...s.matchAll(/\s([\w:.-]+)=(['"])([^'"]*)\2/g)];
    const tags = [...s.matchAll(/<\/?([\w:.-]+)/g)];
    const pos = Math.floor(rand() * (s.length + 1));
    switch (Math.floor(rand() * 8)) {
      case 0: {
        const a = attrs.length ? pick(attrs) : null;
        if (a) s = s.slice(0, a.index) + s.slice(a.index + a[0].length); // drop an attribute
        break;
      }
      case 1: {
        const a = attrs.length ? pick(attrs) : null;
        if (a) s = `${s.slice(0, a.index + a[0].length)} ${a[1]}='${pick(VALUES)}'${s.slice(a.index + a[0].length)}`; // duplicate
        break;
      }
      case 2: {
        const a = attrs.length ? pick(attrs) : null;
        if (a) s = `${s.slice(0, a.index)} ${a[1]}='${pick(VALUES)}'${s.slice(a.index + a[0].length)}`; // garble a value
        break;
      }
      case 3: {
        const t = tags.length ? pick(tags) : null;
        if (t) {
          const start = t.index + (t[0].startsWith('</') ? 2 : 1);
          s = s.slice(0, start) + pick(NAMES) + s.slice(start + t[1]!.length); // swap an element name
        }
        break;
      }
      case 4:
      case 5:
        s = s.slice(0, pos) + pick(INSERTS) + s.slice(pos); // insert odd unicode or markup
        break;
      case 6:
        s = s.slice(0, pos) + s.slice(pos + 1); // delete a character
        break;
      default:
        s = s.slice(0, pos); // truncate
    }
  }
  return { bytes: s };
}

describe('robustness: fuzzed stanzas', () => {
  let ts: TestServer;
  let w: { a: Peer; b: Peer };
  let carol: Peer;
  const peers: Peer[] = [];

  before(async () => {
    // Many reconnects in a row: the per-IP connection limit is not what is tested here.
    ts = await startServer({ limits: { maxConnectionsPerIp: 10000 } });
    for (const u of ['fuzzer', 'bob', 'carol', 'dave']) await ts.addUser(u, 'pw');
    w = await witnesses(ts);
    carol = await Peer.login(ts, 'carol', 'desk');
    carol.send('<presence/>');
  });
  after(async () => {
    for (const p of [...peers, carol, w?.a, w?.b]) p?.close();
    await ts?.stop();
  });

  it(`survives ${MUTATIONS} mutated stanzas (seed ${SEED.toString(16)})`, async () => {
    const rand = prng(SEED);
    const started = Date.now();
    const tally = { complete: 0, merged: 0, broken: 0, open: 0, streamErrors: 0, reconnects: 0 };
    let peer = await Peer.login(ts, 'fuzzer', 'f');
    peers.push(peer);
    const reconnect = async () => {
      peer.close();
      tally.reconnects++;
      peer = await Peer.login(ts, 'fuzzer', `f${tally.reconnects}`);
      peers.push(peer);
    };
    let done = 0;
    // At least MIN_MUTATIONS whatever the machine's speed, then as many as the time budget allows.
    for (; done < MUTATIONS && (done < MIN_MUTATIONS || Date.now() - started < TIME_BUDGET_MS); done++) {
      const template = CORPUS[Math.floor(rand() * CORPUS.length)]!;
      const valid = template.replaceAll('{id}', nextId()).replaceAll('{carol}', carol.jid);
      const { bytes } = mutate(rand, valid);
      // The same bytes go to the oracle and to the server: the mutated stanza, then a ping.
      const id = nextId();
      const ping = `<iq type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`;
      const outcome = classify(bytes, ping, id);
      tally[outcome]++;
      const what = `mutation #${done}: ${JSON.stringify(bytes.slice(0, 300))} (${outcome})`;
      // A second, separate ping is answered whatever the first became.
      const id2 = nextId();
      peer.send(`${bytes}${ping}<iq type='get' id='${id2}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      if (outcome === 'open') {
        // The server is (rightly) waiting for the rest of the element: hang up.
        await reconnect();
        continue;
      }
      if (outcome === 'broken') {
        const condition = await peer.expectStreamError().catch((err: Error) => assert.fail(`${what}: ${err.message}`));
        assert.match(condition, /^(not-well-formed|restricted-xml|policy-violation|unsupported-stanza-type|invalid-namespace)$/, what);
        tally.streamErrors++;
        await reconnect();
        continue;
      }
      // Complete or merged: the second ping must be answered, unless the stanza
      // was something a stream cannot carry (then a stream error, never silence).
      const reply = await peer
        .waitFor((s) => (s.name === 'iq' && s.attrs.id === id2) || s.name === 'stream:error', 'ping or stream error')
        .catch((err: Error) => assert.fail(`${what}: ${err.message}`));
      if (reply.name === 'stream:error') {
        // Well-formed XML a client stream cannot carry: a stanza name or namespace swapped.
        const condition = reply.getChildElements()[0]?.name;
        assert.match(condition ?? '', /^(unsupported-stanza-type|invalid-namespace|policy-violation)$/, what);
        tally.streamErrors++;
        await reconnect();
        continue;
      }
      assert.equal(reply.attrs.type, 'result', what);
      // Replies come in order: an intact first ping was answered before the second.
      const first = peer.stanzas.find((s) => s.attrs.id === id);
      if (outcome === 'complete') assert.equal(first?.attrs.type, 'result', what);
      peer.stanzas.length = 0;
      if (done % 100 === 99) await assertStillServing(ts, w);
    }
    // Each kind of outcome was exercised.
    assert.ok(tally.complete > 20 && tally.broken > 20 && tally.open > 0, JSON.stringify(tally));

    // What the server relayed live is well-formed (Peer parses strictly).
    await carol.sync();
    // And so is what it stored for bob, delivered when he comes online.
    // Storing is asynchronous and in arrival order per user, so a marker
    // sent last, seen entering storage, has everything else stored before it.
    const host = ts.server.hosts.get('localhost')!;
    const marker = nextId();
    let markerStored!: () => void;
    const storing = new Promise<void>((resolve) => {
      markerStored = resolve;
    });
    const unhook = host.hook(
      'message/offline',
      (e) => {
        if (e.stanza.attrs.id === marker) markerStored();
        return false;
      },
      10,
    );
    carol.send(`<message to='bob@localhost' id='${marker}'><body>last</body></message>`);
    await storing;
    unhook();
    const bob = await Peer.login(ts, 'bob', 'later');
    peers.push(bob);
    bob.send('<presence/>');
    // One batch: when the marker arrives, everything stored before it has (strictly parsed).
    await bob.waitFor((s) => s.attrs.id === marker, 'the marker from offline storage');
    const delivered = bob.stanzas.filter((s) => s.name === 'message' && s.getChild('delay', 'urn:xmpp:delay')).length;
    // (Another seed may have had bob blocked by the fuzzer: then only the marker was stored.)
    if (process.env.FUZZ_SEED === undefined) assert.ok(delivered > 0, 'fuzzed messages went through offline storage');
    // Nothing is left behind (read through the store's own queue, after its removal).
    let left = -1;
    await ts.server.store(OfflineStore).drain('bob@localhost', async (messages) => {
      left = messages.length;
      return false;
    });
    assert.equal(left, -1, 'offline storage is empty');

    await assertStillServing(ts, w);
    assertCleanLogs(ts);
    console.log(`fuzz: ${done} mutations in ${Date.now() - started} ms`, tally);
  });
});
