// Hostile and malformed stanzas from logged-in raw clients, to every part
// of the server: each gets the right stanza or stream error, what users
// stored is untouched, and afterwards the server still serves (two other
// clients exchange a message, a new stream opens, the log shows no failure).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { securedStream, } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { assertCleanLogs, assertStillServing, attr, nextId, Peer, stanzaErrorCondition, witnesses } from './peer.ts';

const PING = "<ping xmlns='urn:xmpp:ping'/>";

describe('robustness: hostile stanzas from logged-in clients', () => {
  let ts: TestServer;
  let w: { a: Peer; b: Peer };
  let alice: Peer;
  const peers: Peer[] = [];

  /** A fresh logged-in alice (streams that end in a stream error are replaced). */
  async function fresh(resource = `r${nextId()}`): Promise<Peer> {
    const p = await Peer.login(ts, 'alice', resource);
    peers.push(p);
    return p;
  }

  before(async () => {
    ts = await startServer();
    await ts.addUser('alice', 'pw');
    await ts.addUser('bob', 'pw');
    w = await witnesses(ts);
    alice = await fresh('main');
  });
  after(async () => {
    for (const p of [...peers, w?.a, w?.b]) p?.close();
    await ts?.stop();
  });

  it('answers iqs of the wrong shape with bad-request, and ignores results and errors to the server', async () => {
    for (const bad of [
      `<iq type='get'>${PING}</iq>`, // no id
      `<iq id='{id}'>${PING}</iq>`, // no type
      `<iq id='{id}' type='GET'>${PING}</iq>`,
      `<iq id='{id}' type=''>${PING}</iq>`,
      `<iq id='{id}' type='get'/>`, // no payload
      `<iq id='{id}' type='set'>just text</iq>`,
      `<iq id='{id}' type='get'>${PING}<query xmlns='jabber:iq:version'/></iq>`, // two payloads
      `<iq id='{id}' type='get' to='localhost'>${PING}${PING}</iq>`,
      `<iq id='{id}' type='set' to='bob@localhost'><query xmlns='jabber:iq:roster'/><x xmlns='y'/></iq>`,
    ]) {
      if (!bad.includes('{id}')) {
        alice.send(bad);
        const r = await alice.waitFor((s) => s.name === 'iq' && s.attrs.type === 'error', 'error for an iq without id');
        assert.equal(r.attrs.id, undefined);
        assert.equal(stanzaErrorCondition(r), 'bad-request');
        continue;
      }
      assert.equal(await alice.expectError(bad), 'bad-request', bad);
    }
    // Results and errors nobody asked for are dropped, never answered (no error loops).
    const ids = [nextId(), nextId(), nextId(), nextId()];
    alice.send(`<iq type='result' id='${ids[0]}'/>`);
    alice.send(`<iq type='result' id='${ids[1]}' to='localhost'><query xmlns='jabber:iq:roster'/></iq>`);
    alice.send(`<iq type='error' id='${ids[2]}' to='localhost'><error type='cancel'/></iq>`);
    alice.send(`<iq type='result' id='${ids[3]}' to='localhost'>${PING}${PING}</iq>`);
    alice.send("<iq type='error'/>");
    await alice.sync();
    assert.deepEqual(
      alice.stanzas.filter((s) => ids.includes(s.attrs.id ?? '') || !s.attrs.id),
      [],
      'no reply to results and errors',
    );
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('answers every stanza kind with jid-malformed for an invalid to', async () => {
    const invalid = [
      '@@',
      'a@b/',
      '@localhost',
      'localhost/',
      'a@@localhost',
      'a b@localhost',
      '',
      'a@[junk]',
      'a@..',
      'a@localhost:5222',
      `${'x'.repeat(1024)}@localhost`,
      `a@${'x'.repeat(1024)}`,
      `bob@localhost/${'r'.repeat(1024)}`,
      '"q"@localhost',
    ];
    for (const to of invalid) {
      const t = attr(to);
      assert.equal(await alice.expectError(`<message id='{id}' to='${t}' type='chat'><body>x</body></message>`), 'jid-malformed', to);
      assert.equal(await alice.expectError(`<iq id='{id}' type='get' to='${t}'>${PING}</iq>`), 'jid-malformed', to);
      assert.equal(await alice.expectError(`<presence id='{id}' to='${t}'/>`), 'jid-malformed', to);
      assert.equal(await alice.expectError(`<presence id='{id}' to='${t}' type='subscribe'/>`), 'jid-malformed', to);
    }
    // The error comes from our domain, never from the malformed address.
    const r = await alice.request("<message id='{id}' to='a@[junk]'><body>x</body></message>");
    assert.equal(r.attrs.from, 'localhost');
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('refuses unknown presence and message types with bad-request', async () => {
    for (const type of ['bogus', 'AVAILABLE', '', 'available', 'invisible']) {
      // (A broadcast <presence type='invisible'/> is XEP-0018 invisibility: accepted, see test/im/invisible.test.ts.)
      if (type !== 'invisible') assert.equal(await alice.expectError(`<presence id='{id}' type='${type}'/>`), 'bad-request', type);
      assert.equal(await alice.expectError(`<presence id='{id}' to='bob@localhost' type='${type}'/>`), 'bad-request', type);
      assert.equal(await alice.expectError(`<presence id='{id}' to='localhost' type='${type}'/>`), 'bad-request', type);
    }
    for (const type of ['bogus', 'CHAT', '', 'normal ']) {
      assert.equal(
        await alice.expectError(`<message id='{id}' to='${w.b.jid}' type='${type}'><body>x</body></message>`),
        'bad-request',
        type,
      );
    }
    // Broadcast presence is only available or unavailable.
    for (const type of ['probe', 'subscribe', 'unsubscribed']) {
      assert.equal(await alice.expectError(`<presence id='{id}' type='${type}'/>`), 'bad-request', type);
    }
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('keeps rosters intact under malformed roster requests', async () => {
    const get = "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'/></iq>";
    assert.equal(
      (await alice.request("<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>G</group></item></query></iq>")).attrs.type,
      'result',
    );
    const before = (await alice.request(get)).toString();
    const set = (item: string) => `<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'>${item}</query></iq>`;
    const cases: Array<[string, string]> = [
      [set(''), 'bad-request'],
      [set('<item/>'), 'bad-request'],
      [set("<item jid=''/>"), 'bad-request'],
      [set("<item jid='@@'/>"), 'jid-malformed'],
      [set("<item jid='a@b/'/>"), 'jid-malformed'],
      [set("<item jid='bob@localhost/res'/>"), 'jid-malformed'],
      [set(`<item jid='${'x'.repeat(1100)}@localhost'/>`), 'jid-malformed'],
      [set("<item jid='alice@localhost'/>"), 'not-allowed'],
      [set("<item jid='carol@localhost'/><item jid='dave@localhost'/>"), 'bad-request'],
      [set("<item jid='carol@localhost'><group>a</group><group>a</group></item>"), 'bad-request'],
      [set("<item jid='carol@localhost'><group/></item>"), 'not-acceptable'],
      [set(`<item jid='carol@localhost' name='${'n'.repeat(1100)}'/>`), 'not-acceptable'],
      [set("<item jid='nobody@localhost' subscription='remove'/>"), 'item-not-found'],
      [
        "<iq type='set' id='{id}' to='bob@localhost'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>",
        'service-unavailable',
      ],
    ];
    for (const [stanza, condition] of cases) assert.equal(await alice.expectError(stanza), condition, stanza);
    // A roster get ignores whatever it carries; nothing stored changed.
    const odd = await alice.request("<iq type='get' id='{id}'><query xmlns='jabber:iq:roster' ver='&#x1F600;'><item jid='@@'/></query></iq>");
    assert.equal(odd.attrs.type, 'result');
    const after = (await alice.request(get)).toString().replace(/id="[^"]+"/, '');
    assert.equal(after, before.replace(/id="[^"]+"/, ''));
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('refuses bad vCards and keeps the stored one byte for byte', async () => {
    const card = "<vCard xmlns='vcard-temp'>loose text<FN>Alice &#x1F600;</FN><X-ODD a='1'><deep><deeper/></deep></X-ODD></vCard>";
    assert.equal((await alice.request(`<iq type='set' id='{id}'>${card}</iq>`)).attrs.type, 'result');
    const stored = (await alice.request("<iq type='get' id='{id}'><vCard xmlns='vcard-temp'/></iq>")).getChild('vCard')!.toString();
    const cases: Array<[string, string]> = [
      ["<iq type='set' id='{id}'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!not base64!!</BINVAL></PHOTO></vCard></iq>", 'bad-request'],
      ["<iq type='set' id='{id}'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>QUJD=</BINVAL></PHOTO></vCard></iq>", 'bad-request'],
      ["<iq type='set' id='{id}' to='bob@localhost'><vCard xmlns='vcard-temp'><FN>x</FN></vCard></iq>", 'forbidden'],
      ["<iq type='get' id='{id}' to='nobody@localhost'><vCard xmlns='vcard-temp'/></iq>", 'service-unavailable'],
      ["<iq type='get' id='{id}' to='bob@localhost'><vCard xmlns='vcard-temp'/></iq>", 'item-not-found'],
      ["<iq type='get' id='{id}' to='bob@localhost/nowhere'><vCard xmlns='vcard-temp'/></iq>", 'service-unavailable'],
      ["<iq type='get' id='{id}' to='localhost'><vCard xmlns='vcard-temp'/></iq>", 'service-unavailable'],
    ];
    for (const [stanza, condition] of cases) assert.equal(await alice.expectError(stanza), condition, stanza);
    // A valid, line-wrapped BINVAL is accepted.
    const photo = "<PHOTO><TYPE>image/png</TYPE><BINVAL>QUJD\n REVG</BINVAL></PHOTO>";
    const other = await fresh();
    assert.equal((await other.request(`<iq type='set' id='{id}'><vCard xmlns='vcard-temp'>${photo}</vCard></iq>`)).attrs.type, 'result');
    assert.equal((await other.request(`<iq type='set' id='{id}'>${card}</iq>`)).attrs.type, 'result');
    const again = (await alice.request("<iq type='get' id='{id}'><vCard xmlns='vcard-temp'/></iq>")).getChild('vCard')!.toString();
    assert.equal(again, stored);
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('answers malformed account management (jabber:iq:register) and keeps the password', async () => {
    const reg = (body: string, to = '') => `<iq type='set' id='{id}'${to}><query xmlns='jabber:iq:register'>${body}</query></iq>`;
    const cases: Array<[string, string]> = [
      [reg(''), 'bad-request'],
      [reg('<username>alice</username>'), 'bad-request'],
      [reg('<password>new</password>'), 'bad-request'],
      [reg('<username>alice</username><password/>'), 'bad-request'],
      [reg('<username>bob</username><password>stolen</password>'), 'bad-request'],
      [reg('<username>@@</username><password>x</password>'), 'bad-request'],
      [reg(`<username>${'u'.repeat(1100)}</username><password>x</password>`), 'bad-request'],
      [reg('<remove/><username>alice</username>'), 'bad-request'],
      [reg('<username>alice</username><password>x</password>', " to='bob@localhost'"), 'service-unavailable'],
    ];
    for (const [stanza, condition] of cases) assert.equal(await alice.expectError(stanza), condition, stanza);
    // None of it changed the password or removed the account.
    const again = await fresh();
    await again.sync();
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('answers odd disco requests and node names', async () => {
    const info = (to: string, node?: string) =>
      `<iq type='get' id='{id}' to='${to}'><query xmlns='http://jabber.org/protocol/disco#info'${node === undefined ? '' : ` node='${attr(node)}'`}/></iq>`;
    const items = (to: string, node: string) =>
      `<iq type='get' id='{id}' to='${to}'><query xmlns='http://jabber.org/protocol/disco#items' node='${attr(node)}'/></iq>`;
    for (const node of ['x', '&<>\'"', '\u{1F600}', 'https://jabberfly.org#', 'https://jabberfly.org#bogus', ' ', 'n'.repeat(5000)]) {
      assert.equal(await alice.expectError(info('localhost', node)), 'item-not-found', node);
      assert.equal(await alice.expectError(items('localhost', node)), 'item-not-found', node);
      assert.equal(await alice.expectError(info('alice@localhost', node)), 'item-not-found', node);
    }
    assert.equal(await alice.expectError(info('bob@localhost')), 'service-unavailable');
    assert.equal(await alice.expectError(info('nobody@localhost')), 'service-unavailable');
    assert.equal(await alice.expectError(info('bob@localhost/none')), 'service-unavailable');
    // An empty node is no node.
    assert.equal((await alice.request(info('localhost', ''))).attrs.type, 'result');
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('answers bad blocking commands and keeps the blocklist', async () => {
    const cmd = (name: string, items: string) => `<iq type='set' id='{id}'><${name} xmlns='urn:xmpp:blocking'>${items}</${name}></iq>`;
    assert.equal((await alice.request(cmd('block', "<item jid='spam@example.com'/>"))).attrs.type, 'result');
    const list = "<iq type='get' id='{id}'><blocklist xmlns='urn:xmpp:blocking'/></iq>";
    const before = (await alice.request(list)).getChild('blocklist')!.toString();
    const cases: Array<[string, string]> = [
      [cmd('block', ''), 'bad-request'],
      [cmd('block', '<item/>'), 'jid-malformed'],
      [cmd('block', "<item jid='@@'/>"), 'jid-malformed'],
      [cmd('block', "<item jid='ok@example.com'/><item jid='a@b/'/>"), 'jid-malformed'],
      [cmd('block', "<item jid='a@[junk]'/>"), 'jid-malformed'],
      [cmd('unblock', "<item jid=''/>"), 'jid-malformed'],
      [cmd('unblock', "<item jid='@localhost'/>"), 'jid-malformed'],
      [`<iq type='get' id='{id}' to='bob@localhost'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, 'service-unavailable'],
    ];
    for (const [stanza, condition] of cases) assert.equal(await alice.expectError(stanza), condition, stanza);
    assert.equal((await alice.request(list)).getChild('blocklist')!.toString(), before);
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('takes carbons enable/disable twice, and answers other small iqs', async () => {
    for (const c of ['enable', 'enable', 'disable', 'disable']) {
      const r = await alice.request(`<iq type='set' id='{id}'><${c} xmlns='urn:xmpp:carbons:2'/></iq>`);
      assert.equal(r.attrs.type, 'result', c);
    }
    const cases: Array<[string, string]> = [
      ["<iq type='set' id='{id}' to='bob@localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>", 'service-unavailable'],
      ["<iq type='get' id='{id}'><enable xmlns='urn:xmpp:carbons:2'/></iq>", 'service-unavailable'],
      ["<iq type='set' id='{id}' to='localhost'><query xmlns='jabber:iq:version'/></iq>", 'service-unavailable'],
      ["<iq type='set' id='{id}' to='localhost'><time xmlns='urn:xmpp:time'/></iq>", 'service-unavailable'],
      ["<iq type='get' id='{id}' to='nobody@localhost'><query xmlns='jabber:iq:last'/></iq>", 'service-unavailable'],
      ["<iq type='get' id='{id}' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>", 'forbidden'],
      ["<iq type='get' id='{id}' to='localhost'><unknown xmlns='urn:nothing'/></iq>", 'service-unavailable'],
      ["<iq type='get' id='{id}' to='localhost'><query/></iq>", 'service-unavailable'],
      ["<iq type='set' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>again</resource></bind></iq>", 'service-unavailable'],
    ];
    for (const [stanza, condition] of cases) assert.equal(await alice.expectError(stanza), condition, stanza);
    // Payloads with junk inside still get their answer.
    const v = await alice.request("<iq type='get' id='{id}' to='localhost'><query xmlns='jabber:iq:version'><name>me</name><x/></query></iq>");
    assert.equal(v.getChild('query')?.getChildText('name'), 'jabberfly');
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('relays stanzas with many attributes, deep nesting and odd unicode intact', async () => {
    // 2500 attributes (inside the stanza size limit, which charges each
    // attribute what it costs in memory, ~80 bytes, besides its bytes).
    let attrs = '';
    for (let i = 0; i < 2500; i++) attrs += ` a${i}='${i}'`;
    const tag = nextId();
    alice.send(`<message to='${w.b.jid}' id='${tag}'${attrs}><body>many</body></message>`);
    const many = await w.b.waitFor((s) => s.attrs.id === tag, 'message with 2500 attributes');
    assert.equal(many.attrs.a2499, '2499');

    // Nested to the depth limit (32, the stanza itself counting as 1).
    const depth = ts.config.limits.maxDepth;
    const inner = `${'<x>'.repeat(depth - 2)}deep${'</x>'.repeat(depth - 2)}`;
    const tag2 = nextId();
    alice.send(`<message to='${w.b.jid}' id='${tag2}'><body>d</body><wrap xmlns='urn:test'>${inner}</wrap></message>`);
    const deep = await w.b.waitFor((s) => s.attrs.id === tag2, 'deep message');
    let node = deep.getChild('wrap');
    let levels = 1;
    while (node?.getChild('x')) {
      node = node.getChild('x');
      levels++;
    }
    assert.equal(levels, depth - 1);
    assert.equal(node?.getText(), 'deep');

    // Unicode: astral characters as references and raw, BOM, bidi controls,
    // combining marks, and xml:lang oddities arrive unchanged.
    const text = '\u{1F600}\u{10FFFF}\uFEFF\u202Eabc\u0301\u00A0\uFFFD';
    const tag3 = nextId();
    alice.send(
      `<message to='${w.b.jid}' id='${tag3}' xml:lang=''><body xml:lang='x-\u2603'>&#x1F600;&#1114111;${text.slice(4)}</body>` +
        `<body xml:lang='${'l'.repeat(300)}'>two</body><subject xml:lang='en'/></message>`,
    );
    const uni = await w.b.waitFor((s) => s.attrs.id === tag3, 'unicode message');
    assert.equal(uni.getChildText('body'), text);
    assert.equal(uni.getChildren('body').length, 2);

    // Fullwidth and upper-case addresses are normalised to the same user.
    const tag4 = nextId();
    alice.send(`<message to='\uFF37\uFF29\uFF34\uFF12@LOCALHOST/w' id='${tag4}'><body>fw</body></message>`);
    assert.equal((await w.b.waitFor((s) => s.attrs.id === tag4, 'fullwidth-addressed message')).getChildText('body'), 'fw');
    alice.noStreamError();
    await assertStillServing(ts, w);
  });

  it('ends the stream with the right stream error for broken XML, and other users notice nothing', async () => {
    const cases: Array<[string | Buffer, string]> = [
      ["<message to='bob@localhost'><body>&#xFFFE;</body></message>", 'not-well-formed'],
      ["<message to='bob@localhost'><body>&#xD800;&#xDC00;</body></message>", 'not-well-formed'],
      ["<message to='bob@localhost'><body>&#0;</body></message>", 'not-well-formed'],
      ["<message to='bob@localhost' id='&#x1;'/>", 'not-well-formed'],
      ["<message to='bob@localhost'><body>&#x110000;</body></message>", 'not-well-formed'],
      [Buffer.from([...Buffer.from('<message><body>'), 0xef, 0xbf, 0xbe, ...Buffer.from('</body></message>')]), 'not-well-formed'],
      [Buffer.from([...Buffer.from('<message><body>'), 0xed, 0xa0, 0x80, ...Buffer.from('</body></message>')]), 'not-well-formed'],
      ["<message to='bob@localhost' a'b='1'><body>x</body></message>", 'not-well-formed'],
      ['<message to=\'bob@localhost\'><bo"dy>x</bo"dy></message>', 'not-well-formed'],
      ["<message to='bob@localhost'><foo:bar/></message>", 'not-well-formed'],
      ["<message to='bob@localhost'><x foo:attr='1'/></message>", 'not-well-formed'],
      ["<message to='bob@localhost'><x xmlns:p=''><p:y/></x></message>", 'not-well-formed'],
      ["<message><body>&unknown;</body></message>", 'restricted-xml'],
      ["<message><!-- comment --></message>", 'restricted-xml'],
      ['<message><body>a</x></message>', 'not-well-formed'],
      [`<message>${'<x>'.repeat(40)}`, 'policy-violation'],
      ['<foo/>', 'unsupported-stanza-type'],
      ["<message xmlns='jabber:server'/>", 'invalid-namespace'],
      ["<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>", 'unsupported-stanza-type'],
    ];
    for (const [input, condition] of cases) {
      const p = await fresh();
      p.send(input);
      assert.equal(await p.expectStreamError(), condition, String(input));
    }
    // A prefix bound on the stream header stays bound when the stanza goes
    // elsewhere (here: offline storage, then bob's fresh stream).
    const p = await fresh();
    const tag = nextId();
    p.send(`<message to='bob@localhost' id='${tag}'><stream:x/><q:y xmlns:q='urn:q' q:z='1'/><body>prefixed</body></message>`);
    await p.sync();
    const bob = await Peer.login(ts, 'bob', 'later');
    peers.push(bob);
    bob.send('<presence/>');
    const got = await bob.waitFor((s) => s.attrs.id === tag, 'the prefixed message from offline storage');
    assert.equal(got.getChild('x', 'http://etherx.jabber.org/streams')?.name, 'stream:x');
    assert.equal(got.getChild('y', 'urn:q')?.attrs['q:z'], '1');
    await assertStillServing(ts, w);
  });

  it('answers pre-authentication iqs of the wrong shape (in-band registration open or not)', async () => {
    const open = await startServer({ registration: { open: true } });
    try {
      for (const server of [open, ts]) {
        const { s } = await securedStream(server.port);
        s.input = '';
        const p = new Peer(s, '');
        peers.push(p);
        const q = (body: string) => `<iq type='set' id='{id}'><query xmlns='jabber:iq:register'>${body}</query></iq>`;
        const cases: Array<[string, string]> =
          server === open
            ? [
                [q(''), 'not-acceptable'],
                [q('<username>new</username>'), 'not-acceptable'],
                [q('<username>@@</username><password>x</password>'), 'not-acceptable'],
                [q(`<username>${'u'.repeat(1100)}</username><password>x</password>`), 'not-acceptable'],
                [q('<remove/>'), 'registration-required'],
                [`<iq id='{id}'><query xmlns='jabber:iq:register'/></iq>`, 'bad-request'],
                [`<iq id='{id}' type='get'/>`, 'bad-request'],
                [`<iq id='{id}' type='get'><query xmlns='jabber:iq:register'/>${PING}</iq>`, 'bad-request'],
                [`<iq id='{id}' type='get'>${PING}</iq>`, 'service-unavailable'],
              ]
            : [
                [q('<username>new</username><password>x</password>'), 'service-unavailable'],
                [`<iq id='{id}' type='get'/>`, 'bad-request'],
              ];
        for (const [stanza, condition] of cases) assert.equal(await p.expectError(stanza), condition, stanza);
        // The password never comes back in an error.
        assert.doesNotMatch(s.input, /<password>/);
        // Results are not answered; the stream still works afterwards.
        p.send("<iq type='result' id='stray'/>");
        const r = await p.request("<iq type='get' id='{id}'><query xmlns='jabber:iq:register'/></iq>");
        assert.equal(r.attrs.type, server === open ? 'result' : 'error');
        assert.equal(p.stanzas.find((e) => e.attrs.id === 'stray'), undefined);
        p.noStreamError();
      }
      assertCleanLogs(open);
    } finally {
      await open.stop();
    }
    await assertStillServing(ts, w);
  });

  it('a module handler that throws synchronously costs one stanza an internal-server-error, not the stream', async () => {
    const host = ts.server.hosts.get('localhost')!;
    const unhook = host.hook('iq-get/host/urn:test:throw:boom', () => {
      throw new TypeError('boom');
    });
    const logsBefore = ts.logs.length;
    try {
      assert.equal(
        await alice.expectError("<iq type='get' id='{id}' to='localhost'><boom xmlns='urn:test:throw'/></iq>"),
        'internal-server-error',
      );
      await alice.sync();
      alice.noStreamError();
      assert.ok(ts.logs.slice(logsBefore).some((l) => l.includes('handler failed') && l.includes('boom')));
    } finally {
      unhook();
      ts.logs.splice(logsBefore);
    }
    await assertStillServing(ts, w);
  });
});
