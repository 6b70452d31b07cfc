// What `jabberfly status` shows: one named section per feature. The server
// contributes its own (uptime, sessions); a feature with state worth showing
// an administrator (the MSN transport, a MUC service, ...) adds a section
// from its module, so `status` grows without this file or the CLI changing.
// Sections are for the local admin channel only (0600 socket): they may name
// users, unlike the public /status page.

export type StatusValue = string | number | boolean | null | StatusValue[] | { [key: string]: StatusValue };
export type StatusSection = Record<string, StatusValue>;
export type StatusProvider = () => StatusSection | Promise<StatusSection>;

export class StatusSections {
  private readonly providers = new Map<string, StatusProvider>();

  /** Adds a section; names are unique (a second module with the same name is a bug). */
  add(name: string, provider: StatusProvider): void {
    if (this.providers.has(name)) throw new Error(`status section '${name}' is already registered`);
    this.providers.set(name, provider);
  }

  remove(name: string): void {
    this.providers.delete(name);
  }

  /** Every section in registration order; one that fails shows its error instead of failing all. */
  async collect(): Promise<Record<string, StatusSection>> {
    const out: Record<string, StatusSection> = {};
    for (const [name, provider] of this.providers) {
      try {
        out[name] = await provider();
      } catch (err) {
        out[name] = { error: (err as Error).message ?? String(err) };
      }
    }
    return out;
  }
}
