/**
 * Yjs rooms: Chorus's /yjs/{room} next to the sample y-websocket server (@y/websocket-server),
 * both spoken to with the y-protocols wire format by plain `ws` clients (a Y.Doc per simulated
 * editor would make the load generator the bottleneck: it would apply every update 100 times).
 *
 *   relay    100 editors in one room, 10 of them typing (real Yjs updates, one character each,
 *            pre-generated), as fast as the server relays within a window of updates in flight;
 *            updates/s is the room's throughput, deliveries/s what reached the 90 other editors
 *   memory   500 rooms, each given a document of 2,000 characters typed one by one (with some
 *            deletions) by a connected client: server RSS and heap per loaded document; for
 *            Chorus also per stored document once the rooms are unloaded (connections closed)
 */
import { once } from 'node:events';
import WebSocket from 'ws';
import * as encoding from 'lib0/encoding';
import * as Y from 'yjs';
import { BENCH_APP, BENCH_HOST, SERVER_CPU } from '../lib/config.ts';
import { ServerProcess } from '../lib/process.ts';
import { progress, sleep } from '../lib/report.ts';

export const YJS_PEERS = [
  { id: 'chorus', label: 'Chorus /yjs', script: 'bench/servers/chorus.ts', path: (room: string) => `/yjs/${room}?key=${BENCH_APP.key}` },
  { id: 'y-websocket', label: 'y-websocket sample server', script: 'bench/servers/y-websocket.ts', path: (room: string) => `/${room}` },
] as const;
export type YjsPeer = (typeof YJS_PEERS)[number];

export interface YjsResult {
  readonly server: string;
  readonly editors: number;
  readonly writers: number;
  readonly updatesPerSecond: number;
  readonly deliveriesPerSecond: number;
  readonly documents: number;
  readonly documentBytes: number;
  readonly rssPerLoadedDocument: number;
  readonly heapPerLoadedDocument: number;
  /** Chorus: after the rooms were unloaded (the documents stay, encoded, in the memory store). */
  readonly rssPerStoredDocument: number | undefined;
  readonly heapPerStoredDocument: number | undefined;
}

export interface YjsOptions {
  readonly editors: number;
  readonly writers: number;
  readonly window: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly documents: number;
}

const SYNC = 0;
const SYNC_UPDATE = 2;

function syncUpdate(update: Uint8Array): Buffer {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, SYNC);
  encoding.writeVarUint(encoder, SYNC_UPDATE);
  encoding.writeVarUint8Array(encoder, update);
  return Buffer.from(encoding.toUint8Array(encoder));
}

/** One writer's keystrokes: a character appended per update, as an editor sends them. */
function keystrokes(clientId: number, count: number): Buffer[] {
  const doc = new Y.Doc();
  doc.clientID = clientId;
  const frames: Buffer[] = [];
  doc.on('update', (update: Uint8Array) => frames.push(syncUpdate(update)));
  const text = doc.getText('text');
  for (let i = 0; i < count; i++) text.insert(text.length, String.fromCharCode(97 + (i % 26)));
  return frames;
}

/**
 * A document typed character by character as a person types: at a cursor that jumps somewhere
 * else every 40 characters, with a backspace every 10.
 */
function typedDocument(characters: number): Uint8Array {
  const doc = new Y.Doc();
  const text = doc.getText('text');
  let cursor = 0;
  for (let i = 0; i < characters; i++) {
    if (i % 40 === 0) cursor = Math.floor(Math.random() * (text.length + 1));
    text.insert(cursor++, String.fromCharCode(97 + (i % 26)));
    if (i % 10 === 9) text.delete(--cursor, 1);
  }
  return Y.encodeStateAsUpdate(doc);
}

