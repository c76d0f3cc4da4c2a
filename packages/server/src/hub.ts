/**
 * The Hub knows which local connections are on which channel and fans publications out to them.
 *
 * A publication is encoded once per dialect and the resulting frame is shared by every
 * recipient; within a turn, a channel's frames are collected once in a run that all its
 * subscribers' queues share (see SharedRun), so nothing is allocated per recipient and message.
 */
import { CloseCodes } from '@chorus/protocol';
import { ChannelMap } from './channel-map.js';
import type { ChannelRoute } from './channel-route.js';
import type { Connection } from './connection.js';
import type { Broker, Counts, MessagePublication, Publication } from './engine/types.js';
import type { OutboundScheduler, SharedRun } from './outbound.js';
import type { ActivityFeed } from './admin/activity.js';

/** Turns a publication into the wire frame a dialect's clients expect. */
export interface PublicationEncoder {
  /** NO_FRAME when the dialect shows nothing for it (Pusher: a binary message, a second tab's join). */
  encode(publication: Publication): Buffer;
  /**
   * When the dialect's frame is the message's payload as it is (raw clients get what was sent):
   * that payload. A message with a single recipient is then queued as its payload
   * (Connection.sendPayload) and no frame is built for it alone.
   */
  verbatim?(publication: MessagePublication): Buffer | undefined;
}

/** The encoders' "nothing to send": queued, it would add no bytes; deliverTo skips it. */
export const NO_FRAME: Buffer = Buffer.alloc(0);

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
  /**
   * With notifySelf, own messages this returns false for are still kept from the connection (a v1
   * whisper, `client-*` on a private- or presence- channel, never comes back to its sender).
   */
  readonly echoes?: (publication: MessagePublication) => boolean;
  /** Receive presence changes (member joined/left). */
  readonly presenceEvents: boolean;
  /**
   * Can resume from history (v1). When the node may have missed publications of the channel,
   * such subscribers are disconnected with INSUFFICIENT_STATE so they come back and recover;
   * the others (raw, at-most-once by nature) just go on.
   */
  readonly recoverable: boolean;
}

/**
 * One channel's local subscribers, and the run its frames of this turn share (see SharedRun).
 * An entry leaves the hub when its last subscriber does, and never gets one again (subscribe
 * makes a new entry): so an empty entry is one that has left, which ChannelRoute relies on.
 */
export class ChannelEntry {
  /** By connection id: a connection is subscribed to a channel once. */
  readonly subscribers = new Map<string, Subscriber>();
  /**
   * This turn's runs, one per dialect (almost always just one): every subscriber not in
   * `outside` holds the run of its dialect. Empty when there is no run.
   */
  runs: DialectRun[] = [];
  /**
   * Subscribers served one frame at a time instead: held (replaying), or excluded from the frame
   * that started the runs (its own message). Fixed for the runs' life: subscribing or
   * unsubscribing ends them.
   */
  readonly outside = new Set<Subscriber>();

  /** The runs can take another frame: none was sealed early (by one of its connections). */
  get runsOpen(): boolean {
    return this.runs.length > 0 && this.runs.every(({ run }) => run.open);
  }

  /** Seals the runs: the next frame starts new ones, with every subscriber considered again. */
  endRun(): void {
    if (this.runs.length === 0) return;
    for (const { run } of this.runs) run.seal();
    this.runs = [];
    if (this.outside.size > 0) this.outside.clear();
  }
}

interface DialectRun {
  readonly encoder: PublicationEncoder;
  readonly run: SharedRun;
}

/**
 * Channels with fewer subscribers than this are served one frame per subscriber: a run costs a
 * few allocations per turn, which only pay off once they save a step for many subscribers
 * (a 2-member chat channel was ~12 % slower with runs).
 */
const MIN_SUBSCRIBERS_FOR_RUN = 8;

/**
 * One message publication in this many (a power of two) has its publish→write latency sampled,
 * with at most one sample in flight (one per event-loop turn under load).
 */
const LATENCY_SAMPLE_MASK = 15;

export class Hub {
  readonly #channels = new ChannelMap<ChannelEntry>();
  readonly #scheduler: OutboundScheduler;
  #broker: Pick<Broker, 'attach' | 'detach'> | undefined;
  #counts: Pick<Counts, 'set'> | undefined;
  readonly #activity: ActivityFeed | undefined;
  /** Publication frames handed to subscribers (queued, or held for one catching up), for /metrics. */
  delivered = 0;
  /**
   * Set when metrics are on: called with a sampled publication's accept time (ms since the epoch)
   * right after the turn's writes (see deliver), so it measures publish → socket write.
   */
  onLatencySample: ((acceptedAt: number) => void) | undefined;
  #publications = 0;
  /** The accept time of the sample in flight, or 0. */
  #sampledAt = 0;

