import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { CommandParser, encodeCommand, type MsnCommand } from '../../src/msnp/command.ts';
import { MsnConnection } from '../../src/msnp/connection.ts';
import { MsnError, MsnTimeoutError } from '../../src/msnp/errors.ts';

// A login-time stream shaped like the MSNP11 example in the protocol documents.
const PROFILE =
  'MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\nLoginTime: 1726321960\r\n' +
  'EmailEnabled: 1\r\nMemberIdHigh: 1\r\nMemberIdLow: 2\r\nlang_preference: 1033\r\n\r\n';
const PSM = '<Data><PSM>caf\u00e9 \u{1F600}</PSM><CurrentMedia></CurrentMedia></Data>';
const STREAM = Buffer.concat([
  Buffer.from('VER 1 MSNP11\r\n'),
  Buffer.from('USR 7 OK example@hotmail.com 1 0\r\n'),
  Buffer.from('SBS 0 null\r\n'),
  Buffer.from(`MSG Hotmail Hotmail ${Buffer.byteLength(PROFILE)}\r\n${PROFILE}`),
  Buffer.from('CHL 0 12345678901234567890\r\n'),
  Buffer.from('QRY 9\r\n'),
  Buffer.from(`UBX bob@hotmail.com ${Buffer.byteLength(PSM)}\r\n${PSM}`),
  Buffer.from('UUX 10 0\r\n'),
  Buffer.from('217 11\r\n'),
]);

function check(cmds: MsnCommand[]): void {
  assert.deepEqual(
    cmds.map((c) => c.name),
    ['VER', 'USR', 'SBS', 'MSG', 'CHL', 'QRY', 'UBX', 'UUX', '217'],
  );
  assert.deepEqual(cmds[1]!.args, ['7', 'OK', 'example@hotmail.com', '1', '0']);
  assert.deepEqual(cmds[3]!.args, ['Hotmail', 'Hotmail']);
  assert.equal(cmds[3]!.payload!.toString('utf8'), PROFILE);
  // QRY from the server has no payload: its "9" is the TrID.
  assert.deepEqual(cmds[5]!.args, ['9']);
  assert.equal(cmds[5]!.payload, undefined);
  assert.equal(cmds[6]!.payload!.toString('utf8'), PSM);
  assert.equal(cmds[7]!.payload!.length, 0);
  assert.deepEqual(cmds[8]!.args, ['11']);
}

describe('CommandParser', () => {
  test('parses a whole stream in one chunk', () => {
    const p = new CommandParser();
    check(p.push(STREAM));
    assert.equal(p.pending, 0);
  });

  test('parses the same stream split at every byte position', () => {
    for (let cut = 1; cut < STREAM.length; cut++) {
      const p = new CommandParser();
      const cmds = [...p.push(STREAM.subarray(0, cut)), ...p.push(STREAM.subarray(cut))];
      check(cmds);
    }
  });

  test('parses the stream fed one byte at a time (UTF-8 sequences split)', () => {
    const p = new CommandParser();
    const cmds: MsnCommand[] = [];
    for (const byte of STREAM) cmds.push(...p.push(Buffer.from([byte])));
    check(cmds);
  });

  test('payload length counts bytes, not characters', () => {
    const body = 'h\u00e9llo \u{1F600}';
    assert.equal(body.length, 8);
    const frame = encodeCommand('MSG', [4, 'A'], body);
    assert.equal(frame.toString('utf8'), `MSG 4 A 11\r\n${body}`);
    const p = new CommandParser(new Set(['MSG']));
    const [cmd] = p.push(Buffer.concat([frame, Buffer.from('OUT\r\n')]));
    assert.equal(cmd!.payload!.toString('utf8'), body);
  });

  test('encodes QRY as the documents show it', () => {
    const frame = encodeCommand('QRY', [1, 'msmsgs@msnmsgr.com'], '8ba1bb9d6dbf624fee31a2053af5fdd0');
    assert.equal(frame.toString(), 'QRY 1 msmsgs@msnmsgr.com 32\r\n8ba1bb9d6dbf624fee31a2053af5fdd0');
  });

  test('waits for an incomplete payload instead of emitting it', () => {
    const p = new CommandParser();
    assert.deepEqual(p.push(Buffer.from('MSG a@b.c a 10\r\n12345')), []);
    const [cmd] = p.push(Buffer.from('67890'));
    assert.equal(cmd!.payload!.toString(), '1234567890');
  });

  test('rejects a non-numeric payload length', () => {
    const p = new CommandParser();
    assert.throws(() => p.push(Buffer.from('MSG a@b.c nick xyz\r\n')));
  });
});

describe('MsnConnection', () => {
  async function withServer(
    onData: (sock: net.Socket, line: string) => void,
    fn: (port: number) => Promise<void>,
  ) {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('data', (d) => onData(sock, d.toString()));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      await fn((server.address() as net.AddressInfo).port);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  test('matches replies by TrID and turns 3-digit replies into MsnError', async () => {
    await withServer(
      (sock, line) => {
        const [name, trid] = line.trim().split(' ');
        // Reply in two chunks, with an unsolicited command in between.
        if (name === 'ADC') {
          sock.write('NLN NLN bob@x.com Bob 0\r\n21');
          setTimeout(() => sock.write(`5 ${trid}\r\n`), 5);
        } else {
          sock.write(`${name} ${trid} OK\r\n`);
        }
      },
      async (port) => {
        const conn = await MsnConnection.connect('127.0.0.1', port, {
          connectTimeout: 2000,
          requestTimeout: 2000,
        });
        const unsolicited: string[] = [];
        conn.on('command', (c) => unsolicited.push(c.name));
        const ok = await conn.request('BLP', ['AL']);
        assert.deepEqual(ok.args, ['1', 'OK']);
        await assert.rejects(
          conn.request('ADC', ['FL', 'N=bob@x.com']),
          (e: unknown) => e instanceof MsnError && e.code === 215,
        );
        assert.deepEqual(unsolicited, ['NLN']);
        const closed = new Promise((r) => conn.once('close', r));
        conn.close();
        await closed;
      },
    );
  });

  test('times out a request that gets no reply', async () => {
    await withServer(
      () => undefined,
      async (port) => {
        const conn = await MsnConnection.connect('127.0.0.1', port, {
          connectTimeout: 2000,
          requestTimeout: 50,
        });
        await assert.rejects(conn.request('SYN', ['0', '0']), MsnTimeoutError);
        conn.destroy();
      },
    );
  });
});
