/**
 * The basic example page in a real headless Chromium: the seed's `new WebSocket(url)` code
 * against a Chorus server, as a browser (not the `ws` library) speaks it. Needs /usr/bin/chromium,
 * which `npm test`'s pretest (scripts/provision.mjs) installs or asks for; playwright-core never
 * downloads a browser. Screenshots of every page go to test-results/ at the repository root.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import type { ChorusServer } from '../src/index.ts';
import { launchChromium } from './browser.ts';
import { TEST_APP, TestClient, rawUrl, startTestServer, withTimeout } from './helpers.ts';

/** Deadline for every single wait and page action. */
const WAIT_MS = 5_000;
const TEST_TIMEOUT_MS = 30_000;
const RESULTS_DIR = fileURLToPath(new URL('../../../test-results/', import.meta.url));
/** The channel /examples/config.json names (EXAMPLE_CHANNEL in http/router.ts). */
const EXAMPLE_CHANNEL = 'channel_123';

/** What the page's log records about one event (data-* attributes of a log entry). */
interface LogEntry {
  kind: string;
  text: string;
  bytes?: string;
  code?: string;
  reason?: string;
  wasClean?: string;
}

/**
 * The seed snippet: the PieSocket tutorial code, unchanged except for the URL (SEED_URL). The
 * last two statements are run once the socket is open, as a visitor typing them into the
 * console would. With send() straight before close() the notify_self echo does not come back
 * (the server answers the close first), so the test only expects the message at the server.
 */
const SEED_LISTENERS = `
const socket = new WebSocket(SEED_URL);

socket.addEventListener('open', (event) => {
  console.log('WebSocket connection established');
});

socket.addEventListener('message', (event) => {
  console.log('Message from server:', event.data);
});

socket.addEventListener('error', (event) => {
  console.error('WebSocket error:', event);
});

socket.addEventListener('close', (event) => {
  if (event.wasClean) {
    console.log(\`Connection closed cleanly, code=\${event.code} reason=\${event.reason}\`);
  } else {
    console.log('Connection abruptly closed');
  }
});
`;
const SEED_SEND_AND_CLOSE = `
socket.send('Hello, server!');
socket.close();
`;

