/**
 * The single-file browser build (packages/client/dist/chorus-client.js, made by
 * scripts/build-client.mjs during `npm run build`): as served by the server at /client.js, in
 * headless Chromium with its native WebSocket, and imported in Node with `ws`.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import WebSocket from 'ws';
import type { ChorusServer } from '../../server/src/index.ts';
import type * as ClientSdk from '../src/index.ts';
import { TEST_APP, startTestServer } from './helpers.ts';

const BUNDLE = fileURLToPath(new URL('../dist/chorus-client.js', import.meta.url));
const CHROMIUM_PATH = '/usr/bin/chromium';

let server: ChorusServer;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.close();
});

describe('the bundle file', () => {
  it('is one self-contained ES module: no imports, no Node built-ins, with a source map', async () => {
    const code = await readFile(BUNDLE, 'utf8');
    assert.doesNotMatch(code, /^\s*import\s/m, 'no import statements left');
    assert.doesNotMatch(code, /\brequire\(|node:|\bprocess\.|\bBuffer\./, 'nothing Node-only');
    assert.match(code, /export \{[^}]*createClient/);
    assert.match(code, /sourceMappingURL=chorus-client\.js\.map/);
    const map = JSON.parse(await readFile(`${BUNDLE}.map`, 'utf8')) as { sources: string[]; sourcesContent?: string[] };
    assert.ok(map.sources.some((source) => source.endsWith('src/client.ts')), 'maps to the TypeScript sources');
    assert.equal(map.sourcesContent?.length, map.sources.length, 'with their text, since /src is not served');
  });

  it('works in Node with ws: connect, subscribe, publish, receive', async () => {
    const sdk = (await import(BUNDLE)) as typeof ClientSdk;
    const client = sdk.createClient(`ws://127.0.0.1:${server.port}`, { key: TEST_APP.key, WebSocket });
    try {
      const channel = client.channel('bundle-node');
      const received = new Promise<unknown>((resolve) => channel.on('hello', (data) => resolve(data)));
      await channel.subscribe();
      const ack = await channel.publish('hello', { from: 'bundle' });
      assert.equal(ack.offset, 1);
      assert.deepEqual(await received, { from: 'bundle' });
    } finally {
      client.close();
    }
  });
});

describe('/client.js in headless Chromium', { timeout: 60_000 }, () => {
  let browser: Browser;

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      timeout: 20_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
  });

  it('is served as JavaScript and runs with the native WebSocket: publishes queued before connecting, binary, presence, history', { timeout: 30_000 }, async () => {
    const base = `http://127.0.0.1:${server.port}`;
    const response = await fetch(`${base}/client.js`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /javascript/);

    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.location().url.endsWith('/favicon.ico')) return; // the browser asks for one on its own
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    try {
      await page.goto(`${base}/health`);
      // The function body runs in the browser; it only uses what a page has.
      const result = await page.evaluate(async ({ key, origin }: { key: string; origin: string }) => {
        interface Sdk {
          createClient(url: string, options: { key: string; minDelayMs?: number }): BrowserClient;
        }
        interface BrowserClient {
          state: string;
          channel(name: string): BrowserChannel;
          on(event: string, listener: (...args: unknown[]) => void): void;
          close(): void;
        }
        interface BrowserChannel {
          subscribe(): Promise<unknown>;
          publish(event: string, data: unknown): Promise<{ offset: number }>;
          history(): Promise<{ publications: Array<{ event: string; data: unknown }> }>;
          presence(): Promise<{ members: unknown[] }>;
          on(event: string, listener: (data: unknown, publication: { event: string; binary: boolean }) => void): void;
        }
        const sdk = (await import(`${origin}/client.js`)) as Sdk;
        const publisher = sdk.createClient(origin, { key });
        const states: string[] = [];
        publisher.on('state', (state) => states.push(String(state)));
        // Published while the socket is still CONNECTING: queued, not sent early.
        const early = publisher.channel('browser1').publish('text', 'sent before open');
        const subscriber = sdk.createClient(origin, { key });
        const channel = subscriber.channel('browser1');
        const seen: Array<[string, string, boolean]> = [];
        channel.on('*', (data, publication) => seen.push([publication.event, data instanceof Uint8Array ? `bytes:${Array.from(data).join(',')}` : JSON.stringify(data), publication.binary]));
        await channel.subscribe();
        const earlyAck = await early;
        await publisher.channel('browser1').publish('bytes', new Uint8Array([0, 255, 7]));
        await publisher.channel('browser1').publish('blob', new Blob(['hi']));
        await publisher.channel('browser1').publish('buffer', new Uint8Array([1, 2]).buffer);
        const deadline = Date.now() + 5000;
        while (seen.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        const history = await channel.history();
        const presence = await channel.presence();
        publisher.close();
        subscriber.close();
        return {
          earlyOffset: earlyAck.offset,
          seen,
          historyEvents: history.publications.map((p) => p.event),
          members: presence.members.length,
          states,
          finalState: publisher.state,
        };
      }, { key: TEST_APP.key, origin: base });
      assert.equal(result.earlyOffset, 1);
      assert.deepEqual(result.seen, [
        ['bytes', 'bytes:0,255,7', true],
        ['blob', 'bytes:104,105', true],
        ['buffer', 'bytes:1,2', true],
      ]);
      assert.deepEqual(result.historyEvents, ['text', 'bytes', 'blob', 'buffer']);
      assert.equal(result.members, 0);
      assert.deepEqual(result.states, ['connecting', 'connected', 'closed']);
      assert.deepEqual(problems, [], 'no console errors (e.g. "Still in CONNECTING state")');
    } finally {
      await context.close();
    }
  });
});
