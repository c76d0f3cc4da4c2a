/**
 * The Hub knows which local connections are on which channel and fans publications out to them.
 *
 * A publication is encoded once per dialect and the resulting frame is shared by every
 * recipient; nothing is allocated per recipient beyond a slot in its outbound queue.
 */
import { CloseCodes } from '@chorus/protocol';
import { ChannelMap } from './channel-map.js';
import type { Connection } from './connection.js';
import type { Broker, Publication } from './engine/types.js';

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
  /**
   * Can resume from history (v1). When the node may have missed publications of the channel,
   * such subscribers are disconnected with INSUFFICIENT_STATE so they come back and recover;
   * the others (raw, at-most-once by nature) just go on.
   */
  readonly recoverable: boolean;
}


export class Hub {
  /** (app, channel) → local subscribers. */
  readonly #channels = new ChannelMap<Set<Subscriber>>();
  #broker: Pick<Broker, 'attach' | 'detach'> | undefined;

  /** The engine's broker, for attaching channels (set once the engine exists: it needs `deliver`). */
  bind(broker: Pick<Broker, 'attach' | 'detach'>): void {
    this.#broker = broker;
  }

  /**
   * Adds a local subscriber. The returned promise resolves when the node receives the channel's
   * publications (immediately with the memory engine); read history only after it.
   */
  subscribe(appId: string, channel: string, subscriber: Subscriber): Promise<void> {
    let subscribers = this.#channels.get(appId, channel);
    if (!subscribers) this.#channels.set(appId, channel, (subscribers = new Set<Subscriber>()));
    subscribers.add(subscriber);
    // Idempotent in the engine: it returns the current attachment (renewed after reconnects).
    return this.#broker?.attach(appId, channel) ?? Promise.resolve();
  }

  unsubscribe(appId: string, channel: string, subscriber: Subscriber): void {
    const subscribers = this.#channels.get(appId, channel);
    if (!subscribers) return;
    subscribers.delete(subscriber);
    if (subscribers.size === 0) {
      this.#channels.delete(appId, channel);
      this.#broker?.detach(appId, channel);
    }
  }

  /** The engine's gap handler: recoverable subscribers reconnect and resume from history. */
  readonly gap = (appId: string, channel: string): void => {
    const subscribers = this.#channels.get(appId, channel);
    if (!subscribers) return;
    for (const subscriber of [...subscribers]) {
      if (subscriber.recoverable) subscriber.connection.close(CloseCodes.INSUFFICIENT_STATE);
    }
  };

  get channelCount(): number {
    return this.#channels.size;
  }

  /** The engine's publication handler. */
  readonly deliver = (publication: Publication): void => {
    const subscribers = this.#channels.get(publication.appId, publication.channel);
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
