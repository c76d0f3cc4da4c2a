/**
 * The Hub knows which local connections are on which channel and fans publications out to them.
 *
 * A publication is encoded once per dialect and the resulting frame is shared by every
 * recipient; nothing is allocated per recipient beyond a slot in its outbound queue.
 */
import type { Connection } from './connection.js';
import type { Publication } from './engine/types.js';

/** Turns a publication into the wire frame a dialect's clients expect. */
export interface PublicationEncoder {
  encode(publication: Publication): Buffer;
}

/** A publication held back for a subscriber that is still catching up from history. */
export interface HeldPublication {
  readonly publication: Publication;
  readonly frame: Buffer;
}

export interface Subscriber {
  readonly connection: Connection;
  /**
   * While set, publications are appended here instead of being sent: the subscription is
   * replaying history and will send these afterwards, skipping what the replay covered.
   */
  held: HeldPublication[] | undefined;
  readonly encoder: PublicationEncoder;
  /** Deliver the connection's own messages back to it. */
  readonly notifySelf: boolean;
  /** Receive presence changes (member joined/left). */
  readonly presenceEvents: boolean;
}

export class Hub {
  /** `${appId}\0${channel}` → subscribers. */
  readonly #channels = new Map<string, Set<Subscriber>>();

  subscribe(appId: string, channel: string, subscriber: Subscriber): void {
    const key = channelKey(appId, channel);
    let subscribers = this.#channels.get(key);
    if (!subscribers) this.#channels.set(key, (subscribers = new Set<Subscriber>()));
    subscribers.add(subscriber);
  }

  unsubscribe(appId: string, channel: string, subscriber: Subscriber): void {
    const key = channelKey(appId, channel);
    const subscribers = this.#channels.get(key);
    if (!subscribers) return;
    subscribers.delete(subscriber);
    if (subscribers.size === 0) this.#channels.delete(key);
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  /** The engine's publication handler. */
  readonly deliver = (publication: Publication): void => {
    const subscribers = this.#channels.get(channelKey(publication.appId, publication.channel));
    if (!subscribers) return;
    const isPresence = publication.kind === 'presence';
    // Almost always one dialect per channel; a tiny cache beats a Map for one or two entries.
    let lastEncoder: PublicationEncoder | undefined;
    let lastFrame: Buffer | undefined;
    for (const subscriber of subscribers) {
      if (isPresence && !subscriber.presenceEvents) continue;
      if (subscriber.connection.id === publication.originId && (isPresence || !subscriber.notifySelf)) continue;
      if (subscriber.encoder !== lastEncoder) {
        lastEncoder = subscriber.encoder;
        lastFrame = lastEncoder.encode(publication);
      }
      if (subscriber.held) subscriber.held.push({ publication, frame: lastFrame as Buffer });
      else subscriber.connection.send(lastFrame as Buffer);
    }
  };
}

function channelKey(appId: string, channel: string): string {
  return `${appId}\0${channel}`;
}
