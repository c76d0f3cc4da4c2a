/**
 * The servers a benchmark can compare. Each is a script in bench/servers/ that speaks the
 * harness protocol (servers/harness.ts) and serves raw channels at `/v4/{channel}?api_key=…`.
 * To add a peer (Socket.IO, Bun…), add a script and a line here.
 */
import { fileURLToPath } from 'node:url';

export interface Peer {
  /** Used on the command line (--servers chorus,naive-ws) and in result files. */
  id: string;
  /** Shown in tables. */
  label: string;
  script: string;
}

const script = (file: string): string => fileURLToPath(new URL(`../servers/${file}`, import.meta.url));

export const PEERS: readonly Peer[] = [
  { id: 'chorus', label: 'Chorus', script: script('chorus.ts') },
  { id: 'naive-ws', label: 'naive ws', script: script('naive-ws.ts') },
];

/** The peer every ratio is relative to. */
export const BASELINE_PEER = 'naive-ws';

export function findPeers(ids: readonly string[]): Peer[] {
  return ids.map((id) => {
    const peer = PEERS.find((candidate) => candidate.id === id);
    if (!peer) throw new Error(`unknown server "${id}"; known: ${PEERS.map((p) => p.id).join(', ')}`);
    return peer;
  });
}
