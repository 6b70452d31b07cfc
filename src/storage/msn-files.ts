// Files the MSN transport received for its users, when it serves them itself
// (the https service's /msn-files/ path: no HTTP upload service, or uploads
// disabled). Bytes are kept by file id, each file's owner keeps the list of
// ids (per-user data: deleting the account unlists them at once, and the
// sweep removes the bytes), and every file expires.
import type { KeyValueStore, StorageBackend } from './types.ts';

export interface MsnFileRecord {
  owner: string;
  filename: string;
  contentType: string;
  /** Epoch ms after which the file is gone. */
  expires: number;
  /** Base64 bytes. */
  data: string;
}

export class MsnFileStore {
  private readonly files: KeyValueStore<MsnFileRecord>;
  private readonly owners: KeyValueStore<{ ids: string[] }>;

  constructor(backend: StorageBackend) {
    this.files = backend.keyValue<MsnFileRecord>('msn-file-data');
    this.owners = backend.keyValue<{ ids: string[] }>('msn-files');
  }

  /** Keeps a file; the owner's oldest are dropped beyond `maxPerOwner`. */
  async put(id: string, record: MsnFileRecord, maxPerOwner: number): Promise<void> {
    await this.files.set(id, record);
    const ids = [...((await this.owners.get(record.owner))?.ids ?? []), id];
    const dropped = ids.splice(0, Math.max(0, ids.length - maxPerOwner));
    await this.owners.set(record.owner, { ids });
    for (const old of dropped) await this.files.delete(old);
  }

  /** The file, if it exists, has not expired, and its owner still lists it. */
  async get(id: string, now = Date.now()): Promise<MsnFileRecord | undefined> {
    const f = await this.files.get(id);
    if (!f || f.expires <= now) return undefined;
    const listed = (await this.owners.get(f.owner))?.ids.includes(id) ?? false;
    return listed ? f : undefined;
  }

  /** Removes expired files and files no owner lists any more; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    let removed = 0;
    const lists = new Map<string, string[]>();
    for await (const id of this.files.keys()) {
      const f = await this.files.get(id);
      if (!f) continue;
      let ids = lists.get(f.owner);
      if (!ids) {
        ids = (await this.owners.get(f.owner))?.ids ?? [];
        lists.set(f.owner, ids);
      }
      if (f.expires > now && ids.includes(id)) continue;
      await this.files.delete(id);
      removed++;
      if (ids.includes(id)) {
        const rest = ids.filter((x) => x !== id);
        lists.set(f.owner, rest);
        await this.owners.set(f.owner, { ids: rest });
      }
    }
    return removed;
  }
}
