/**
 * examples/whiteboard in headless Chromium: two windows draw on one board with the mouse, each
 * sees the other's strokes (compared pixel by pixel) and pointer; a third window opened after
 * the drawing gets all of it from the others. Screenshots: test-results/example-whiteboard-*.png.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type AppPage, exampleSuite, screenshot, waitFor } from './example-pages.ts';

describe('examples/whiteboard in headless Chromium', { timeout: 60_000 }, () => {
  const suite = exampleSuite();

  async function open(board: string): Promise<AppPage> {
    const app = await suite.open(`/examples/whiteboard/#${board}`);
    await app.page.locator('[data-testid="canvas"][data-synced="true"]').waitFor();
    return app;
  }

  it('shares strokes and pointers live, and gives a late joiner the whole drawing', { timeout: 30_000 }, async () => {
    const board = `test-${Date.now().toString(36)}`;
    const a = await open(board);
    const b = await open(board);
    await a.page.getByTestId('name').fill('Alice');
    await a.page.getByTestId('name').press('Enter');

    // A draws a zigzag with the mouse; B sees the same pixels.
    await drag(a.page, [[0.1, 0.2], [0.3, 0.7], [0.5, 0.2], [0.7, 0.7]]);
    await sameDrawing(a.page, b.page, 'A’s stroke in B');

    // A's pointer, not drawing, shows in B with A's name.
    const box = await canvasBox(a.page);
    await a.page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.4, { steps: 4 });
    const cursor = b.page.getByTestId('cursor');
    await waitFor('A’s cursor in B', async () => (await cursor.count()) === 1 && (await cursor.innerText()) === 'Alice');
    await waitFor('A’s cursor where A points', async () => {
      // style="…; left: 80%; top: 40%;"
      const style = (await cursor.getAttribute('style')) ?? '';
      const left = Number(/left: ([\d.]+)%/.exec(style)?.[1]);
      const top = Number(/top: ([\d.]+)%/.exec(style)?.[1]);
      return Math.abs(left - 80) < 1.5 && Math.abs(top - 40) < 1.5;
    });

    // B draws in another colour, thicker; A sees it.
    await b.page.locator('.swatch').nth(1).click();
    await b.page.getByTestId('size').selectOption('10');
    await drag(b.page, [[0.2, 0.9], [0.5, 0.5], [0.9, 0.9]]);
    await sameDrawing(b.page, a.page, 'B’s stroke in A');
    await screenshot(a.page, 'example-whiteboard-A');
    await screenshot(b.page, 'example-whiteboard-B');

    // A third window opened now gets everything drawn before it came.
    const c = await open(board);
    await sameDrawing(a.page, c.page, 'the drawing in the late joiner');
    assert.ok((await ink(c.page)) > 2000, 'there is a drawing to see');
    await screenshot(c.page, 'example-whiteboard-C-late-joiner');

    // A drawing far bigger than one message (the server's limit is 64 KiB) reaches a late joiner
    // in parts: 40 long strokes of 400 points each (~110 KB), drawn with synthetic pointer events.
    await a.page.evaluate(`(() => {
      const canvas = document.querySelector('[data-testid="canvas"]');
      const rect = canvas.getBoundingClientRect();
      const fire = (type, fx, fy) => canvas.dispatchEvent(new PointerEvent(type, {
        bubbles: true, button: 0, buttons: type === 'pointerup' ? 0 : 1, pointerId: 1, pointerType: 'mouse', isPrimary: true,
        clientX: rect.left + rect.width * fx, clientY: rect.top + rect.height * fy,
      }));
      for (let stroke = 0; stroke < 40; stroke += 1) {
        fire('pointerdown', 0.05, 0.05 + stroke * 0.022);
        for (let i = 1; i <= 400; i += 1) fire('pointermove', 0.05 + i * 0.00225, 0.05 + stroke * 0.022 + (i % 2) * 0.01);
        fire('pointerup', 0.95, 0.05 + stroke * 0.022);
      }
    })()`);
    await sameDrawing(a.page, b.page, 'the big drawing in B');
    // Snapshots go over the board's channel, so B sees the parts A sends to the newcomer.
    await b.page.evaluate(`(() => {
      window.snapshotParts = [];
      window.chorus.channel('whiteboard-${board}').on('snapshot', (data) => window.snapshotParts.push(data.parts));
    })()`);
    const d = await open(board);
    await sameDrawing(a.page, d.page, 'the big drawing in another late joiner');
    const parts = await b.page.evaluate<number[]>('window.snapshotParts');
    assert.ok(parts.length >= 3 && parts.every((n) => n === parts.length), `the snapshot came in several parts: ${JSON.stringify(parts)}`);
    await screenshot(d.page, 'example-whiteboard-D-big-drawing');

    // Clear is for everyone.
    await c.page.getByTestId('clear').click();
    for (const { page } of [a, b, c, d]) await waitFor('an empty board', async () => (await ink(page)) === 0);

    for (const { problems } of suite.pages) assert.deepEqual(problems, []);
  });
});

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

async function canvasBox(page: Page): Promise<Box> {
  const box = await page.getByTestId('canvas').boundingBox();
  assert.ok(box, 'the canvas is visible');
  return box;
}

/** Presses the mouse at the first point (fractions of the canvas), moves through the others, releases. */
async function drag(page: Page, points: Array<[number, number]>): Promise<void> {
  const box = await canvasBox(page);
  const at = ([fx, fy]: [number, number]): [number, number] => [box.x + box.width * fx, box.y + box.height * fy];
  const [first, ...rest] = points;
  assert.ok(first);
  await page.mouse.move(...at(first));
  await page.mouse.down();
  for (const point of rest) await page.mouse.move(...at(point), { steps: 12 });
  await page.mouse.up();
}

/** The canvas's RGBA pixels. */
async function pixels(page: Page): Promise<Buffer> {
  const base64 = await page.evaluate<string>(`(() => {
    const canvas = document.querySelector('[data-testid="canvas"]');
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let binary = '';
    for (let i = 0; i < data.length; i += 0x8000) binary += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
    return btoa(binary);
  })()`);
  return Buffer.from(base64, 'base64');
}

/** How many pixels have paint on them. */
async function ink(page: Page): Promise<number> {
  const data = await pixels(page);
  let count = 0;
  for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) count += 1;
  return count;
}

/**
 * Waits until `other` has as many pieces as `source` (both idle), then compares the canvases:
 * at most 1% of the painted pixels may differ (anti-aliasing where strokes meet).
 */
async function sameDrawing(source: Page, other: Page, what: string): Promise<void> {
  const count = (page: Page): Promise<string | null> => page.getByTestId('canvas').getAttribute('data-pieces');
  await waitFor(`${what}: as many pieces`, async () => {
    const [expected, actual] = [await count(source), await count(other)];
    return expected !== '0' && expected === actual;
  });
  await waitFor(`${what}: the same pixels`, async () => {
    const [x, y] = [await pixels(source), await pixels(other)];
    let painted = 0;
    let different = 0;
    for (let i = 0; i < x.length; i += 4) {
      const paintedHere = (x[i + 3] ?? 0) > 0 || (y[i + 3] ?? 0) > 0;
      if (!paintedHere) continue;
      painted += 1;
      for (let c = 0; c < 4; c += 1) {
        if (Math.abs((x[i + c] ?? 0) - (y[i + c] ?? 0)) > 64) {
          different += 1;
          break;
        }
      }
    }
    return painted > 1000 && different <= painted * 0.01;
  });
}
