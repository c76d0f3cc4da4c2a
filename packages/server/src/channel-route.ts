/**
 * A publishing connection's shortcut to its channel's records on this node: the memory engine's
 * stream and the hub's subscribers. A raw connection publishes to one channel all its life, and
 * with thousands of small channels each publication's map lookups (one for the stream, one for
 * the subscribers) missed the CPU cache: ~1 µs of a chat message's ~30 (`perf`, many channels).
 * Each owner fills its field at the first publication and checks it is still current before
 * using it, since a record can be dropped while a connection holds it.
 */
import type { ChannelStream } from './engine/memory-history.js';
import type { ChannelEntry } from './hub.js';

export class ChannelRoute {
  /** The channel's stream (memory engine); one dropped for idleness is looked up (and so made) again. */
  stream: ChannelStream | undefined = undefined;
  /** The channel's local subscribers (hub); an emptied entry has left the hub and is looked up again. */
  entry: ChannelEntry | undefined = undefined;
}
