/**
 * The admin API and dashboard: off without credentials in the config, refused without them in a
 * request, and, with them, live counts, a channel's insides, a user's connections, publishing,
 * disconnecting with a chosen code, and the activity stream the debug console shows. Then the
 * dashboard itself in Chromium, with two browser contexts making traffic (its screenshots go to
 * test-results/screenshots/, git-ignored; docs/screenshots/ has copies from a run).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import PusherServer from 'pusher';
import type { ChorusServer } from '../src/index.ts';
import { launchChromium } from './browser.ts';
import { run } from './cli-helpers.ts';
import { TestRedis } from './redis.ts';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle, wsBase } from './helpers.ts';

const { serverWith, track } = closeAfterwards();
const ADMIN = { user: 'ops', password: 'admin-password-0123456789' };
const BASIC = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;
const SCREENSHOTS = fileURLToPath(new URL('../../../test-results/screenshots/', import.meta.url));

function adminServer(): Promise<ChorusServer> {
  return serverWith({ admin: ADMIN, apps: [{ ...TEST_APP }] });
}

async function call(server: ChorusServer, path: string, init: RequestInit = {}, auth: string | undefined = BASIC): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (auth) headers.set('authorization', auth);
  if (init.body) headers.set('content-type', 'application/json');
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { ...init, headers });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

/** Reads the app's activity stream from `server` until `done` holds (or 5 s). */
async function activityOf(server: ChorusServer, appId: string, act: () => Promise<void>, done: (items: Array<Record<string, unknown>>) => boolean): Promise<Array<Record<string, unknown>>> {
  const controller = new AbortController();
  const res = await fetch(`http://127.0.0.1:${server.port}/admin/api/apps/${appId}/activity`, { headers: { authorization: BASIC }, signal: controller.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const items: Array<Record<string, unknown>> = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.startsWith('data: ')) items.push(JSON.parse(block.slice('data: '.length)) as Record<string, unknown>);
      }
    }
  })().catch(() => undefined);
  await settle(100);
  await act();
  const deadline = Date.now() + 5000;
  while (!done(items) && Date.now() < deadline) await settle(50);
  controller.abort();
  await reading;
  return items;
}