  readonly #latencySampled = (): void => {
    const acceptedAt = this.#sampledAt;
    this.#sampledAt = 0;
    this.onLatencySample?.(acceptedAt);
  };

  constructor(scheduler: OutboundScheduler, activity?: ActivityFeed) {
    this.#scheduler = scheduler;
    this.#activity = activity;
  }

  /**
   * The engine's broker, for attaching channels, and its counts, where each channel's number of
   * local subscribers goes (set once the engine exists: it needs `deliver`).
   */
  bind(engine: { broker: Pick<Broker, 'attach' | 'detach'>; counts: Pick<Counts, 'set'> }): void {
    this.#broker = engine.broker;
    this.#counts = engine.counts;
  }

  /**
   * Adds a local subscriber. The returned promise resolves when the node receives the channel's
   * publications (immediately with the memory engine); read history only after it.
   */
  subscribe(appId: string, channel: string, subscriber: Subscriber): Promise<void> {
    let entry = this.#channels.get(appId, channel);
    if (!entry) this.#channels.set(appId, channel, (entry = new ChannelEntry()));
    entry.subscribers.set(subscriber.connection.id, subscriber);
    this.#counts?.set(appId, 'subscriptions', channel, entry.subscribers.size);
    if (this.#activity?.watched(appId)) this.#activity.emit(appId, { type: 'subscribed', connection: subscriber.connection.id, channel });
    // A run's members are fixed when it starts: the channel's next frame starts a new one.
    entry.endRun();
    // Idempotent in the engine: it returns the current attachment (renewed after reconnects).
    return this.#broker?.attach(appId, channel) ?? Promise.resolve();
  }

  unsubscribe(appId: string, channel: string, subscriber: Subscriber): void {
    const entry = this.#channels.get(appId, channel);
    if (entry?.subscribers.get(subscriber.connection.id) !== subscriber) return;
    entry.subscribers.delete(subscriber.connection.id);
    this.#counts?.set(appId, 'subscriptions', channel, entry.subscribers.size);
    if (this.#activity?.watched(appId)) this.#activity.emit(appId, { type: 'unsubscribed', connection: subscriber.connection.id, channel });
    // Its queue may hold the run, which must not grow for it any more.
    entry.endRun();
    if (entry.subscribers.size === 0) {
      this.#channels.delete(appId, channel);
      this.#broker?.detach(appId, channel);
    }
  }

  /** The engine's gap handler: recoverable subscribers reconnect and resume from history. */
  readonly gap = (appId: string, channel: string): void => {
    const entry = this.#channels.get(appId, channel);
    if (!entry) return;
    for (const subscriber of [...entry.subscribers.values()]) {
      if (subscriber.recoverable) subscriber.connection.close(CloseCodes.INSUFFICIENT_STATE);
    }
  };

  /** The channel's subscribers on this node (cluster-wide figures: engine.counts). */
  subscribersOf(appId: string, channel: string): Subscriber[] {
    const entry = this.#channels.get(appId, channel);
    return entry ? [...entry.subscribers.values()] : [];
  }

  /** The app's channels with subscribers on this node, and their subscriptions, without copying anything. */
  countsOf(appId: string): { channels: number; subscriptions: number } {
    const counts = { channels: 0, subscriptions: 0 };
    this.#channels.forEachOf(appId, (_channel, entry) => {
      counts.channels++;
      counts.subscriptions += entry.subscribers.size;
    });
    return counts;
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  /**
   * The engine's publication handler. The first message of a turn on a channel visits every
   * subscriber and puts one shared run in their queues; the turn's later messages are appended
   * to that run once, plus sent one by one to the few subscribers outside it.
   */
  readonly deliver = (publication: Publication, route?: ChannelRoute): void => {
    this.#activity?.publication(publication);
    const entry = this.#entryOf(publication, route);
    if (!entry) return;
    if (publication.kind === 'presence') {
      // Rare, and filtered per subscriber (presenceEvents): one frame each, in order after the run.
      entry.endRun();
      this.delivered += deliverEach(entry.subscribers, publication);
      return;
    }
    // Sampled after the turn's writes: by the next tick this delivery has queued the scheduler's
    // flush (an immediate), and an immediate queued then runs right after it.
    if (this.onLatencySample !== undefined && (this.#publications++ & LATENCY_SAMPLE_MASK) === 0 && this.#sampledAt === 0) {
      this.#sampledAt = publication.ts;
      process.nextTick(setImmediate, this.#latencySampled);
    }
    if (entry.runsOpen) {
      const origin = publication.originId === undefined ? undefined : entry.subscribers.get(publication.originId);
      // The origin skips its own message, so it cannot be holding the run this frame goes to.
      if (!origin || receivesOwn(origin, publication) || entry.outside.has(origin)) {
        const frames = new Frames(publication);
        for (const { encoder, run } of entry.runs) {
          run.append(frames.for(encoder));
          this.delivered += run.holders;
        }
        for (const subscriber of entry.outside) {
          if (!isExcluded(subscriber, publication)) this.delivered += deliverTo(subscriber, publication, frames.for(subscriber.encoder));
        }
        return;
      }
    }
    entry.endRun();
    if (entry.subscribers.size < MIN_SUBSCRIBERS_FOR_RUN) this.delivered += deliverEach(entry.subscribers, publication);
    else this.#startRun(entry, publication);
  };

  /** The channel's entry: the route's while it still has subscribers (see ChannelEntry), else looked up. */
  #entryOf(publication: Publication, route: ChannelRoute | undefined): ChannelEntry | undefined {
    const cached = route?.entry;
    if (cached !== undefined && cached.subscribers.size > 0) return cached;
    const entry = this.#channels.get(publication.appId, publication.channel);
    if (route) route.entry = entry;
    return entry;
  }

  #startRun(entry: ChannelEntry, publication: MessagePublication): void {
    const frames = new Frames(publication);
    // This loop runs once per subscriber: keep the common case (one dialect) to one comparison.
    let lastEncoder: PublicationEncoder | undefined;
    let lastRun: SharedRun | undefined;
    for (const subscriber of entry.subscribers.values()) {
      if (subscriber.held === undefined && !isExcluded(subscriber, publication)) {
        if (subscriber.encoder !== lastEncoder || lastRun === undefined) {
          lastEncoder = subscriber.encoder;
          lastRun = this.#runFor(entry, lastEncoder, frames);
        }
        if (subscriber.connection.attach(lastRun)) continue;
      }
      entry.outside.add(subscriber);
      if (!isExcluded(subscriber, publication)) this.delivered += deliverTo(subscriber, publication, frames.for(subscriber.encoder));
    }
    for (const { run } of entry.runs) this.delivered += run.holders;
  }

  #runFor(entry: ChannelEntry, encoder: PublicationEncoder, frames: Frames): SharedRun {
    for (const dialectRun of entry.runs) if (dialectRun.encoder === encoder) return dialectRun.run;
    const run = this.#scheduler.startRun(frames.for(encoder));
    entry.runs.push({ encoder, run });
    return run;
  }
}

