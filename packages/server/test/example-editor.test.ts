/**
 * examples/editor in headless Chromium: two windows type into one Yjs document at once and
 * converge, each sees the other's cursor by name; one goes offline, edits, comes back and the
 * edits merge; after both windows close, a third gets the document from the server alone.
 * Screenshots: test-results/example-editor-*.png.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type AppPage, exampleSuite, screenshot, statusIs, waitFor } from './example-pages.ts';

/** The shared document's text as the page's Y.Doc holds it. */
function docText(page: Page): Promise<string> {
  return page.evaluate<string>('window.collab.text.toString()');
}

/** What the editor shows: CodeMirror's own document (the page's text also holds cursor labels). */
function shown(page: Page): Promise<string> {
  return page.evaluate<string>('window.collab.view.state.doc.toString()');
}

const sorted = (text: string): string => [...text].sort().join('');

describe('examples/editor in headless Chromium', { timeout: 60_000 }, () => {
  const suite = exampleSuite();

  async function open(room: string): Promise<AppPage> {
    const app = await suite.open(`/examples/editor/#${room}`);
    await app.page.locator('[data-testid="editor"][data-synced="true"]').waitFor();
    return app;
  }

  it('two windows type at once, see each other\'s cursors, merge offline edits, and a late joiner gets the document', { timeout: 45_000 }, async () => {
    const room = `test-${Date.now().toString(36)}`;
    const a = await open(room);
    const b = await open(room);
    await a.page.getByTestId('name').fill('Alice');
    await a.page.getByTestId('name').press('Enter');

    // Both type at the same time, keystroke by keystroke.
    await a.page.locator('.cm-content').click();
    await b.page.locator('.cm-content').click();
    const fromA = 'Alice types here. ';
    const fromB = 'Bob types there. ';
    await Promise.all([a.page.keyboard.type(fromA, { delay: 15 }), b.page.keyboard.type(fromB, { delay: 15 })]);
    const together = await waitFor('both windows converge', async () => {
      const [ta, tb] = await Promise.all([docText(a.page), docText(b.page)]);
      return ta === tb && ta.length === fromA.length + fromB.length ? ta : undefined;
    });
    assert.equal(sorted(together), sorted(fromA + fromB), 'every keystroke of both is in the document');
    assert.equal(await shown(a.page), together);
    assert.equal(await shown(b.page), together);

    // B sees A's cursor, labelled with A's name (y-codemirror.next draws it from awareness).
    await waitFor('A\'s named cursor in B', async () => (await b.page.locator('.cm-ySelectionInfo', { hasText: 'Alice' }).count()) === 1);
    await screenshot(b.page, 'example-editor-B-with-A-cursor');

    // A goes offline and edits; B edits meanwhile; A comes back: both edits are merged.
    await a.page.getByTestId('offline').click();
    await statusIs(a.page, 'offline');
    await a.page.locator('.cm-content').click();
    await a.page.keyboard.press('Control+End');
    await a.page.keyboard.type('[written offline]');
    await b.page.keyboard.press('Control+Home');
    await b.page.keyboard.type('[B meanwhile]');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(!(await docText(b.page)).includes('[written offline]'), 'an offline edit stays local');
    await a.page.getByTestId('offline').click();
    await statusIs(a.page, 'live');
    const merged = await waitFor('the offline edit merges', async () => {
      const [ta, tb] = await Promise.all([docText(a.page), docText(b.page)]);
      return ta === tb && ta.includes('[written offline]') && ta.includes('[B meanwhile]') ? ta : undefined;
    });
    await screenshot(a.page, 'example-editor-A-merged');

    // Both windows close; a late joiner gets the whole document from the server.
    await a.context.close();
    await b.context.close();
    const c = await open(room);
    await waitFor('the late joiner shows the document', async () => (await shown(c.page)) === merged);
    await screenshot(c.page, 'example-editor-C-late-joiner');
    for (const app of [a, b, c]) assert.deepEqual(app.problems, []);
  });
});
