/**
 * A map keyed by (app id, channel name), used on the publish path.
 *
 * Two levels of Map rather than one keyed by a joined string: a connection passes the same
 * channel string object on every message, and V8 caches a string's hash in the string, so a
 * lookup here allocates nothing and hashes nothing. A joined key would allocate, flatten and
 * hash a new string on every publication, several times (history, hub, presence).
 */
export class ChannelMap<V> {
  readonly #apps = new Map<string, Map<string, V>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(appId: string, channel: string): V | undefined {
    return this.#apps.get(appId)?.get(channel);
  }

  set(appId: string, channel: string, value: V): void {
    let channels = this.#apps.get(appId);
    if (!channels) this.#apps.set(appId, (channels = new Map<string, V>()));
    const before = channels.size;
    channels.set(channel, value);
    this.#size += channels.size - before;
  }

  delete(appId: string, channel: string): void {
    const channels = this.#apps.get(appId);
    if (!channels?.delete(channel)) return;
    this.#size--;
    if (channels.size === 0) this.#apps.delete(appId);
  }

  /** Every channel of one app. */
  forEachOf(appId: string, visit: (channel: string, value: V) => void): void {
    const channels = this.#apps.get(appId);
    if (channels) for (const [channel, value] of channels) visit(channel, value);
  }

  /** Every entry; deleting the current entry while iterating is allowed. */
  *entries(): IterableIterator<[appId: string, channel: string, value: V]> {
    for (const [appId, channels] of this.#apps) {
      for (const [channel, value] of channels) yield [appId, channel, value];
    }
  }
}