function isExcluded(subscriber: Subscriber, publication: Publication): boolean {
  if (publication.kind === 'presence') return !subscriber.presenceEvents || subscriber.connection.id === publication.originId;
  return subscriber.connection.id === publication.originId && !receivesOwn(subscriber, publication);
}

function receivesOwn(subscriber: Subscriber, publication: MessagePublication): boolean {
  return subscriber.notifySelf && publication.excludeOrigin !== true && (subscriber.echoes === undefined || subscriber.echoes(publication));
}

/** A publication's frame per dialect, each encoded once. Almost always one dialect per channel. */
class Frames {
  readonly publication: Publication;
  #encoder: PublicationEncoder | undefined;
  #frame: Buffer | undefined;

  constructor(publication: Publication) {
    this.publication = publication;
  }

  for(encoder: PublicationEncoder): Buffer {
    if (encoder !== this.#encoder || this.#frame === undefined) {
      this.#encoder = encoder;
      this.#frame = encoder.encode(this.publication);
    }
    return this.#frame;
  }
}

/** The frame to the subscriber (or into its held list) unless it is NO_FRAME; 1 when sent. */
function deliverTo(subscriber: Subscriber, publication: Publication, frame: Buffer): number {
  if (frame === NO_FRAME) return 0;
  if (subscriber.held) subscriber.held.push({ publication, frame });
  else subscriber.connection.send(frame);
  return 1;
}

/**
 * Delivers to each subscriber the publication is for, each dialect's frame encoded once;
 * returns how many got it. The path of small channels, where most messages have one recipient
 * (the other member of a chat, a publisher's only subscriber): the first recipient is held back
 * until a second one shows up, and if none does and its dialect frames the payload verbatim, it
 * gets the payload (Connection.sendPayload) and no frame is built at all.
 */
function deliverEach(subscribers: ReadonlyMap<string, Subscriber>, publication: Publication): number {
  let alone: Subscriber | undefined;
  let frames: Frames | undefined;
  let delivered = 0;
  for (const subscriber of subscribers.values()) {
    if (isExcluded(subscriber, publication)) continue;
    if (alone === undefined && frames === undefined) {
      alone = subscriber;
      continue;
    }
    frames ??= new Frames(publication);
    delivered += deliverTo(subscriber, publication, frames.for(subscriber.encoder));
  }
  if (alone === undefined) return delivered;
  if (frames === undefined && alone.held === undefined && publication.kind === 'message') {
    const payload = alone.encoder.verbatim?.(publication);
    if (payload !== undefined) {
      alone.connection.sendPayload(payload, publication.binary);
      return 1;
    }
  }
  return delivered + deliverTo(alone, publication, (frames ?? new Frames(publication)).for(alone.encoder));
}
