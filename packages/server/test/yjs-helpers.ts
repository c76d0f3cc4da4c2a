/**
 * Yjs test helpers: editors are the real y-websocket WebsocketProvider with a real Y.Doc, over
 * `ws` (Node 20 has no global WebSocket). Every wait has a deadline.
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { TEST_APP, withTimeout } from './helpers.ts';

export interface Editor {
  readonly doc: Y.Doc;
  readonly provider: WebsocketProvider;
  readonly text: Y.Text;
  /** Ends the provider and its document. */
  destroy(): void;
}

export interface EditorOptions {
  readonly token?: string;
  readonly key?: string;
  readonly doc?: Y.Doc;
  /** Connect at once (default) or later with provider.connect(). */
  readonly connect?: boolean;
}

/** A y-websocket editor on `room` at `baseUrl` (`ws://127.0.0.1:port/yjs`). */
export function editor(baseUrl: string, room: string, options: EditorOptions = {}): Editor {
  const doc = options.doc ?? new Y.Doc();
  const params: Record<string, string> = { key: options.key ?? TEST_APP.key };
  if (options.token) params['token'] = options.token;
  const provider = new WebsocketProvider(baseUrl, room, doc, {
    params,
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
    connect: options.connect ?? true,
    maxBackoffTime: 300,
  });
  return {
    doc,
    provider,
    text: doc.getText('text'),
    destroy: () => {
      provider.destroy();
      doc.destroy();
    },
  };
}

/** Resolves once the provider has received the server's sync step 2. */
export async function synced(e: Editor, timeoutMs = 5000): Promise<void> {
  if (e.provider.synced) return;
  await withTimeout(new Promise<void>((resolve) => e.provider.once('sync', (isSynced: boolean) => isSynced && resolve())), timeoutMs, 'provider did not sync');
}

/** Polls until `predicate` holds (state converging over the network). */
export async function eventually(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A channel token for the room, with an `access` claim when given. */
export function roomToken(room: string, access?: string, secret: string = TEST_APP.secret): Promise<string> {
  return new SignJWT(access === undefined ? {} : { access })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(room)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));
}
