/**
 * examples/chat in headless Chromium: two (then three) browser contexts in one room, typing and
 * clicking like people would. Nicknames, presence, the typing indicator, history for a late
 * joiner, and a real network cut (through a TCP proxy, see example-pages.ts) during which the
 * other window keeps talking: nothing may be lost or doubled, and the badge must go
 * "reconnecting in Ns" → "live". Screenshots: test-results/example-chat-*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type AppPage, type CuttableProxy, exampleSuite, screenshot, startProxy, statusIs, texts, unexpected, waitFor } from './example-pages.ts';

/** What Chromium logs while a page cannot reach the server. */
const NETWORK_ERRORS = /WebSocket connection to .* failed|ERR_CONNECTION|ERR_EMPTY_RESPONSE|ERR_SOCKET_NOT_CONNECTED|net::ERR/;

describe('examples/chat in headless Chromium', { timeout: 60_000 }, () => {
  const suite = exampleSuite();
  let proxy: CuttableProxy;

  before(async () => {
    proxy = await startProxy(suite.server.port);
  });

  after(() => proxy?.close());

  async function open(url: string, options?: { waitForLive?: boolean }): Promise<AppPage> {
    return suite.open(url, options);
  }

  it('is linked from the index, with the other examples', { timeout: 20_000 }, async () => {
    const index = await open(`${suite.base}/`, { waitForLive: false });
    assert.equal(index.page.url(), `${suite.base}/examples/`);
    const cards = index.page.locator('[data-testid="example-list"] .example');
    const listed = await Promise.all((await cards.all()).map((card) => card.getAttribute('data-example')));
    assert.deepEqual(listed, ['chat', 'notifications', 'whiteboard', 'editor', 'game', 'basic']);
    for (const app of ['chat', 'notifications', 'whiteboard', 'editor', 'game']) {
      await index.page.goto(`${suite.base}/examples/`);
      await index.page.locator(`[data-example="${app}"] a`).click();
      await index.page.waitForURL(`${suite.base}/examples/${app}/`);
      await statusIs(index.page, 'live');
    }
    await index.page.goto(`${suite.base}/examples/`);
    await screenshot(index.page, 'example-index');
    assert.deepEqual(index.problems, []);
  });

  it('chats between windows: nicknames, presence, typing, history, and a reconnect that loses nothing', { timeout: 30_000 }, async () => {
    const room = `test-${Date.now().toString(36)}`;
    // A goes through the proxy, so its network can be cut; B and C connect directly.
    const a = await open(`http://127.0.0.1:${proxy.port}/examples/chat/#${room}`);
    const b = await open(`${suite.base}/examples/chat/#${room}`);
    assert.equal(await a.page.getByTestId('room-title').innerText(), `#${room}`);

    await rename(a.page, 'Alice');
    await rename(b.page, 'Bob');
    await waitFor('each window lists both people', async () => {
      const [inA, inB] = [await texts(a.page, 'member'), await texts(b.page, 'member')];
      return same(inA, ['Alice (you)', 'Bob']) && same(inB, ['Bob (you)', 'Alice']);
    });
    assert.equal(await a.page.getByTestId('online-count').innerText(), '2');

    // Typing shows up in the other window, and goes away with the message.
    await a.page.getByTestId('text').pressSequentially('Hello B', { delay: 20 });
    await waitFor('"Alice is typing…" in B', async () => (await b.page.getByTestId('typing').innerText()) === 'Alice is typing…');
    await a.page.getByTestId('text').pressSequentially('ob!');
    await a.page.getByTestId('text').press('Enter');
    await waitFor('the message in B', async () => same(await confirmed(b.page), ['Hello Bob!']));
    assert.equal(await b.page.getByTestId('typing').innerText(), '', 'the typing indicator ends with the message');
    assert.equal(await b.page.locator('#messages .message-author').first().innerText(), 'Alice');

    await b.page.getByTestId('text').fill('Hi Alice');
    await b.page.getByTestId('send').click();
    await waitFor('both messages in A', async () => same(await confirmed(a.page), ['Hello Bob!', 'Hi Alice']));

    // A late joiner gets the room's recent messages from history, and shows up in presence.
    const c = await open(`${suite.base}/examples/chat/#${room}`);
    await waitFor('the history in C', async () => same(await confirmed(c.page), ['Hello Bob!', 'Hi Alice']));
    await waitFor('C listed in A', async () => (await texts(a.page, 'member')).length === 3);
    await screenshot(c.page, 'example-chat-C');
    await c.context.close();
    await waitFor('C gone from A', async () => (await texts(a.page, 'member')).length === 2);

    // Cut A's network. B keeps talking; A writes too, offline.
    await a.page.evaluate(`(() => {
      const status = document.querySelector('[data-testid="status"]');
      window.statusSeen = [status.dataset.state];
      new MutationObserver(() => window.statusSeen.push(status.dataset.state)).observe(status, { attributes: true, attributeFilter: ['data-state'] });
    })()`);
    proxy.cut();
    // Attempts keep failing while cut off: the badge alternates between the countdown and "Connecting…".
    await waitFor('the reconnect countdown', async () => /^Reconnecting in \d+s$/.test(await a.page.getByTestId('status').innerText()));
    const meanwhile = ['While you were away 1', 'While you were away 2', 'While you were away 3'];
    for (const text of meanwhile) {
      await b.page.getByTestId('text').fill(text);
      await b.page.getByTestId('text').press('Enter');
    }
    await waitFor('B has its messages confirmed', async () => (await confirmed(b.page)).length === 5);
    await a.page.getByTestId('text').fill('Written offline');
    await a.page.getByTestId('text').press('Enter');
    await waitFor('A shows it as queued', async () => (await a.page.locator('#pending .message-time').allInnerTexts()).join() === 'queued');
    await screenshot(a.page, 'example-chat-A-offline');
    proxy.restore();

    // The SDK reconnects on its next attempt (backoff of at most a few seconds).
    await statusIs(a.page, 'live', 12_000);
    const expected = ['Hello Bob!', 'Hi Alice', ...meanwhile, 'Written offline'];
    await waitFor('everything in A, once, in order', async () => same(await confirmed(a.page), expected));
    await waitFor('the offline message in B, once', async () => same(await confirmed(b.page), expected));
    assert.equal(await a.page.locator('#pending [data-testid="message"]').count(), 0, 'nothing left pending');
    assert.equal(await a.page.getByTestId('typing').innerText(), '', 'typing events replayed after the reconnect are old news');
    const seen = await a.page.evaluate<string[]>('window.statusSeen');
    assert.ok(seen.indexOf('reconnecting') < seen.lastIndexOf('live'), `reconnecting, then live: ${seen.join(' → ')}`);
    await waitFor('A told the user it caught up', async () => (await texts(a.page, 'toast')).some((t) => /Back online: 3 missed messages recovered/.test(t)));
    await waitFor('presence is back to two people', async () => same(await texts(b.page, 'member'), ['Bob (you)', 'Alice']));

    // The browser's own offline signal shows as "offline", and "live" again when it is back.
    await a.context.setOffline(true);
    await statusIs(a.page, 'offline');
    assert.equal(await a.page.getByTestId('status').innerText(), 'Offline');
    await a.context.setOffline(false);
    await statusIs(a.page, 'live');

    await screenshot(a.page, 'example-chat-A');
    await screenshot(b.page, 'example-chat-B');
    assert.deepEqual(unexpected(a.problems, NETWORK_ERRORS), []);
    assert.deepEqual(b.problems, []);
    assert.deepEqual(c.problems, []);
  });

  it('switches rooms from the form', { timeout: 20_000 }, async () => {
    const a = await open(`${suite.base}/examples/chat/#lobby-${Date.now().toString(36)}`);
    const b = await open(`${suite.base}/examples/chat/`);
    assert.equal(await b.page.getByTestId('room-title').innerText(), '#general', 'the default room');
    const other = `Side Room ${Date.now().toString(36)}`;
    for (const { page } of [a, b]) {
      await page.getByTestId('room').fill(other);
      await page.getByTestId('room').press('Enter');
    }
    const slug = other.toLowerCase().replace(/ /g, '-');
    await waitFor('both in the new room', async () => (await a.page.getByTestId('room-title').innerText()) === `#${slug}` && (await b.page.getByTestId('room-title').innerText()) === `#${slug}`);
    assert.equal(new URL(a.page.url()).hash, `#${slug}`);
    await waitFor('two people in the new room', async () => (await texts(a.page, 'member')).length === 2);
    await a.page.getByTestId('text').fill('over here');
    await a.page.getByTestId('text').press('Enter');
    await waitFor('the message in B', async () => same(await confirmed(b.page), ['over here']));
    assert.deepEqual([...a.problems, ...b.problems], []);
  });

  it('shows "not authorized" and an error for a key the server does not know', { timeout: 20_000 }, async () => {
    const page = await open(`${suite.base}/examples/chat/?key=no-such-key`, { waitForLive: false });
    await statusIs(page.page, 'unauthorized');
    assert.equal(await page.page.getByTestId('status').innerText(), 'Not authorized');
    await waitFor('an error toast', async () => (await page.page.locator('[data-testid="toast"][data-kind="error"]').allInnerTexts()).some((t) => /Unknown api key/.test(t)));
    await screenshot(page.page, 'example-chat-unauthorized');
    assert.deepEqual(unexpected(page.problems, NETWORK_ERRORS), []);
  });
});

async function rename(page: Page, name: string): Promise<void> {
  await page.getByTestId('nick').fill(name);
  await page.getByTestId('nick').press('Enter');
}

/** Texts of the messages the server confirmed (not the ones still being sent). */
function confirmed(page: Page): Promise<string[]> {
  return page.locator('#messages [data-testid="message-text"]').allInnerTexts();
}

function same(actual: readonly string[], expected: readonly string[]): boolean {
  return JSON.stringify(actual) === JSON.stringify(expected);
}