describe('examples/basic in headless Chromium', { timeout: 60_000 }, () => {
  let server: ChorusServer;
  let browser: Browser;
  let baseUrl: string;
  const listeners: TestClient[] = [];

  before(async () => {
    await mkdir(RESULTS_DIR, { recursive: true });
    server = await startTestServer();
    baseUrl = `http://127.0.0.1:${server.port}`;
    // launch() gives the browser a fresh temporary profile of its own and deletes it on close
    // (it refuses a --user-data-dir argument), so no state leaks between runs.
    browser = await launchChromium();
  });

  after(async () => {
    for (const client of listeners) client.ws.terminate();
    await browser?.close().catch(() => undefined);
    await server?.close();
  });

  /** A `ws` client on the example channel, to check what the server itself relays. */
  async function listen(): Promise<TestClient> {
    const client = await TestClient.open(rawUrl(server, EXAMPLE_CHANNEL));
    listeners.push(client);
    return client;
  }

  it('serves an index that links to the basic example', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { page, problems } = await openPage(browser, `${baseUrl}/`);
    try {
      assert.equal(page.url(), `${baseUrl}/examples/`);
      assert.equal(await page.title(), 'Chorus examples');
      await screenshot(page, 'index');
      await page.getByRole('link', { name: 'Basic' }).click();
      await page.waitForURL(`${baseUrl}/examples/basic/`);
      await page.locator('body[data-ready="true"]').waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await page.context().close();
    }
  });

  it('relays text and binary between two pages and closes cleanly', { timeout: TEST_TIMEOUT_MS }, async () => {
    const serverSide = await listen();
    const a = await openBasic(browser, baseUrl);
    const b = await openBasic(browser, baseUrl);
    try {
      const expectedUrl = `ws://127.0.0.1:${server.port}/v4/${EXAMPLE_CHANNEL}?api_key=${TEST_APP.key}&notify_self`;
      assert.equal(await a.page.getByTestId('url').inputValue(), expectedUrl, 'URL pre-filled from /examples/config.json');

      await connect(a.page);
      await connect(b.page);
      for (const { page } of [a, b]) {
        assert.equal(await page.getByTestId('status').getAttribute('data-state'), 'open');
        assert.equal(await page.getByTestId('send').isEnabled(), true);
        assert.equal(await page.getByTestId('connect').isEnabled(), false);
      }

      // Text, typed and sent through the page's form.
      await a.page.getByTestId('message').fill('Hello from A');
      await a.page.getByTestId('send').click();
      const textAtB = await waitForEntries(b.page, 'received', 1);
      const textAtA = await waitForEntries(a.page, 'received', 1); // notify_self
      assert.equal(textAtB[0]?.text, 'Hello from A');
      assert.equal(textAtA[0]?.text, 'Hello from A');
      assert.equal((await entries(a.page, 'sent'))[0]?.text, 'Hello from A');
      await serverSide.until(() => serverSide.received.some((r) => !r.binary && r.text === 'Hello from A'), 'the text at the server');

      // Binary, as an ArrayBuffer and as a Blob, on the page's own socket.
      const arrayBufferBytes = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
      const blobBytes = [...Buffer.from('chorus\u0000\u00e9', 'utf8'), 0xc3, 0x28]; // invalid UTF-8 on purpose
      await a.page.evaluate(
        ({ first, second }) => {
          // The page keeps its current socket in window.socket.
          const { socket } = globalThis as unknown as { socket: WebSocket };
          socket.send(new Uint8Array(first).buffer);
          socket.send(new Blob([new Uint8Array(second)]));
        },
        { first: arrayBufferBytes, second: blobBytes },
      );
      for (const { page } of [b, a]) {
        const received = await waitForEntries(page, 'received', 3, (entry) => entry.bytes !== undefined || !entry.text.startsWith('<binary'));
        assert.deepEqual(
          received.slice(1).map(({ text, bytes }) => ({ text, bytes })),
          [
            { text: `<binary ${arrayBufferBytes.length} bytes>`, bytes: hex(arrayBufferBytes) },
            { text: `<binary ${blobBytes.length} bytes>`, bytes: hex(blobBytes) },
          ],
        );
      }
      await serverSide.until(() => serverSide.received.filter((r) => r.binary).length === 2, 'two binary frames at the server');
      assert.deepEqual(
        serverSide.received.filter((r) => r.binary).map((r) => [...r.data]),
        [arrayBufferBytes, blobBytes],
      );
      await screenshot(a.page, 'basic-two-pages-A');
      await screenshot(b.page, 'basic-two-pages-B');

      // close() without a code: the server echoes an empty close frame, which browsers report as 1005.
      await a.page.getByTestId('close').click();
      const [closeA] = await waitForEntries(a.page, 'close', 1);
      assert.deepEqual(pickClose(closeA), { code: '1005', reason: '', wasClean: 'true', text: 'Connection closed cleanly, code=1005 reason=' });
      assert.equal(await a.page.getByTestId('status').getAttribute('data-state'), 'closed');
      assert.equal(await a.page.getByTestId('connect').isEnabled(), true);

      // close(1000, 'done'): the server echoes the code and reason back in its close frame.
      await b.page.getByTestId('close-code').fill('1000');
      await b.page.getByTestId('close-reason').fill('done');
      await b.page.getByTestId('close').click();
      const [closeB] = await waitForEntries(b.page, 'close', 1);
      assert.deepEqual(pickClose(closeB), { code: '1000', reason: 'done', wasClean: 'true', text: 'Connection closed cleanly, code=1000 reason=done' });

      for (const page of [a, b]) {
        assert.equal(await page.page.getByTestId('error').isHidden(), true, 'no error shown');
        assert.deepEqual(page.problems, []);
      }
      await screenshot(a.page, 'basic-closed-A');
      await screenshot(b.page, 'basic-closed-B');
      await waitForConnections(baseUrl, 1); // only the ws listener is left
    } finally {
      await a.page.context().close();
      await b.page.context().close();
    }
  });

  it('shows the server error for a bad api key, then a clean 4001 close', { timeout: TEST_TIMEOUT_MS }, async () => {
    const c = await openBasic(browser, baseUrl);
    try {
      await c.page.getByTestId('url').fill(`ws://127.0.0.1:${server.port}/v4/${EXAMPLE_CHANNEL}?api_key=no-such-key&notify_self`);
      await c.page.getByTestId('connect').click();
      const [close] = await waitForEntries(c.page, 'close', 1);
      assert.deepEqual(pickClose(close), {
        code: '4001',
        reason: 'Unknown api key',
        wasClean: 'true',
        text: 'Connection closed cleanly, code=4001 reason=Unknown api key',
      });
      const alert = c.page.getByRole('alert');
      assert.equal(await alert.isVisible(), true, 'the error is shown prominently');
      assert.equal(await alert.textContent(), 'Server error: Unknown api key');
      assert.deepEqual(
        (await entries(c.page, 'error')).map((entry) => entry.text),
        ['Server error: Unknown api key'],
      );
      assert.deepEqual(await entries(c.page, 'received'), [], 'the error frame is not shown as an ordinary message');
      assert.ok(c.console.some((line) => line.type === 'error' && line.text === 'Server error: Unknown api key'), 'logged to the console too');
    } finally {
      await screenshot(c.page, 'basic-bad-api-key');
      await c.page.context().close();
    }
  });

  it('runs the seed snippet unchanged against the server', { timeout: TEST_TIMEOUT_MS }, async () => {
    const serverSide = await listen();
    const { page, console: lines, problems } = await openPage(browser, `${baseUrl}/examples/`);
    try {
      const seedUrl = `ws://127.0.0.1:${server.port}/v4/${EXAMPLE_CHANNEL}?api_key=${TEST_APP.key}&notify_self`;
      await page.addScriptTag({ content: `const SEED_URL = ${JSON.stringify(seedUrl)};\n${SEED_LISTENERS}` });
      await waitForConsole(lines, 'WebSocket connection established');
      await page.addScriptTag({ content: SEED_SEND_AND_CLOSE });
      await waitForConsole(lines, 'Connection closed cleanly, code=1005 reason=');
      await serverSide.until(() => serverSide.received.some((r) => !r.binary && r.text === 'Hello, server!'), "the seed's message at the server");
      assert.ok(!lines.some((line) => line.text === 'Connection abruptly closed'));
      assert.ok(!lines.some((line) => line.type === 'error'), `no console errors: ${JSON.stringify(lines)}`);
      assert.deepEqual(problems, []);
    } finally {
      await page.context().close();
    }
  });
});

