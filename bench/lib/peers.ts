/**
 * The servers a benchmark can compare. Each is a script in bench/servers/ that speaks the
 * harness protocol (servers/harness.ts) and relays every message a client sends on a channel
 * to the channel's other connections. All but Socket.IO serve raw channels at
 * `/v4/{channel}?api_key=…`; Socket.IO speaks engine.io/socket.io, which the load generator
 * speaks too (lib/loadgen.ts, dialect `socketio`).
 *
 * To add a peer, add a script and a line here.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BENCH_APP, BENCH_HOST, SERVER_CPU, pusherAppPath, rawChannelPath } from './config.ts';
import type { Dialect, Endpoint } from './loadgen.ts';
import { listSetting, type Settings } from './options.ts';
import { ServerProcess } from './process.ts';

export interface Peer {
  /** Used on the command line (--servers chorus,naive-ws) and in result files. */
  id: string;
  /** Shown in tables. */
  label: string;
  script: string;
  dialect: Dialect;
  /** Program and arguments before the script; undefined: Node with --expose-gc and tsx. */
  command?: readonly string[];
  /** Why the peer cannot run here, if it cannot (a missing binary). */
  unavailable?: () => string | undefined;
  /** Environment of the server process (a variant of another peer's script). */
  env?: Record<string, string>;
  /** Runs only when --servers names it (an A/B variant, not a peer of the published tables). */
  optIn?: boolean;
}

const script = (file: string): string => fileURLToPath(new URL(`../servers/${file}`, import.meta.url));

/** The Bun binary from the `bun` devDependency (its postinstall links the platform package's binary here). */
export const BUN_BINARY = fileURLToPath(new URL('../../node_modules/.bin/bun', import.meta.url));

export const PEERS: readonly Peer[] = [
  { id: 'chorus', label: 'Chorus', script: script('chorus.ts'), dialect: 'raw' },
  {
    id: 'bun',
    label: 'Bun pub/sub',
    script: script('bun.mjs'),
    dialect: 'raw',
    command: [BUN_BINARY],
    unavailable: () => (existsSync(BUN_BINARY) ? undefined : `no Bun binary at ${BUN_BINARY} (npm install; its postinstall must be allowed)`),
  },
  { id: 'socketio', label: 'Socket.IO', script: script('socketio.ts'), dialect: 'socketio' },
  { id: 'naive-ws', label: 'naive ws', script: script('naive-ws.ts'), dialect: 'raw' },
  { id: 'raw', label: 'raw net ceiling', script: script('raw.ts'), dialect: 'raw' },
  // Chorus with `metrics.enabled: false`, to measure what metrics cost: `chorus` serves /metrics
  // and is scraped every second while it runs (servers/chorus.ts).
  { id: 'chorus-metrics-off', label: 'Chorus, metrics off', script: script('chorus.ts'), dialect: 'raw', env: { BENCH_CHORUS_METRICS: 'off' }, optIn: true },
  // Chorus keeping no history (`history.size: 0`), to measure what history costs: the peers keep
  // none, Chorus keeps the last 100 messages of every channel by default.
  { id: 'chorus-history-off', label: 'Chorus, history off', script: script('chorus.ts'), dialect: 'raw', env: { BENCH_CHORUS_HISTORY_SIZE: '0' }, optIn: true },
];

/** The peers a run has unless --servers says otherwise, and a full run must have. */
export const DEFAULT_PEERS: readonly Peer[] = PEERS.filter((peer) => !peer.optIn);

/** The peer every ratio is relative to. */
export const BASELINE_PEER = 'naive-ws';

export function findPeers(ids: readonly string[]): Peer[] {
  return ids.map((id) => {
    const peer = PEERS.find((candidate) => candidate.id === id);
    if (!peer) throw new Error(`unknown server "${id}"; known: ${PEERS.map((p) => p.id).join(', ')}`);
    return peer;
  });
}

/** The peers `--servers` names; an unknown one is a usage error (message, exit 2). */
export function selectedPeers(settings: Settings): Peer[] {
  try {
    return findPeers(listSetting(settings, 'servers'));
  } catch (error) {
    console.error(`--servers: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  }
}

/** Path and query a client of `peer` connects to for `channel`. */
export function channelPath(peer: Peer, channel: string): string {
  if (peer.dialect === 'socketio') return `/socket.io/?EIO=4&transport=websocket&api_key=${BENCH_APP.key}&channel=${encodeURIComponent(channel)}`;
  return rawChannelPath(channel);
}

/** The endpoint of `channel` on a running `server` of `peer`. */
export function channelEndpoint(peer: Peer, server: ServerProcess, channel: string, localAddress?: string): Endpoint {
  return { host: BENCH_HOST, port: server.port, path: channelPath(peer, channel), dialect: peer.dialect, localAddress };
}

/**
 * A Pusher protocol 7 subscriber of `channel` on a running Chorus (only Chorus speaks it): the
 * same core channel the raw clients of `channelEndpoint(chorus, server, channel)` are on.
 */
export function pusherEndpoint(server: ServerProcess, channel: string): Endpoint {
  return { host: BENCH_HOST, port: server.port, path: pusherAppPath(), dialect: 'pusher', channel };
}

/** Peers whose Node servers run under `--cpu-prof` (set by --profile), and where the profiles go. */
export const profiling: { peers: Set<string>; dir: string } = { peers: new Set(), dir: '' };

/** Starts `peer`'s server in its own process, pinned to the server core. */
export function startPeer(peer: Peer, env?: Record<string, string>): Promise<ServerProcess> {
  const reason = peer.unavailable?.();
  if (reason) return Promise.reject(new Error(reason));
  const command =
    peer.command === undefined && profiling.peers.has(peer.id)
      ? [process.execPath, '--expose-gc', '--cpu-prof', `--cpu-prof-dir=${profiling.dir}`, '--import', 'tsx']
      : peer.command;
  return ServerProcess.start({ name: peer.id, script: peer.script, cpu: SERVER_CPU, command, env: { ...peer.env, ...env } });
}
