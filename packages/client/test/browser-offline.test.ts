/**
 * The browser bundle (/client.js, as the server serves it) in real headless Chromium: two pages,
 * in two browser contexts (two users), exchange numbered messages on a channel; page B goes
 * offline while A keeps publishing (and B publishes too, queued), comes back, and has missed
 * nothing: every publication exactly once, in order, the gap recovered from the server's history.
 *
 * What "offline" does in Chromium (156): `context.setOffline(true)` — which is CDP
 * `Network.emulateNetworkConditions {offline: true}` — makes `navigator.onLine` false, fires
 * `offline`, and fails new connections with net::ERR_INTERNET_DISCONNECTED, but it does NOT close
 * an open WebSocket: its frames are held, in both directions, and delivered once the page is back
 * online. So:
 * - the first test does to B's open connection what a dropped network does: B's socket goes
 *   through a TcpProxy that resets it (RST, no close frame) as B goes offline;
 * - the second uses the offline emulation alone: the socket stays open but silent, and the SDK's
 *   ping watchdog (short intervals here) gives up on it and reconnects.
 * Screenshots of both pages go to test-results/ at the repository root.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { ChorusServer } from '../../server/src/index.ts';
import { launchChromium } from '../../server/test/browser.ts';
import { TcpProxy, TEST_APP, startTestServer, withTimeout } from './helpers.ts';

/** Deadline for every single wait and page action. */
const WAIT_MS = 5_000;
/** Deadline for the page to notice it is cut off, and for it to catch up once back online. */
const RECOVER_MS = 10_000;
const TEST_TIMEOUT_MS = 45_000;
const RESULTS_DIR = fileURLToPath(new URL('../../../test-results/', import.meta.url));
/** Publications of each phase. */
const A_BEFORE = 10;
const A_OFFLINE = 30;
const B_BEFORE = 2;
const B_OFFLINE = 3;

/** What the test page exposes as `window.chorusTest` (see pageHtml). */
interface PageApi {
  readonly received: Array<{ event: string; data: unknown; offset: number }>;
  readonly events: PageEvent[];
  readonly subscribed: Array<{ offset: number; recovered?: boolean; replayed?: number; resubscribed: boolean }>;
  readonly recoveryFailed: unknown[];
  readonly errors: string[];
  state(): string;
  publish(event: string, data: unknown): Promise<number>;
  /** Publishes without waiting (the page may be offline); `queued()` settles them. */
  publishQueued(event: string, data: unknown): void;
  queued(): Promise<number[]>;
}

interface PageEvent {
  name: string;
  detail: string;
  /** ms since the page started. */
  at: number;
  /** navigator.onLine when it happened. */
  online: boolean;
}

type TestWindow = typeof globalThis & { chorusTest: PageApi };

interface Snapshot {
  received: PageApi['received'];
  events: PageEvent[];
  subscribed: PageApi['subscribed'];
  recoveryFailed: unknown[];
  errors: string[];
  state: string;
  /** The page's own list of connection events, as shown. */
  shownEvents: string[];
  shownState: string | undefined;
}

interface OpenedPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Page errors and console errors other than the expected ones. */
  readonly problems: string[];
  /** Console errors about WebSocket connections that failed (expected only while offline). */
  readonly failedSockets: string[];
}

/**
 * The test page: loads the SDK from the server's /client.js, connects, subscribes to the channel,
 * records every client and channel event, and shows the connection state and its transitions.
 */
