/**
 * examples/notifications in headless Chromium: two windows of alice and one of bob; the test
 * plays the backend and publishes with the REST API, using the very curl line the page shows
 * (with SECRET replaced). Toasts and unread badges must appear in the right windows only.
 * Screenshots: test-results/example-notifications-*.png.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type AppPage, WAIT_MS, exampleSuite, screenshot, texts, waitFor } from './example-pages.ts';
import { TEST_APP, withTimeout } from './helpers.ts';

describe('examples/notifications in headless Chromium', { timeout: 60_000 }, () => {
  const suite = exampleSuite();

  async function open(): Promise<AppPage> {
    return suite.open('/examples/notifications/');
  }

  async function publish(channelId: string, message: unknown): Promise<void> {
    const response = await withTimeout(
      fetch(`${suite.base}/api/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId, message }),
      }),
      WAIT_MS,
      'REST publish timed out',
    );
    assert.equal(response.status, 200, await response.text());
  }

  it('delivers REST publishes as toasts and unread counts to the right windows', { timeout: 30_000 }, async () => {
    const alice1 = await open();
    const alice2 = await open();
    const bob = await open();
    // The user is picked on the page and remembered in the browser.
    await bob.page.getByTestId('user').fill('bob');
    await bob.page.getByTestId('user').press('Enter');
    await waitFor('bob listening', async () => (await bob.page.getByTestId('channel-name').innerText()) === 'notify-bob');
    await bob.page.reload();
    await waitFor('bob remembered after a reload', async () => (await bob.page.getByTestId('channel-name').innerText()) === 'notify-bob');
    await bob.page.locator('[data-testid="status"][data-state="live"]').waitFor();
    for (const { page } of [alice1, alice2]) assert.equal(await page.getByTestId('channel-name').innerText(), 'notify-alice');

    // The page's curl line: the real URL and public key, a SECRET placeholder, never the secret.
    const curl = await alice1.page.getByTestId('curl').innerText();
    assert.match(curl, new RegExp(`^curl -X POST ${suite.base}/api/publish -H 'content-type: application/json' \\\\\\n  -d '`));
    const body = /-d '(.*)'$/s.exec(curl)?.[1];
    assert.ok(body, curl);
    const parsed = JSON.parse(body) as { key: string; secret: string; channelId: string; message: unknown };
    assert.equal(parsed.key, TEST_APP.key);
    assert.equal(parsed.secret, 'SECRET');
    assert.equal(parsed.channelId, 'notify-alice');
    for (const { page } of [alice1, alice2, bob]) assert.ok(!(await page.content()).includes(TEST_APP.secret), 'the secret is not on the page');

    // Run the curl line's request, SECRET replaced: both of alice's windows get it, bob's not.
    await publish(parsed.channelId, parsed.message);
    for (const { page } of [alice1, alice2]) {
      await waitFor('the toast', async () => (await texts(page, 'toast')).some((t) => t.includes('Order shipped') && t.includes('Your order #1234 is on its way.')));
      await waitFor('an unread badge of 1', async () => (await unread(page)) === '1');
    }
    assert.equal(await alice1.page.title(), '(1) Notifications — Chorus examples');

    // Plain text works too.
    await publish('notify-bob', 'Your build passed');
    await waitFor('bob’s toast', async () => (await texts(bob.page, 'toast')).some((t) => t.includes('Your build passed')));
    await waitFor('bob’s badge', async () => (await unread(bob.page)) === '1');

    await publish('notify-alice', { event: 'notification', data: { title: 'New follower', body: 'Carol follows you.' } });
    for (const { page } of [alice1, alice2]) await waitFor('an unread badge of 2', async () => (await unread(page)) === '2');
    assert.deepEqual(await inbox(alice2.page), ['New follower', 'Order shipped'], 'newest first');
    assert.equal(await unread(bob.page), '1', 'alice’s notifications do not reach bob');
    await screenshot(alice1.page, 'example-notifications-alice-1');
    await screenshot(bob.page, 'example-notifications-bob');

    // Marking read is per window.
    await alice1.page.getByTestId('bell').click();
    assert.equal(await unread(alice1.page), undefined);
    assert.equal(await alice1.page.title(), 'Notifications — Chorus examples');
    assert.equal(await alice1.page.locator('.inbox-item.is-unread').count(), 0);
    assert.equal(await unread(alice2.page), '2');
    await screenshot(alice2.page, 'example-notifications-alice-2');

    // A window opened later lists what the server still keeps, without toasting it again.
    const alice3 = await open();
    await waitFor('the recent notifications in a new window', async () => JSON.stringify(await inbox(alice3.page)) === JSON.stringify(['New follower', 'Order shipped']));
    assert.equal(await unread(alice3.page), undefined);
    assert.equal(await alice3.page.getByTestId('toast').count(), 0);
    await screenshot(alice3.page, 'example-notifications-alice-3');

    for (const { problems } of suite.pages) assert.deepEqual(problems, []);
  });
});

/** The unread badge's number, or undefined when it is hidden. */
async function unread(page: Page): Promise<string | undefined> {
  const badge = page.getByTestId('unread');
  return (await badge.isVisible()) ? badge.innerText() : undefined;
}

/** Titles of the inbox entries, top to bottom. */
function inbox(page: Page): Promise<string[]> {
  return page.locator('[data-testid="inbox-item"] strong').allInnerTexts();
}
