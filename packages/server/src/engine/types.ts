/**
 * The engine is where publications and presence live. It is an interface so a single process
 * (memory) and a cluster (Redis, later) share every other line of the server: both hand
 * publications back through the same `onPublication` handler, which the Hub implements, so the
 * single-node path and the clustered path are one delivery path.
 */
import type { Member } from '@chorus/protocol';

interface PublicationBase {
  readonly appId: string;
  readonly channel: string;
  /** Id of the connection that caused it, so the Hub can skip it (notify_self off). */
  readonly originId: string | undefined;
}

/** A message for a channel: relayed bytes, text or binary. */
export interface MessagePublication extends PublicationBase {
  readonly kind: 'message';
  readonly payload: Buffer;
  readonly binary: boolean;
}

/** A presence change, carrying the roster as it stood right after the change. */
export interface PresencePublication extends PublicationBase {
  readonly kind: 'presence';
  readonly action: 'joined' | 'left';
  readonly member: Member;
  readonly members: readonly Member[];
}

export type Publication = MessagePublication | PresencePublication;

export type PublicationHandler = (publication: Publication) => void;

export interface Broker {
  /**
   * Delivers the publication to every node's handler, this one included, in publish order per
   * channel. Resolves once the engine has accepted it.
   */
  publish(publication: Publication): Promise<void>;
}

export interface PresenceStore {
  /** Adds (or replaces) the member for this connection and returns the roster after the change. */
  join(appId: string, channel: string, connectionId: string, member: Member): Promise<Member[]>;
  /** Removes the connection's member, if any, and returns the roster after the change. */
  leave(appId: string, channel: string, connectionId: string): Promise<Member[]>;
  members(appId: string, channel: string): Promise<Member[]>;
}

export interface Engine {
  readonly broker: Broker;
  readonly presence: PresenceStore;
  close(): Promise<void>;
}
