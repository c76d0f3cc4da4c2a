/**
 * As a new user would try it: two `chorus serve` processes on one Redis, a browser window on
 * each node's seed page; what one types, the other receives.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './browser.ts';
import { Node } from './cluster.ts';
import { TestRedis } from './redis.ts';

const RESULTS_DIR = fileURLToPath(new URL('../../../test-results/', import.meta.url));
let redis: TestRedis;
let nodes: Node[] = [];
let browser: Browser;

before(async () => {
  redis = await TestRedis.start();
  nodes = await Promise.all([1, 2].map(() => Node.start(redis.url)));
  browser = await launchChromium();
  await mkdir(RESULTS_DIR, { recursive: true });
});
after(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

async function seedPage(node: Node): Promise<Page> {
  const context = await browser.newContext();
  context.setDefaultTimeout(5_000);
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${node.port}/examples/basic/`);
  await page.locator('body[data-ready="true"]').waitFor();
  await page.getByTestId('connect').click();
  await page.locator('[data-testid="log-entry"][data-kind="open"]').waitFor();
  return page;
}

it('two nodes on Redis are one server to browsers connected to either', { timeout: 60_000 }, async () => {
  const [one, two] = nodes as [Node, Node];
  const a = await seedPage(one);
  const b = await seedPage(two);
  assert.match(await a.getByTestId('url').inputValue(), new RegExp(`:${one.port}/`));
  assert.match(await b.getByTestId('url').inputValue(), new RegExp(`:${two.port}/`));

  await a.getByTestId('message').fill('hello from node one');
  await a.getByTestId('send').click();
  await b.locator('[data-testid="log-entry"][data-kind="received"]', { hasText: 'hello from node one' }).waitFor();
  await b.getByTestId('message').fill('and back from node two');
  await b.getByTestId('send').click();
  await a.locator('[data-testid="log-entry"][data-kind="received"]', { hasText: 'and back from node two' }).waitFor();

  await a.screenshot({ path: `${RESULTS_DIR}cluster-two-nodes-A.png`, fullPage: true });
  await b.screenshot({ path: `${RESULTS_DIR}cluster-two-nodes-B.png`, fullPage: true });
});
