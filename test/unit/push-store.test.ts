// The push registration store (XEP-0357) as two cluster nodes see it: two
// PushStore instances over one backend. A change is made to what storage
// holds, so one node's change never drops another's, and current() sees
// what another node did.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LevelBackend } from '../../src/storage/level.ts';
import { type PushRegistration, PushStore } from '../../src/storage/push.ts';

const reg = (jid: string, node: string): PushRegistration => ({ jid, node, options: [['secret', ['s']]], resource: 'phone', enabled: 1 });

describe('push registration store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-push-'));
  let backend: LevelBackend;
  before(async () => {
    backend = await LevelBackend.open(dir);
  });
  after(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps another node’s registrations when this one changes its own, and reads them on demand', async () => {
    const nodeA = new PushStore(backend);
    const nodeB = new PushStore(backend);
    await nodeA.load();
    await nodeB.load();
    assert.equal(await nodeA.enable('alice@x', reg('push.a', 'n1'), 10), true);
    assert.equal(nodeB.get('alice@x').length, 0, 'B has not looked yet');
    assert.deepEqual((await nodeB.current('alice@x')).map((r) => r.node), ['n1']);
    assert.equal(await nodeB.enable('alice@x', reg('push.b', 'n2'), 10), true);
    assert.deepEqual((await nodeA.current('alice@x')).map((r) => r.node).sort(), ['n1', 'n2']);
    // The same service and node again replaces, the limit counts the others.
    assert.equal(await nodeA.enable('alice@x', reg('push.a', 'n1'), 2), true);
    assert.equal(await nodeA.enable('alice@x', reg('push.c', 'n3'), 2), false);
    assert.equal(await nodeB.disable('alice@x', 'push.a'), 1);
    assert.deepEqual((await nodeA.current('alice@x')).map((r) => r.node), ['n2']);
    const fresh = new PushStore(backend);
    await fresh.load();
    assert.deepEqual(fresh.get('alice@x').map((r) => r.jid), ['push.b']);
  });
});
