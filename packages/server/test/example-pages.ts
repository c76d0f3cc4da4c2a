/**
 * Helpers for the example-app tests (example-*.test.ts): pages in their own browser contexts
 * with every page error collected, polling waits with deadlines, screenshots in test-results/,
 * and a TCP proxy that can cut a page's network without touching the server.
 *
 * Why a proxy: Chromium's offline emulation (context.setOffline, CDP
 * Network.emulateNetworkConditions) flips navigator.onLine and blocks new requests, but leaves an
 * open WebSocket alone, so it cannot show what a reconnect does. Pages loaded through the proxy
 * make all their connections through it; cut() closes them and refuses new ones until restore().
 */
import { mkdir } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { ChorusServer } from '../src/index.ts';
import { launchChromium } from './browser.ts';
import { startTestServer } from './helpers.ts';

/** Deadline of a single wait or page action. */
export const WAIT_MS = 5_000;
export const RESULTS_DIR = fileURLToPath(new URL('../../../test-results/', import.meta.url));

export interface AppPage {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Uncaught page errors, console errors, failed requests and HTTP errors: none are expected. */
  readonly problems: string[];
}

/** A test server and a Chromium shared by one example's tests; see `exampleSuite`. */
export interface ExampleSuite {
  readonly server: ChorusServer;
  readonly browser: Browser;
  /** http://127.0.0.1:<port> of the server. */
  readonly base: string;
  /** Every page opened with `open`, in order. */
  readonly pages: readonly AppPage[];
  /** `openApp` for `url` (a path is taken relative to `base`); the page is closed after the suite. */
  open(url: string, options?: { waitForLive?: boolean }): Promise<AppPage>;
}

/**
 * Registers before/after hooks in the calling describe(): a server on port 0 and Chromium
 * before the tests, every page, the browser and the server closed after them.
 */
export function exampleSuite(): ExampleSuite {
  let server: ChorusServer | undefined;
  let browser: Browser | undefined;
  const pages: AppPage[] = [];
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is only available inside the suite's tests`);
    return value;
  };
  before(async () => {
    server = await startTestServer();
    browser = await launchChromium();
  });
  after(async () => {
    for (const { context } of pages) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await server?.close();
  });
  return {
    get server() {
      return started(server, 'server');
    },
    get browser() {
      return started(browser, 'browser');
    },
    get base() {
      return `http://127.0.0.1:${started(server, 'server').port}`;
    },
    pages,
    async open(url, options) {
      const app = await openApp(started(browser, 'browser'), url.startsWith('/') ? `${this.base}${url}` : url, options);
      pages.push(app);
      return app;
    },
  };
}

/**
 * Opens `url` in a fresh browser context (its own storage, like another person's browser) and
 * waits for the page's connection badge to say "live".
 */
export async function openApp(browser: Browser, url: string, { waitForLive = true } = {}): Promise<AppPage> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  await page.goto(url);
  if (waitForLive) await statusIs(page, 'live');
  return { page, context, problems };
}

/** Waits until the connection badge's `data-state` is `state`. */
export async function statusIs(page: Page, state: string, timeoutMs = WAIT_MS): Promise<void> {
  await page.locator(`[data-testid="status"][data-state="${state}"]`).waitFor({ timeout: timeoutMs });
}

/** Polls `check` until it returns a value other than undefined/false, or fails with `what` and the last value seen. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The text contents of every element with this data-testid, in document order. */
export function texts(page: Page, testId: string): Promise<string[]> {
  return page.getByTestId(testId).allInnerTexts();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(RESULTS_DIR, { recursive: true });
  await page.screenshot({ path: join(RESULTS_DIR, `${name}.png`), fullPage: true, timeout: WAIT_MS }).catch((error: unknown) => {
    console.error(`screenshot ${name} failed:`, error);
  });
}

/** Problems other than the ones `expected` matches (e.g. WebSocket failures while cut off). */
export function unexpected(problems: readonly string[], expected?: RegExp): string[] {
  return expected ? problems.filter((problem) => !expected.test(problem)) : [...problems];
}

export interface CuttableProxy {
  readonly port: number;
  /** Closes every connection through the proxy and refuses new ones. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/** A TCP proxy to 127.0.0.1:`targetPort` on a free port. */
export async function startProxy(targetPort: number): Promise<CuttableProxy> {
  const sockets = new Set<Socket>();
  let open = true;
  const server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', drop);
      socket.on('close', drop);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  const cutAll = (): void => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    port: address.port,
    cut: () => {
      open = false;
      cutAll();
    },
    restore: () => {
      open = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        cutAll();
        server.close(() => resolve());
      }),
  };
}
