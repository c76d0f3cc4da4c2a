/**
 * Browser-side security in real headless Chromium: a page on a foreign origin cannot open a
 * socket (cross-site WebSocket hijacking), a page on an allowed origin can, and `chorus` over
 * TLS serves its example page and wss:// to the browser.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { ChorusServer } from '../src/index.ts';
import { launchChromium } from './browser.ts';
import { TEST_APP, TestClient, rawUrl, startTestServer } from './helpers.ts';

const WAIT_MS = 5_000;

interface SocketOutcome {
  opened: boolean;
  closeCode: number | null;
}

/** Runs in the page: opens a WebSocket and reports whether it opened and how it closed. */
function tryWebSocket(page: Page, url: string): Promise<SocketOutcome> {
  return page.evaluate(
    (target) =>
      new Promise<SocketOutcome>((resolve) => {
        const socket = new WebSocket(target);
        let opened = false;
        socket.addEventListener('open', () => {
          opened = true;
          socket.close(1000, 'done');
        });
        socket.addEventListener('close', (event) => resolve({ opened, closeCode: event.code }));
      }),
    url,
  );
}

describe('browser security', { timeout: 60_000 }, () => {
  let browser: Browser;
  let pages: Server;
  let pagesPort = 0;
  let chorus: ChorusServer;

  before(async () => {
    browser = await launchChromium();
    // One page server on every loopback address: 127.0.0.1:P and 127.0.0.2:P are two origins.
    pages = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>origin test</title><p>origin test</p>');
    });
    await new Promise<void>((resolve) => pages.listen(0, '0.0.0.0', resolve));
    pagesPort = (pages.address() as AddressInfo).port;
    chorus = await startTestServer({ apps: [{ ...TEST_APP, allowedOrigins: [`http://127.0.0.1:${pagesPort}`] }] });
  });
  after(async () => {
    await browser?.close();
    pages?.close();
    await chorus?.close();
  });

  it('a page on a foreign origin cannot open a socket (raw or v1); an allowed origin can', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      const watcher = await TestClient.open(rawUrl(chorus, 'cswsh'));

      await page.goto(`http://127.0.0.2:${pagesPort}/`);
      assert.deepEqual(await tryWebSocket(page, rawUrl(chorus, 'cswsh')), { opened: false, closeCode: 1006 });
      assert.deepEqual(await tryWebSocket(page, `ws://127.0.0.1:${chorus.port}/v1/connect?key=${TEST_APP.key}`), { opened: false, closeCode: 1006 });

      await page.goto(`http://127.0.0.1:${pagesPort}/`);
      assert.deepEqual(await tryWebSocket(page, rawUrl(chorus, 'cswsh')), { opened: true, closeCode: 1000 });
      assert.deepEqual(await tryWebSocket(page, `ws://127.0.0.1:${chorus.port}/v1/connect?key=${TEST_APP.key}`), { opened: true, closeCode: 1000 });
      watcher.ws.terminate();
    } finally {
      await context.close();
    }
  });

  it('chorus with a certificate serves its page over https:// and wss:// to the browser', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const secure = await startTestServer({ tls: { cert, key } });
    // The certificate is self-signed: this context trusts it the way a user would click through.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      await page.goto(`https://127.0.0.1:${secure.port}/examples/basic/`);
      await page.waitForSelector('body[data-ready]');
      const url = await page.inputValue('[data-testid="url"]');
      assert.match(url, new RegExp(`^wss://127\\.0\\.0\\.1:${secure.port}/v4/`));
      const outcome = await tryWebSocket(page, url);
      assert.deepEqual(outcome, { opened: true, closeCode: 1000 });
    } finally {
      await context.close();
      await secure.close();
    }
  });
});