describe('admin API', () => {
  it('is off (404, naming admin.password) without admin credentials in the config', async () => {
    const server = await serverWith();
    for (const path of ['/admin/', '/admin/api/apps']) {
      const { status, body } = await call(server, path);
      assert.equal(status, 404);
      assert.match(String(body['error']), /admin\.password/);
    }
  });

  it('refuses requests without the credentials (401 admin_unauthorized, a Basic challenge); takes Basic and Bearer', async () => {
    const server = await adminServer();
    for (const auth of ['', `Basic ${Buffer.from('ops:wrong-password-000000').toString('base64')}`, `Basic ${Buffer.from(`admin:${ADMIN.password}`).toString('base64')}`, 'Bearer nope']) {
      const { status, body, headers } = await call(server, '/admin/api/apps', {}, auth);
      assert.equal(status, 401, String(auth));
      assert.equal(body['code'], 'admin_unauthorized');
      assert.match(headers.get('www-authenticate') ?? '', /^Basic realm=/);
    }
    assert.equal((await call(server, '/admin/api/apps')).status, 200);
    assert.equal((await call(server, '/admin/api/apps', {}, `Bearer ${ADMIN.password}`)).status, 200);
    assert.equal((await call(server, '/admin/')).status, 200, 'the dashboard page');
  });

  it('shows apps, channels, a channel\'s subscribers, presence and history, and a user\'s connections', async () => {
    const server = await adminServer();
    track(await TestClient.open(rawUrl(server, 'room', `api_key=${TEST_APP.key}&presence=1&user=ann`)));
    const bob = track(await TestClient.open(rawUrl(server, 'room', `api_key=${TEST_APP.key}&presence=1&user=bob`)));
    track(await TestClient.open(rawUrl(server, 'lobby')));
    bob.ws.send('hello admin');
    await settle(200);

    const { body: apps } = await call(server, '/admin/api/apps');
    assert.deepEqual(apps['apps'], [{ id: TEST_APP.id, key: TEST_APP.key, enabled: true, connectionsOnThisNode: 3, channels: 2, subscriptions: 3, webhooks: 0 }]);
    const { body: listed } = await call(server, '/admin/api/apps/test/channels?prefix=ro');
    assert.deepEqual(listed['channels'], [{ name: 'room', subscriptions: 2 }]);
    const { body: room } = await call(server, '/admin/api/apps/test/channels/room');
    assert.equal(room['subscriptions'], 2);
    assert.deepEqual((room['presence'] as Array<{ user: string }>).map((m) => m.user).sort(), ['ann', 'bob']);
    const history = room['history'] as { publications: Array<{ preview: string; offset: number }> };
    assert.deepEqual(history.publications.map((p) => p.preview), ['hello admin']);

    const { status: missing } = await call(server, '/admin/api/apps/nope/channels');
    assert.equal(missing, 404);
  });

  it('publishes a test event to every dialect, and disconnects a connection and a signed-in user with the chosen code', async () => {
    const server = await adminServer();
    const listener = track(await TestClient.open(rawUrl(server, 'news')));
    const sent = await call(server, '/admin/api/apps/test/publish', { method: 'POST', body: JSON.stringify({ channel: 'news', event: 'headline', data: { title: 'hi' } }) });
    assert.equal(sent.status, 200);
    await listener.until(() => listener.received.length === 1, 'the published event');
    assert.deepEqual(JSON.parse(listener.received[0]?.text ?? ''), { event: 'headline', data: { title: 'hi' } });
    const bad = await call(server, '/admin/api/apps/test/publish', { method: 'POST', body: JSON.stringify({ channel: 'a b' }) });
    assert.equal(bad.status, 400);

    // A raw connection by id: the id shows in the activity stream and the channel's subscribers.
    const { body: news } = await call(server, '/admin/api/apps/test/channels/news');
    const id = (news['subscribersOnThisNode'] as Array<{ connection: string }>)[0]?.connection ?? '';
    const badCode = await call(server, `/admin/api/apps/test/connections/${id}/disconnect`, { method: 'POST', body: JSON.stringify({ code: 3000 }) });
    assert.equal(badCode.status, 400);
    assert.equal((await call(server, `/admin/api/apps/test/connections/${id}/disconnect`, { method: 'POST', body: JSON.stringify({ code: 4321, reason: 'maintenance' }) })).status, 200);
    const closed = await listener.closed();
    assert.deepEqual(closed, { code: 4321, reason: 'maintenance' });

    // A signed-in Pusher user, by user id.
    const pusher = track(await TestClient.open(`${wsBase(server)}/app/${TEST_APP.key}?protocol=7`));
    await pusher.until(() => pusher.events('pusher:connection_established').length === 1, 'established');
    const socketId = (JSON.parse(pusher.events('pusher:connection_established')[0]?.data as string) as { socket_id: string }).socket_id;
    const signer = new PusherServer({ appId: TEST_APP.id, key: TEST_APP.key, secret: TEST_APP.secret, host: '127.0.0.1' });
    const { auth, user_data: userData } = signer.authenticateUser(socketId, { id: 'carol' });
    pusher.ws.send(JSON.stringify({ event: 'pusher:signin', data: { auth, user_data: userData } }));
    await pusher.until(() => pusher.events('pusher:signin_success').length === 1, 'signin');
    const { body: carol } = await call(server, '/admin/api/apps/test/users/carol');
    assert.deepEqual(carol, { user: 'carol', online: true, connections: 1, connectionsOnThisNode: [socketId] });
    await call(server, '/admin/api/apps/test/users/carol/disconnect', { method: 'POST', body: JSON.stringify({ code: 4009 }) });
    assert.equal((await pusher.closed()).code, 4009);
  });

  it('streams the app\'s activity (connections, subscriptions, publications, refusals) as Server-Sent Events', async () => {
    const server = await adminServer();
    const types = (items: Array<Record<string, unknown>>): string[] => items.map((i) => String(i['type']));
    const items = await activityOf(
      server,
      'test',
      async () => {
        const client = track(await TestClient.open(rawUrl(server, 'watched')));
        client.ws.send(`${'x'.repeat(300)}`);
        track(new TestClient(rawUrl(server, 'private-nope')));
      },
      (seen) => types(seen).includes('publication') && types(seen).includes('refused'),
    );
    assert.deepEqual(types(items).slice(0, 3), ['connected', 'subscribed', 'publication']);
    const publication = items.find((i) => i['type'] === 'publication') ?? {};
    assert.equal(publication['channel'], 'watched');
    assert.equal(publication['bytes'], 300);
    assert.equal(String(publication['preview']).length, 201, 'the payload truncated to 200 characters and an ellipsis');
    const refused = items.find((i) => i['type'] === 'refused') ?? {};
    assert.equal(refused['code'], 4003);
  });

  it('on Redis, a console on one node sees what happens on the other, each item naming its node', async () => {
    const redis = await TestRedis.start();
    try {
      const engine = { type: 'redis' as const, url: redis.url };
      const [a, b] = [await serverWith({ admin: ADMIN, apps: [{ ...TEST_APP }], engine }), await serverWith({ admin: ADMIN, apps: [{ ...TEST_APP }], engine })];
      await settle(300); // both connected to Redis
      const items = await activityOf(
        a,
        'test',
        async () => {
          await settle(300); // the watch reached node B
          const client = track(await TestClient.open(rawUrl(b, 'elsewhere')));
          client.ws.send('from node B');
        },
        (seen) => seen.some((i) => i['type'] === 'publication' && i['preview'] === 'from node B'),
      );
      const fromB = items.filter((i) => i['type'] !== 'publication' || i['preview'] === 'from node B');
      assert.deepEqual(fromB.map((i) => i['type']).slice(0, 3), ['connected', 'subscribed', 'publication'], JSON.stringify(items));
      const nodes = new Set(fromB.map((i) => i['node']));
      assert.equal(nodes.size, 1, 'all from one node');
      const { body } = await call(b, '/admin/api/apps/test/channels/elsewhere');
      const bConnection = (body['subscribersOnThisNode'] as Array<{ connection: string }>)[0]?.connection ?? '';
      assert.ok(bConnection.startsWith(`${String([...nodes][0])}.`), `the items name node B (${String([...nodes][0])}), whose connection ids start with its id (${bConnection})`);
    } finally {
      await redis.stop();
    }
  });
});

