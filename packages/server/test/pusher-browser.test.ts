/**
 * One core, three dialects, in headless Chromium: pusher-js's browser build, a raw PieSocket-style
 * `new WebSocket('/v4/…')` and the v1 SDK (`/client.js`) on one page, all on the same channel.
 * A trigger from the `pusher` SDK reaches all three; a raw `{"event","data"}` frame and a v1
 * publish reach pusher-js as that event.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from './browser.ts';
import { PUSHER_APP, PusherRig } from './pusher-helpers.ts';

const PUSHER_JS = fileURLToPath(new URL('../../../node_modules/pusher-js/dist/web/pusher.min.js', import.meta.url));
const CHANNEL = 'one-core';

let rig: PusherRig;
let browser: Browser;
let context: BrowserContext | undefined;
before(async () => {
  rig = await PusherRig.start();
  browser = await launchChromium();
});
after(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close();
  await rig?.close();
});

interface Seen {
  event: string;
  data: unknown;
}

/** What each client on the page received, in order (the page fills window.seen). */
interface PageSeen {
  pusher: Seen[];
  raw: string[];
  v1: Seen[];
  ready: string[];
}

function pageHtml(port: number, pusherJs: string): string {
  const config = JSON.stringify({ key: PUSHER_APP.key, port, channel: CHANNEL });
  return `<!doctype html><html><head><meta charset="utf-8"><title>one core</title>
<script>${pusherJs}</script></head><body>
<script type="module">
  import { createClient } from '/client.js';
  const { key, port, channel } = ${config};
  const seen = (window.seen = { pusher: [], raw: [], v1: [], ready: [] });

  const pusher = new Pusher(key, { cluster: 'local', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'] });
  const pusherChannel = pusher.subscribe(channel);
  pusherChannel.bind_global((event, data) => {
    if (event.startsWith('pusher:')) return;
    seen.pusher.push({ event, data });
  });
  pusherChannel.bind('pusher:subscription_succeeded', () => seen.ready.push('pusher'));

  const raw = (window.raw = new WebSocket('ws://127.0.0.1:' + port + '/v4/' + channel + '?api_key=' + key));
  raw.addEventListener('open', () => seen.ready.push('raw'));
  raw.addEventListener('message', (event) => seen.raw.push(event.data));

  const v1 = createClient(location.origin, { key });
  const v1Channel = (window.v1Channel = v1.channel(channel));
  v1Channel.on('*', (data, publication) => seen.v1.push({ event: publication.event, data }));
  v1Channel.subscribe().then(() => seen.ready.push('v1'));
</script></body></html>`;
}

async function seenOn(page: Page): Promise<PageSeen> {
  return page.evaluate(() => (globalThis as unknown as { seen: PageSeen }).seen);
}

async function until(page: Page, what: string, predicate: (seen: PageSeen) => boolean): Promise<PageSeen> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const seen = await seenOn(page);
    if (predicate(seen)) return seen;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the page saw ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

it('pusher-js in Chromium, a raw WebSocket and the v1 SDK on one channel see the same events', { timeout: 30_000 }, async () => {
  const base = `http://127.0.0.1:${rig.port}`;
  context = await browser.newContext();
  context.setDefaultTimeout(5000);
  // The server has no favicon; Chromium asks for one after the navigation below.
  await context.route(`${base}/favicon.ico`, (route) => route.fulfill({ status: 204 }));
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  // The page is written into a document of the server's origin (as an app's page on its own
  // host): Chromium blocks a page that came from nowhere (a routed or about:blank one) from
  // opening sockets to 127.0.0.1 (Local Network Access). /client.js and the sockets are the server's.
  await page.goto(`${base}/client.js`);
  await page.setContent(pageHtml(rig.port, await readFile(PUSHER_JS, 'utf8')));
  await until(page, 'all three subscribed', (s) => s.ready.length === 3).catch((error: unknown) => { throw new Error(`${String(error)}; problems: ${JSON.stringify(problems)}`); });

  // SDK trigger → pusher-js, raw and v1.
  await rig.backend().trigger(CHANNEL, 'e', { n: 1, from: 'sdk' });
  let seen = await until(page, 'the trigger everywhere', (s) => s.pusher.length >= 1 && s.raw.length >= 1 && s.v1.length >= 1);
  assert.deepEqual(seen.pusher[0], { event: 'e', data: { n: 1, from: 'sdk' } });
  assert.deepEqual(JSON.parse(seen.raw[0] ?? ''), { event: 'e', data: { n: 1, from: 'sdk' } });
  assert.deepEqual(seen.v1[0], { event: 'e', data: { n: 1, from: 'sdk' } });

  // A raw PieSocket-style frame → pusher-js as event e.
  await page.evaluate(() => (globalThis as unknown as { raw: { send(text: string): void } }).raw.send(JSON.stringify({ event: 'e', data: { n: 2, from: 'raw' } })));
  seen = await until(page, 'the raw frame at pusher-js', (s) => s.pusher.length >= 2 && s.v1.length >= 2);
  assert.deepEqual(seen.pusher[1], { event: 'e', data: { n: 2, from: 'raw' } });

  // A v1 publish → pusher-js as event e, and raw as the same envelope.
  await page.evaluate(() => (globalThis as unknown as { v1Channel: { publish(e: string, d: unknown): Promise<unknown> } }).v1Channel.publish('e', { n: 3, from: 'v1' }));
  seen = await until(page, 'the v1 publish at pusher-js and raw', (s) => s.pusher.length >= 3 && s.raw.length >= 2);
  assert.deepEqual(seen.pusher[2], { event: 'e', data: { n: 3, from: 'v1' } });
  assert.deepEqual(JSON.parse(seen.raw[1] ?? ''), { event: 'e', data: { n: 3, from: 'v1' } });
  assert.deepEqual(seen.pusher.length, 3, 'nothing else reached pusher-js');
  assert.deepEqual(problems, []);
});