function pageHtml(name: string, config: { url: string; channel: string; options: Record<string, unknown> }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Chorus offline test — page ${name}</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 16px; }
  #state { font-weight: bold; padding: 2px 6px; border-radius: 4px; }
  #state[data-state="connected"] { background: #cfc; }
  #state[data-state="connecting"] { background: #ffc; }
  #state[data-state="disconnected"], #state[data-state="closed"] { background: #fcc; }
  ol { font: 12px monospace; }
  #received { columns: 4; }
  .offline { color: #b00; }
</style>
</head>
<body>
<h1>Page ${name}</h1>
<p>SDK connection: <span id="state" data-testid="state" data-state="disconnected">disconnected</span> ·
   navigator.onLine: <span id="online"></span></p>
<h2>Connection events</h2>
<ol id="events" data-testid="events"></ol>
<h2>Received <span id="count">0</span> publications</h2>
<ol id="received" data-testid="received"></ol>
<script type="module">
  import { createClient } from '/client.js';
  const config = ${JSON.stringify(config)};
  const started = performance.now();
  const received = [], events = [], subscribed = [], recoveryFailed = [], errors = [], pending = [];
  const stateEl = document.getElementById('state');
  const onlineEl = document.getElementById('online');
  const showOnline = () => { onlineEl.textContent = String(navigator.onLine); };
  showOnline();
  const record = (name, detail = '') => {
    const event = { name, detail, at: Math.round(performance.now() - started), online: navigator.onLine };
    events.push(event);
    const item = document.createElement('li');
    item.textContent = event.at + ' ms  ' + name + (detail ? ' ' + detail : '') + (event.online ? '' : '  (offline)');
    if (!event.online) item.className = 'offline';
    document.getElementById('events').append(item);
  };
  const client = createClient(config.url, config.options);
  client.on('state', (state, previous) => {
    record('state', previous + ' → ' + state);
    stateEl.textContent = state;
    stateEl.dataset.state = state;
  });
  client.on('connecting', () => record('connecting'));
  client.on('connected', () => record('connected'));
  client.on('disconnected', (e) => record('disconnected', 'code ' + e.code + (e.reason ? ' "' + e.reason + '"' : '') + ' willReconnect ' + e.willReconnect));
  client.on('reconnecting', (e) => record('reconnecting', 'attempt ' + e.attempt + ' in ' + e.delayMs + ' ms'));
  client.on('closed', (e) => record('closed', 'code ' + e.code));
  client.on('error', (error) => errors.push(String(error)));
  addEventListener('online', () => { showOnline(); record('window online'); });
  addEventListener('offline', () => { showOnline(); record('window offline'); });
  const channel = client.channel(config.channel);
  channel.on('*', (data, publication) => {
    received.push({ event: publication.event, data, offset: publication.offset });
    const item = document.createElement('li');
    item.textContent = publication.offset + ': ' + publication.event + ' ' + JSON.stringify(data);
    document.getElementById('received').append(item);
    document.getElementById('count').textContent = String(received.length);
  });
  channel.on('subscribed', (e) => {
    subscribed.push(e);
    record('subscribed', 'offset ' + e.offset + (e.resubscribed ? ' recovered ' + e.recovered + ' replayed ' + e.replayed : ''));
  });
  channel.on('recovery-failed', (e) => { recoveryFailed.push(e); record('recovery-failed'); });
  channel.on('error', (error) => errors.push(String(error)));
  window.chorusTest = {
    received, events, subscribed, recoveryFailed, errors,
    state: () => client.state,
    publish: (event, data) => channel.publish(event, data).then((ack) => ack.offset),
    publishQueued: (event, data) => { pending.push(channel.publish(event, data).then((ack) => ack.offset)); },
    queued: () => Promise.all(pending),
  };
  await channel.subscribe();
  document.body.dataset.ready = 'true';
</script>
</body>
</html>`;
}

describe('/client.js in headless Chromium: a page goes offline, comes back, and has missed nothing', { timeout: 120_000 }, () => {
  let server: ChorusServer;
  let browser: Browser;
  let base: string;
  const proxies: TcpProxy[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    await mkdir(RESULTS_DIR, { recursive: true });
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port}`;
    browser = await launchChromium();
  });
  afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close().catch(() => undefined);
    for (const proxy of proxies.splice(0)) await proxy.close();
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
  });

  /** A page of its own browser context, on the server's origin, connected and subscribed. */
  async function openPage(name: string, channel: string, url: string, options: Record<string, unknown>): Promise<OpenedPage> {
    const context = await browser.newContext();
    contexts.push(context);
    context.setDefaultTimeout(WAIT_MS);
    context.setDefaultNavigationTimeout(WAIT_MS);
    const page = await context.newPage();
    const opened: OpenedPage = { context, page, problems: [], failedSockets: [] };
    page.on('pageerror', (error) => opened.problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() !== 'error' && message.type() !== 'warning') return;
      if (message.location().url.endsWith('/favicon.ico')) return; // the browser asks for one on its own
      if (/^WebSocket connection to .* failed/.test(message.text())) opened.failedSockets.push(message.text());
      else opened.problems.push(`${message.type()}: ${message.text()}`);
    });
    // The page lives on the server's origin (so `/client.js` is the server's) without adding a
    // file to the server: load a page of the server, then replace its content. (A page answered
    // by page.route() instead counts as a public-network document for Chromium, whose Local
    // Network Access checks then block its WebSocket to 127.0.0.1.)
    await page.goto(`${base}/health`);
    await page.setContent(pageHtml(name, { url, channel, options: { key: TEST_APP.key, ...options } }));
    try {
      await page.locator('body[data-ready="true"]').waitFor({ state: 'attached' });
    } catch (error) {
      throw new Error(`page ${name} did not get ready: ${JSON.stringify([...opened.problems, ...opened.failedSockets])}`, { cause: error });
    }
    return opened;
  }

  async function snapshot(page: Page): Promise<Snapshot> {
    const data = await page.evaluate(() => {
      const api = (globalThis as TestWindow).chorusTest;
      return { received: api.received, events: api.events, subscribed: api.subscribed, recoveryFailed: api.recoveryFailed, errors: api.errors, state: api.state() };
    });
    const shownEvents = await page.getByTestId('events').locator('li').allTextContents();
    const shownState = (await page.getByTestId('state').getAttribute('data-state')) ?? undefined;
    return { ...data, shownEvents, shownState };
  }

  function publish(page: Page, event: string, data: number): Promise<number> {
    return withTimeout(page.evaluate(([e, d]) => (globalThis as TestWindow).chorusTest.publish(e, d), [event, data] as const), WAIT_MS, `ack of ${event} ${data}`);
  }

  function waitForReceived(page: Page, count: number, timeout = WAIT_MS): Promise<unknown> {
    return page.waitForFunction((n) => (globalThis as TestWindow).chorusTest.received.length >= n, count, { timeout, polling: 20 });
  }

  /** Waits until the page has recorded `disconnects` disconnected events after its event number `from`. */
  function waitForDisconnects(page: Page, from: number, disconnects: number, timeout: number): Promise<unknown> {
    return page.waitForFunction(
      ([start, n]) => (globalThis as TestWindow).chorusTest.events.slice(start).filter((e) => e.name === 'disconnected').length >= n,
      [from, disconnects] as const,
      { timeout, polling: 20 },
    );
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(RESULTS_DIR, `${name}.png`), fullPage: true, timeout: WAIT_MS }).catch((error: unknown) => {
      console.error(`screenshot ${name} failed:`, error);
    });
  }

  /**
   * The scenario both tests share. `goOffline` makes B offline (and, for the first test, kills its
   * socket); B must then notice (a disconnected event) and fail at least one reconnect while
   * offline, while A publishes A_OFFLINE numbers and B queues B_OFFLINE publishes of its own.
   */
  async function offlineScenario(
    t: TestContext,
    name: string,
    setup: { bUrl: string; bOptions: Record<string, unknown>; goOffline: (b: OpenedPage) => Promise<void>; noticeTimeoutMs: number; screenshots: string },
  ): Promise<{ lateFromOldSocket: number }> {
    const channel = `offline-${name}`;
    const a = await openPage('A', channel, base, { minDelayMs: 100, maxDelayMs: 400 });
    const b = await openPage('B', channel, setup.bUrl, { minDelayMs: 100, maxDelayMs: 400, ...setup.bOptions });

    // Both online: A's numbers and B's reach both pages.
    for (let n = 1; n <= A_BEFORE; n++) assert.equal(await publish(a.page, 'a', n), n, 'A publishes a fresh channel from offset 1');
    for (let n = 1; n <= B_BEFORE; n++) await publish(b.page, 'b', n);
    const online = A_BEFORE + B_BEFORE;
    await Promise.all([waitForReceived(a.page, online), waitForReceived(b.page, online)]);

    // B goes offline. A keeps publishing (acknowledged: the server has them); B publishes too:
    // the SDK queues them until it is connected again (or, while it has not noticed yet, sends
    // them into the dead socket and re-sends them after the reconnect).
    const before = await snapshot(b.page);
    assert.equal(before.state, 'connected');
    const offlineAt = Date.now();
    await setup.goOffline(b);
    for (let n = 1; n <= B_OFFLINE; n++) await b.page.evaluate((d) => (globalThis as TestWindow).chorusTest.publishQueued('b', d), B_BEFORE + n);
    for (let n = A_BEFORE + 1; n <= A_BEFORE + A_OFFLINE; n++) {
      await publish(a.page, 'a', n);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // B noticed, and at least one reconnect failed for being offline.
    await waitForDisconnects(b.page, before.events.length, 2, setup.noticeTimeoutMs);
    const whileOffline = await snapshot(b.page);
    const sinceOffline = whileOffline.events.slice(before.events.length);
    const noticedAfterMs = (sinceOffline.find((e) => e.name === 'disconnected')?.at ?? NaN) - (sinceOffline.find((e) => e.name === 'window offline')?.at ?? NaN);
    assert.equal(whileOffline.received.length, online, 'nothing reaches B while it is offline');
    assert.notEqual(whileOffline.state, 'connected');
    await screenshot(b.page, `${setup.screenshots}-B-offline`);

    // Back online: B reconnects, recovers what it missed, and sends what it queued.
    const offlineMs = Date.now() - offlineAt;
    await b.context.setOffline(false);
    const total = online + A_OFFLINE + B_OFFLINE;
    // If they never come, the assertions below say what is missing.
    await Promise.all([waitForReceived(b.page, total, RECOVER_MS), waitForReceived(a.page, total, RECOVER_MS)]).catch(() => undefined);
    const queuedOffsets = await withTimeout(b.page.evaluate(() => (globalThis as TestWindow).chorusTest.queued()), WAIT_MS, "acks of B's offline publishes");
    await new Promise((resolve) => setTimeout(resolve, 200)); // a duplicate would arrive now
    const [atA, atB] = [await snapshot(a.page), await snapshot(b.page)];
    await screenshot(a.page, `${setup.screenshots}-A`);
    await screenshot(b.page, `${setup.screenshots}-B`);

    // Every publication exactly once, in order, on both pages: offsets 1..total, the same list.
    const offsets = Array.from({ length: total }, (_, i) => i + 1);
    assert.deepEqual(atB.received.map((p) => p.offset), offsets, 'B: every publication exactly once, in order');
    assert.deepEqual(atA.received.map((p) => p.offset), offsets, 'A: every publication exactly once, in order');
    assert.deepEqual(atB.received, atA.received, 'both pages saw the same publications');
    const numbers = (event: string): unknown[] => atB.received.filter((p) => p.event === event).map((p) => p.data);
    assert.deepEqual(numbers('a'), Array.from({ length: A_BEFORE + A_OFFLINE }, (_, i) => i + 1), "B has every one of A's numbers once, in order");
    assert.deepEqual(numbers('b'), Array.from({ length: B_BEFORE + B_OFFLINE }, (_, i) => i + 1), "B's own publishes, the offline ones included, once each");
    assert.deepEqual(queuedOffsets, [total - 2, total - 1, total], "B's offline publishes were acknowledged with the last offsets, in order");

    // The recovery: one resubscribe that replayed what was published while B was away: A's
    // numbers, and those of B's own offline publishes that had gone out on its old socket before
    // the SDK noticed it was dead (Chromium holds them and sends them once back online; the new
    // socket re-sends them with the same msgId and the server acknowledges the first offset).
    assert.deepEqual(atB.recoveryFailed, []);
    assert.deepEqual(atB.errors, []);
    assert.deepEqual(
      atB.subscribed.map(({ resubscribed, recovered }) => ({ resubscribed, recovered })),
      [
        { resubscribed: false, recovered: undefined },
        { resubscribed: true, recovered: true },
      ],
    );
    const replayed = atB.subscribed[1]?.replayed ?? -1;
    const lateFromOldSocket = replayed - A_OFFLINE;
    assert.ok(lateFromOldSocket >= 0 && lateFromOldSocket <= B_OFFLINE, `replayed ${replayed}: A's ${A_OFFLINE}, and at most B's ${B_OFFLINE}`);

    // B's connection went disconnected → reconnecting → (failed attempts while offline) → connected.
    const sinceDrop = atB.events.slice(before.events.length).filter((e) => !e.name.startsWith('window') && e.name !== 'state');
    const sequence = sinceDrop.map((e) => e.name).join(' ');
    assert.match(sequence, /^disconnected reconnecting (connecting disconnected reconnecting )+connecting connected subscribed$/, `B's events after going offline: ${sequence}`);
    const firstDrop = sinceDrop[0];
    assert.match(firstDrop?.detail ?? '', /^code 1006\b.*willReconnect true$/, 'a network drop: 1006, reconnecting');
    assert.equal(firstDrop?.online, false, 'the drop was noticed while navigator.onLine was false');
    // Each failed attempt started while offline. Its failure may be reported just after the page
    // is back online (Chromium fails the attempt, playwright turns the network on, then the close
    // event is dispatched), so the attempt's start is what counts, not its end.
    const failedAttemptStarts = sinceDrop.filter((e, i) => e.name === 'connecting' && sinceDrop[i + 1]?.name === 'disconnected');
    assert.ok(failedAttemptStarts.length >= 1, 'at least one failed attempt');
    assert.ok(
      failedAttemptStarts.every((e) => !e.online),
      `every failed attempt started while navigator.onLine was false: ${JSON.stringify(failedAttemptStarts)}`,
    );
    const states = atB.events.slice(before.events.length).filter((e) => e.name === 'state').map((e) => e.detail);
    assert.equal(states[0], 'connected → disconnected');
    assert.equal(states.at(-1), 'connecting → connected');
    assert.ok(states.includes('connecting → disconnected'), 'a reconnect attempt failed');
    assert.equal(atB.state, 'connected');
    assert.equal(atB.shownState, 'connected', 'the page shows the state');
    assert.equal(atB.shownEvents.length, atB.events.length, 'the page lists every connection event');
    assert.ok(atB.shownEvents.some((text) => /disconnected code 1006/.test(text) && /\(offline\)/.test(text)));

    // A never noticed anything.
    assert.deepEqual(
      atA.events.filter((e) => !e.name.startsWith('window') && e.name !== 'state').map((e) => e.name),
      ['connecting', 'connected', 'subscribed'],
    );
    assert.deepEqual(a.problems, []);
    assert.deepEqual(b.problems, []);
    assert.deepEqual(a.failedSockets, []);
    assert.ok(b.failedSockets.length >= 1 && b.failedSockets.every((text) => /ERR_INTERNET_DISCONNECTED/.test(text)), `B's reconnects failed for being offline: ${JSON.stringify(b.failedSockets)}`);

    const failedAttempts = sinceDrop.filter((e) => e.name === 'disconnected').length - 1;
    t.diagnostic(
      `offline ${name}: B noticed ${noticedAfterMs} ms after going offline (${firstDrop?.detail}), offline ${offlineMs} ms, ${failedAttempts} failed reconnects, ` +
        `replayed ${replayed} (${lateFromOldSocket} of B's offline publishes arrived late through its old socket); B's events: ${sequence}`,
    );
    return { lateFromOldSocket };
  }

  it('offline with its socket killed (TCP reset through a proxy): reconnects once back online and recovers every message', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const proxy = await TcpProxy.start(server.port);
    proxies.push(proxy);
    let acceptedWhenOffline = 0;
    const { lateFromOldSocket } = await offlineScenario(t, 'reset', {
      bUrl: proxy.url,
      bOptions: {},
      noticeTimeoutMs: WAIT_MS,
      screenshots: 'client-offline',
      goOffline: async (b) => {
        await b.context.setOffline(true);
        acceptedWhenOffline = proxy.accepted;
        proxy.cut();
      },
    });
    assert.equal(proxy.accepted, acceptedWhenOffline + 1, 'no connection attempt left the browser while it was offline; one after');
    assert.equal(lateFromOldSocket, 0, 'a reset socket delivers nothing late: the replay is exactly what A published');
  });

  it('offline only (Chromium keeps the socket open but silent): the SDK ping watchdog gives up on it, and nothing is missed', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await offlineScenario(t, 'watchdog', {
      bUrl: base,
      // Notice a silent connection within ~1.5 s instead of the default ~35 s.
      bOptions: { pingIntervalMs: 800, pingMarginMs: 200, pingTimeoutMs: 500 },
      noticeTimeoutMs: RECOVER_MS,
      screenshots: 'client-offline-watchdog',
      goOffline: (b) => b.context.setOffline(true),
    });
  });
});