async function restPublish(server: ChorusServer, key: string, secret: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${server.port}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key, secret, channelId: 'managed', message: 'hi' }) });
  return res.status;
}

async function refusedWith(url: string): Promise<number> {
  const client = track(new TestClient(url));
  return (await client.closed()).code;
}

describe('apps managed without a restart', () => {
  it('adds an app, rotates its secret (the old one is refused at once), disables and enables it; an apps file keeps it across a restart', async () => {
    const appsFile = join(mkdtempSync(join(tmpdir(), 'chorus-apps-')), 'apps.json');
    const config = { admin: ADMIN, apps: [{ ...TEST_APP }], appsFile };
    const server = await serverWith(config);
    const added = await call(server, '/admin/api/apps', { method: 'POST', body: JSON.stringify({ id: 'added' }) });
    assert.equal(added.status, 200);
    const app = added.body['app'] as { id: string; key: string; secret: string; enabled: boolean };
    assert.equal(app.id, 'added');
    assert.ok(app.key.length >= 16 && app.secret.length >= 16 && app.enabled);
    track(await TestClient.open(rawUrl(server, 'managed', `api_key=${app.key}`)));
    assert.equal(await restPublish(server, app.key, app.secret), 200);

    const rotated = (await call(server, '/admin/api/apps/added/rotate-secret', { method: 'POST' })).body['app'] as { secret: string };
    assert.notEqual(rotated.secret, app.secret);
    assert.equal(await restPublish(server, app.key, app.secret), 401, 'the old secret is refused at once');
    assert.equal(await restPublish(server, app.key, rotated.secret), 200);
    const short = await call(server, '/admin/api/apps/added/rotate-secret', { method: 'POST', body: JSON.stringify({ secret: 'short' }) });
    assert.equal(short.status, 400);
    assert.match(String(short.body['error']), /secret is 5 characters; secrets must be at least 16/);

    assert.equal((await call(server, '/admin/api/apps/added/disable', { method: 'POST' })).status, 200);
    assert.equal(await refusedWith(rawUrl(server, 'managed', `api_key=${app.key}`)), 4001, 'raw: a disabled app is refused like an unknown key');
    assert.equal(await refusedWith(`${wsBase(server)}/app/${app.key}?protocol=7`), 4003, 'Pusher: 4003 app disabled');
    assert.equal((await call(server, '/admin/api/apps/added/enable', { method: 'POST' })).status, 200);
    track(await TestClient.open(rawUrl(server, 'managed', `api_key=${app.key}`)));

    for (const [body, pattern] of [[{ id: 'bad id!' }, /app: id must match/], [{ id: 'added' }, /"added" is used by another app/], [{ id: 'other', key: app.key }, /key is used by another app/]] as const) {
      const refused = await call(server, '/admin/api/apps', { method: 'POST', body: JSON.stringify(body) });
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.match(String(refused.body['error']), pattern);
    }

    await server.close();
    const again = await serverWith(config);
    assert.equal(await restPublish(again, app.key, rotated.secret), 200, 'the added app and its rotated secret are back after a restart');
    assert.equal(await restPublish(again, app.key, app.secret), 401);
  });

  it('on Redis, an app added on one node works on the other at once, and a secret rotated there is refused here', async () => {
    const redis = await TestRedis.start();
    try {
      const engine = { type: 'redis' as const, url: redis.url };
      const [a, b] = [await serverWith({ admin: ADMIN, apps: [{ ...TEST_APP }], engine }), await serverWith({ admin: ADMIN, apps: [{ ...TEST_APP }], engine })];
      const app = ((await call(a, '/admin/api/apps', { method: 'POST', body: JSON.stringify({ id: 'shared' }) })).body['app']) as { key: string; secret: string };
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++, await settle(50)) status = await restPublish(b, app.key, app.secret);
      assert.equal(status, 200, 'node B knows the app node A added');
      const rotated = ((await call(b, '/admin/api/apps/shared/rotate-secret', { method: 'POST' })).body['app']) as { secret: string };
      for (let i = 0; i < 50 && status !== 401; i++, await settle(50)) status = await restPublish(a, app.key, app.secret);
      assert.equal(status, 401, 'node A refuses the secret rotated on node B');
      assert.equal(await restPublish(a, app.key, rotated.secret), 200);
      const late = await serverWith({ admin: ADMIN, apps: [{ ...TEST_APP }], engine });
      assert.equal(await restPublish(late, app.key, rotated.secret), 200, 'a node started later loads it from Redis');
    } finally {
      await redis.stop();
    }
  });
});