async function connect(server: ServerProcess, path: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${BENCH_HOST}:${server.port}${path}`, { perMessageDeflate: false });
  await once(ws, 'open');
  return ws;
}

const isUpdate = (data: Buffer): boolean => data[0] === SYNC && data[1] === SYNC_UPDATE;

export async function runYjs(peer: YjsPeer, options: YjsOptions): Promise<YjsResult> {
  const env: Record<string, string> = peer.id === 'chorus' ? { BENCH_CHORUS_YJS_IDLE_MS: '200' } : {};
  const server = await ServerProcess.start({ name: peer.id, script: peer.script, cpu: SERVER_CPU, env });
  try {
    const relay = await measureRelay(server, peer, options);
    const memory = await measureMemory(server, peer, options.documents);
    return { server: peer.id, editors: options.editors, writers: options.writers, ...relay, ...memory };
  } finally {
    await server.stop();
  }
}

async function measureRelay(server: ServerProcess, peer: YjsPeer, options: YjsOptions): Promise<{ updatesPerSecond: number; deliveriesPerSecond: number }> {
  const room = `relay-${Date.now().toString(36)}`;
  const editors = await Promise.all(Array.from({ length: options.editors }, () => connect(server, peer.path(room))));
  const writers = editors.slice(0, options.writers);
  const observer = editors[options.writers] as WebSocket;
  let delivered = 0;
  let observed = 0;
  for (const editor of editors.slice(options.writers)) {
    editor.on('message', (data: Buffer) => {
      if (!isUpdate(data)) return;
      delivered++;
      if (editor === observer) observed++;
    });
  }
  // Enough keystrokes for the whole run at well over any rate seen here.
  const perWriter = Math.ceil((((options.warmupMs + options.durationMs) / 1000) * 60_000) / options.writers);
  const scripts = writers.map((_, i) => keystrokes(1000 + i, perWriter));
  let sent = 0;
  let running = true;
  const pump = (): void => {
    while (running && sent - observed < options.window * options.writers) {
      const writer = sent % options.writers;
      const frame = scripts[writer]?.[Math.floor(sent / options.writers)];
      if (!frame) return;
      writers[writer]?.send(frame);
      sent++;
    }
  };
  observer.on('message', pump);
  pump();
  await sleep(options.warmupMs);
  const start = { delivered, observed, at: performance.now() };
  await sleep(options.durationMs);
  const seconds = (performance.now() - start.at) / 1000;
  const result = { updatesPerSecond: (observed - start.observed) / seconds, deliveriesPerSecond: (delivered - start.delivered) / seconds };
  running = false;
  for (const editor of editors) editor.terminate();
  progress(peer.id, `relay: ${Math.round(result.updatesPerSecond)} updates/s, ${Math.round(result.deliveriesPerSecond)} deliveries/s`);
  return result;
}

async function measureMemory(server: ServerProcess, peer: YjsPeer, documents: number): Promise<Omit<YjsResult, 'server' | 'editors' | 'writers' | 'updatesPerSecond' | 'deliveriesPerSecond'>> {
  await sleep(500); // the relay room unloads (Chorus) or is dropped (y-websocket)
  const before = await server.memory();
  const state = typedDocument(2000);
  const message = syncUpdate(state);
  const stepOne = Buffer.from([SYNC, 0, 1, 0]); // sync step 1 with an empty state vector
  const sockets: WebSocket[] = [];
  for (let i = 0; i < documents; i++) {
    const ws = await connect(server, peer.path(`doc-${i}`));
    ws.send(message);
    // Asks for the document until the reply holds it: the update has been applied.
    await new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer) => {
        if (data[0] !== SYNC || data[1] !== 1) return;
        if (data.length > state.length / 2) resolve();
        else setTimeout(() => ws.send(stepOne), 10);
      });
      ws.send(stepOne);
    });
    sockets.push(ws);
  }
  const loaded = await server.memory();
  let rssPerStoredDocument: number | undefined;
  let heapPerStoredDocument: number | undefined;
  for (const ws of sockets) ws.close();
  if (peer.id === 'chorus') {
    await sleep(1500); // idle unload after 200 ms (BENCH_CHORUS_YJS_IDLE_MS)
    const stored = await server.memory();
    rssPerStoredDocument = (stored.rss - before.rss) / documents;
    heapPerStoredDocument = (stored.heapUsed - before.heapUsed) / documents;
  }
  const result = {
    documents,
    documentBytes: state.length,
    rssPerLoadedDocument: (loaded.rss - before.rss) / documents,
    heapPerLoadedDocument: (loaded.heapUsed - before.heapUsed) / documents,
    rssPerStoredDocument,
    heapPerStoredDocument,
  };
  progress(peer.id, `memory: ${documents} documents of ${state.length} bytes: loaded ${Math.round(result.heapPerLoadedDocument / 1024)} KiB heap each`);
  return result;
}