/** The little of the DOM `entries` uses (the test build has Node's types, not the DOM's). */
interface PageElement {
  getAttribute(name: string): string | null;
  querySelector(selector: string): { firstChild: { textContent: string | null } | null } | null;
}

interface ConsoleLine {
  type: string;
  text: string;
}

interface OpenedPage {
  page: Page;
  console: ConsoleLine[];
  /** Uncaught page errors and failed requests: none are expected. */
  problems: string[];
}

async function openPage(browser: Browser, url: string): Promise<OpenedPage> {
  const context = await browser.newContext();
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  const opened: OpenedPage = { page, console: [], problems: [] };
  page.on('console', (message) => opened.console.push({ type: message.type(), text: message.text() }));
  page.on('pageerror', (error) => opened.problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => opened.problems.push(`request failed: ${request.url()}`));
  page.on('response', (response) => {
    if (response.status() >= 400) opened.problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  await page.goto(url);
  return opened;
}

/** Opens /examples/basic/ and waits until the URL has been pre-filled. */
async function openBasic(browser: Browser, baseUrl: string): Promise<OpenedPage> {
  const opened = await openPage(browser, `${baseUrl}/examples/basic/`);
  await opened.page.locator('body[data-ready="true"]').waitFor();
  return opened;
}

async function connect(page: Page): Promise<void> {
  await page.getByTestId('connect').click();
  await waitForEntries(page, 'open', 1);
}

async function entries(page: Page, kind: string): Promise<LogEntry[]> {
  return page.locator(`[data-testid="log-entry"][data-kind="${kind}"]`).evaluateAll((elements: PageElement[]) =>
    // No named helper functions in here: tsx would wrap them in a __name() the page lacks.
    elements.map((element) => ({
      kind: element.getAttribute('data-kind') ?? '',
      // The message itself is the first text node; binary frames add a hex preview after it.
      text: element.querySelector('[data-testid="log-text"]')?.firstChild?.textContent ?? '',
      bytes: element.getAttribute('data-bytes') ?? undefined,
      code: element.getAttribute('data-code') ?? undefined,
      reason: element.getAttribute('data-reason') ?? undefined,
      wasClean: element.getAttribute('data-was-clean') ?? undefined,
    })),
  );
}

/** Waits until the log holds at least `count` entries of `kind` that satisfy `ready`. */
async function waitForEntries(page: Page, kind: string, count: number, ready: (entry: LogEntry) => boolean = () => true): Promise<LogEntry[]> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const found = await entries(page, kind);
    if (found.length >= count && found.every(ready)) return found;
    if (Date.now() > deadline) {
      const all = await page.getByTestId('log').innerText();
      throw new Error(`timed out waiting for ${count} "${kind}" log entries; log:\n${all}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function waitForConsole(lines: ConsoleLine[], text: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!lines.some((line) => line.text === text)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for console line "${text}"; got ${JSON.stringify(lines)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Closes from the browser reach the server: /health's connection count drops to `count`. */
async function waitForConnections(baseUrl: string, count: number): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  let last: unknown;
  for (;;) {
    const response = await withTimeout(fetch(`${baseUrl}/health`), WAIT_MS, 'GET /health timed out');
    last = ((await response.json()) as { connections: number }).connections;
    if (last === count) return;
    if (Date.now() > deadline) throw new Error(`server still counts ${String(last)} connections, expected ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function pickClose(entry: LogEntry | undefined): Pick<LogEntry, 'code' | 'reason' | 'wasClean' | 'text'> {
  assert.ok(entry, 'a close entry');
  return { code: entry.code, reason: entry.reason, wasClean: entry.wasClean, text: entry.text };
}

function hex(bytes: number[]): string {
  return bytes.map((byte) => byte.toString(16).padStart(2, '0')).join(' ');
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(RESULTS_DIR, `${name}.png`), fullPage: true, timeout: WAIT_MS }).catch((error: unknown) => {
    console.error(`screenshot ${name} failed:`, error);
  });
}