describe('chorus stats', () => {
  it('prints this node\'s counts and each app\'s, from the admin API; a wrong password or a server without admin exits 1 saying why', async () => {
    const server = await adminServer();
    track(await TestClient.open(rawUrl(server, 'room')));
    track(await TestClient.open(rawUrl(server, 'room')));
    const url = `http://127.0.0.1:${server.port}`;
    const ok = run(['stats', '--once', '--url', url, '--user', ADMIN.user], { env: { CHORUS_ADMIN_PASSWORD: ADMIN.password } });
    assert.equal(await ok.exited(), 0, ok.stderr());
    assert.match(ok.stdout(), /connections 2 {3}channels 1 /);
    assert.match(ok.stdout(), /\n {2}test +yes +2 +1 +2\n/);
    assert.doesNotMatch(ok.stdout() + ok.stderr(), new RegExp(ADMIN.password), 'the password is never printed');

    const wrong = run(['stats', '--once', '--url', url, '--user', ADMIN.user, '--password', 'wrong-password-0000000']);
    assert.equal(await wrong.exited(), 1);
    assert.match(wrong.stderr(), /refused the admin credentials \(HTTP 401\)/);
    const plain = await serverWith();
    const off = run(['stats', '--once', '--url', `http://127.0.0.1:${plain.port}`, '--password', ADMIN.password]);
    assert.equal(await off.exited(), 1);
    assert.match(off.stderr(), /no admin API \(HTTP 404\): set "admin"/);
    const none = run(['stats', '--once', '--url', url]);
    assert.equal(await none.exited(), 2);
    assert.match(none.stderr(), /stats needs the admin password/);
  });
});

