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
  /**
   * The app looked up last and its channels: almost every lookup is for the same app (most
   * servers have one), so this saves one of the two map lookups per publication.
   */
  #lastAppId: string | undefined;
  #lastChannels: Map<string, V> | undefined;

  get size(): number {
    return this.#size;
  }

  get(appId: string, channel: string): V | undefined {
    return this.#channelsOf(appId)?.get(channel);
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
    if (channels.size === 0) {
      this.#apps.delete(appId);
      if (this.#lastChannels === channels) {
        this.#lastAppId = undefined;
        this.#lastChannels = undefined;
      }
    }
  }

  #channelsOf(appId: string): Map<string, V> | undefined {
    if (appId === this.#lastAppId) return this.#lastChannels;
    const channels = this.#apps.get(appId);
    // Only a present app is remembered: an absent one may be added later, by set.
    if (channels) {
      this.#lastAppId = appId;
      this.#lastChannels = channels;
    }
    return channels;
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
