/**
 * The memory engine's document store: documents live in this process. Without a directory an
 * unloaded room is kept as its encoded state (a few bytes per character typed, far less than a
 * live Y.Doc); with `yjs.directory` each room is a file instead, so a restart keeps documents.
 *
 * A room's file is a log of length-prefixed updates (4-byte big-endian length, then the update),
 * appended as they arrive and rewritten as one compacted state (write a temporary file, then
 * rename it over the log) when the room compacts or unloads. A log cut short by a crash loses
 * only its unfinished last record.
 */
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { DocumentStore, RoomFeed, RoomKey } from './types.js';

const RECORD_HEADER = 4;

const keyOf = ({ appId, room }: RoomKey): string => `${appId}\n${room}`;

export class MemoryDocumentStore implements DocumentStore {
  readonly #directory: string | undefined;
  readonly #log: Logger;
  readonly #feeds = new Map<string, RoomFeed>();
  /** Unloaded rooms' documents, when there is no directory. */
  readonly #unloaded = new Map<string, Uint8Array>();
  /** Per room file, the chain of writes: appends and rewrites happen one at a time, in order. */
  readonly #files = new Map<string, RoomFile>();

  constructor(directory: string | undefined, log: Logger) {
    this.#directory = directory;
    this.#log = log;
  }

  async open(key: RoomKey, feed: RoomFeed): Promise<Uint8Array[]> {
    const id = keyOf(key);
    this.#feeds.set(id, feed);
    if (this.#directory === undefined) {
      const state = this.#unloaded.get(id);
      this.#unloaded.delete(id);
      return state ? [state] : [];
    }
    const file = new RoomFile(roomPath(this.#directory, key));
    this.#files.set(id, file);
    return file.read();
  }

  append(key: RoomKey, update: Uint8Array, originId: string): Promise<void> {
    const id = keyOf(key);
    const file = this.#files.get(id);
    // Without a file the update is applied at once, so a sync step 1 the client sends right
    // after it is answered with the update in; with one, once it is written.
    if (!file) {
      this.#feeds.get(id)?.storedUpdate(update, originId);
      return Promise.resolve();
    }
    return file.append(update).then(() => this.#feeds.get(id)?.storedUpdate(update, originId));
  }

  publishAwareness(): void {
    // One process: there is no other node to tell.
  }

  async compact(key: RoomKey, state: Uint8Array): Promise<void> {
    await this.#files.get(keyOf(key))?.rewrite(state);
  }

  async release(key: RoomKey, state: Uint8Array): Promise<void> {
    const id = keyOf(key);
    this.#feeds.delete(id);
    const file = this.#files.get(id);
    if (!file) {
      this.#unloaded.set(id, state);
      return;
    }
    this.#files.delete(id);
    try {
      await file.rewrite(state);
    } finally {
      await file.close();
    }
  }

  async close(): Promise<void> {
    const files = [...this.#files.values()];
    this.#files.clear();
    await Promise.all(files.map((file) => file.close().catch((error: unknown) => this.#log.error({ err: error }, 'yjs: closing a room file failed'))));
  }
}

/** `{directory}/{appId}/{room}.yjs`: the room name is URI-encoded and suffixed, so it cannot climb out. */
function roomPath(directory: string, { appId, room }: RoomKey): string {
  return join(directory, encodeURIComponent(appId), `${encodeURIComponent(room)}.yjs`);
}

class RoomFile {
  readonly #path: string;
  #handle: Promise<FileHandle> | undefined;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.#path = path;
  }

  async read(): Promise<Uint8Array[]> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const updates: Uint8Array[] = [];
    let pos = 0;
    while (pos + RECORD_HEADER <= bytes.length) {
      const length = bytes.readUInt32BE(pos);
      if (pos + RECORD_HEADER + length > bytes.length) break; // the unfinished last record of a crash
      updates.push(bytes.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + length));
      pos += RECORD_HEADER + length;
    }
    return updates;
  }

  append(update: Uint8Array): Promise<void> {
    return this.#queue(async () => {
      const handle = await this.#open();
      await handle.write(record(update));
    });
  }

  /** Replaces the log with one record: the compacted state. */
  rewrite(state: Uint8Array): Promise<void> {
    return this.#queue(async () => {
      await this.#closeHandle();
      await mkdir(dirname(this.#path), { recursive: true });
      const temporary = `${this.#path}.tmp`;
      const handle = await open(temporary, 'w');
      try {
        await handle.write(record(state));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, this.#path);
    });
  }

  close(): Promise<void> {
    return this.#queue(() => this.#closeHandle());
  }

  #queue(step: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(step);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  #open(): Promise<FileHandle> {
    this.#handle ??= mkdir(dirname(this.#path), { recursive: true }).then(() => open(this.#path, 'a'));
    return this.#handle;
  }

  async #closeHandle(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle) await (await handle).close();
  }
}

function record(update: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER + update.length);
  out.writeUInt32BE(update.length, 0);
  out.set(update, RECORD_HEADER);
  return out;
}