describe('admin dashboard in Chromium', () => {
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  after(() => browser?.close());

  it('shows live counts, the apps and channels, streams two browsers\' traffic in the debug console, filters it, and sends an event', async () => {
    const server = await adminServer();
    browser = await launchChromium();
    const origin = `http://127.0.0.1:${server.port}`;
    const dashboard = await (await browser.newContext({ httpCredentials: { username: ADMIN.user, password: ADMIN.password }, viewport: { width: 1100, height: 1500 } })).newPage();
    await dashboard.goto(`${origin}/admin/`);
    await dashboard.getByText(/streaming test/).waitFor({ timeout: 10_000 });

    // Two other browsers make traffic with the seed's raw WebSocket code.
    const users = await Promise.all([browser.newContext(), browser.newContext()].map(async (context) => (await context).newPage()));
    for (const [i, page] of users.entries()) {
      await page.goto(`${origin}/examples/`);
      await page.evaluate(
        ({ url, name }) =>
          new Promise<void>((resolve) => {
            const socket = new WebSocket(url);
            const messages: string[] = [];
            Object.assign(globalThis, { messages });
            socket.addEventListener('message', (event) => messages.push(String(event.data)));
            socket.addEventListener('open', () => {
              socket.send(JSON.stringify({ event: 'chat', data: { from: name } }));
              resolve();
            });
          }),
        { url: `${wsBase(server)}/v4/chat-room?api_key=${TEST_APP.key}&notify_self`, name: `user-${i}` },
      );
    }
    const log = dashboard.getByTestId('console-log');
    await log.getByText(/publication on chat-room .*"from":"user-1"/).waitFor({ timeout: 10_000 });
    await dashboard.getByTestId('connections-now').getByText('2').waitFor({ timeout: 5000 });
    await dashboard.getByTestId('channels-table').getByText('chat-room').waitFor({ timeout: 5000 });
    assert.equal(await log.getByText(/connected .* \(raw, /).count(), 2);

    // Keyboard: the filter narrows the console to one kind of line.
    await dashboard.getByTestId('console-filter').focus();
    await dashboard.keyboard.type('subscribed to');
    await settle(100);
    const visible = await log.locator('li:not([hidden])').allTextContents();
    assert.ok(visible.length === 2 && visible.every((line) => line.includes('subscribed to chat-room')), visible.join('\n'));

    // The send form reaches both browsers.
    const form = dashboard.getByTestId('send-form');
    await form.getByLabel('Channel').fill('chat-room');
    await form.getByLabel('Event').fill('notice');
    await form.getByLabel(/Data/).fill('{"text":"from the dashboard"}');
    await form.getByRole('button', { name: 'Send' }).click();
    for (const page of users) {
      const got = await page.waitForFunction(
        () => (globalThis as unknown as { messages: string[] }).messages.find((m) => m.includes('from the dashboard')),
        undefined,
        { timeout: 5000 },
      );
      assert.deepEqual(JSON.parse(String(await got.jsonValue())), { event: 'notice', data: { text: 'from the dashboard' } });
    }

    mkdirSync(SCREENSHOTS, { recursive: true });
    await dashboard.getByTestId('console-filter').fill('');
    await settle(1200); // a chart point or two
    await dashboard.screenshot({ path: `${SCREENSHOTS}admin-dashboard.png`, fullPage: true });
    await dashboard.setViewportSize({ width: 420, height: 900 });
    await dashboard.screenshot({ path: `${SCREENSHOTS}admin-dashboard-narrow.png` });
    const narrowWidth = await dashboard.evaluate<number>('document.documentElement.scrollWidth');
    assert.ok(narrowWidth <= 420, `no horizontal scrolling of the page at 420 px (scrollWidth ${narrowWidth}); wide tables scroll in their own box`);
  });
});
