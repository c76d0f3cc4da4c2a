/**
 * A node cut off from its engine (Redis) can neither store nor deliver its clients'
 * publications: they would sit there, connected and silent, while the other nodes carry on.
 * Once an outage (EngineState.downSince: a connection closed, or the probe found one silent)
 * has lasted `engine.unavailableCloseMs`, this closes the node's connections with
 * ENGINE_UNAVAILABLE, spread over drainWindowMs like a drain (raw 4505 after an `{"error"}`
 * frame, v1 a `disconnect` push then 4505, Pusher 4101, on which pusher-js reconnects after
 * 1 s), and refuses new upgrades with 503 until Redis is back, so the clients land on a node
 * that can serve them (a balancer that checks GET /ready, which answers 503 meanwhile, stops
 * sending them here). A shorter blip (a Sentinel failover takes a few seconds) closes nobody:
 * publishes are refused with a coded "try again" meanwhile, and v1 subscribers resume from
 * history if pub/sub had to reconnect.
 */
import { CloseCodes } from '@chorus/protocol';
import type { ServerContext } from './context.js';
import { drainConnections } from './drain.js';

/** Default for engine.unavailableCloseMs: longer than a Sentinel failover, short enough that clients do not sit on a dead node. */
export const DEFAULT_UNAVAILABLE_CLOSE_MS = 10_000;
const CHECK_EVERY_MS = 250;

export class EngineOutage {
  readonly #ctx: ServerContext;
  readonly #boundMs: number;
  readonly #timer: NodeJS.Timeout | undefined;
  /** The outage (its downSince) whose connections were closed already: once per outage. */
  #closedFor: number | undefined;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    const { engine } = ctx.config;
    this.#boundMs = engine.type === 'memory' ? 0 : (engine.unavailableCloseMs ?? DEFAULT_UNAVAILABLE_CLOSE_MS);
    if (this.#boundMs > 0) this.#timer = setInterval(() => this.#check(), Math.min(CHECK_EVERY_MS, this.#boundMs)).unref();
  }

  /** True while the engine has been away for longer than engine.unavailableCloseMs. */
  get refusing(): boolean {
    const since = this.#ctx.engineState.downSince;
    return this.#boundMs > 0 && since !== undefined && Date.now() - since >= this.#boundMs;
  }

  /** What a refused upgrade is told. */
  get message(): string {
    return `This node cannot reach its engine (Redis) for more than ${this.#boundMs} ms (engine.unavailableCloseMs); connect to another node or retry later.`;
  }

  #check(): void {
    const { engineState, connections, log, shuttingDown, config } = this.#ctx;
    if (!this.refusing || shuttingDown || this.#closedFor === engineState.downSince) return;
    this.#closedFor = engineState.downSince;
    log.warn({ connections: connections.size, unavailableCloseMs: this.#boundMs, drainWindowMs: config.drainWindowMs }, 'engine unavailable for too long: closing connections so they reconnect elsewhere, refusing new ones until it is back');
    void drainConnections(connections, config.drainWindowMs, CloseCodes.ENGINE_UNAVAILABLE);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
