/**
 * Webhooks against a real HTTP receiver: Pusher's body and signature (checked with the `pusher`
 * SDK's own webhook validation), events from every dialect, receivers' filters, batching,
 * removals held and cancelled, retries through a failing and a vanished receiver, giving up
 * with a log line, and two nodes on Redis announcing each transition once.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import PusherServer from 'pusher';
import { startServer, type ChorusConfigInput, type ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, settle, wsBase } from './helpers.ts';
import { TestRedis } from './redis.ts';
import { V1Client, channelToken, connectionToken, v1Url } from './v1-helpers.ts';
import { WebhookReceiver } from './webhook-receiver.ts';

const servers: ChorusServer[] = [];
const clients: TestClient[] = [];
const receivers: WebhookReceiver[] = [];
after(async () => {
  for (const client of clients) client.ws.terminate();
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(receivers.map((r) => r.stop()));
});

const HOLD_MS = 300;

async function receiver(): Promise<WebhookReceiver> {
  const r = await WebhookReceiver.start();
  receivers.push(r);
  return r;
}

async function serverWith(hooks: unknown[], overrides: ChorusConfigInput = {}, logger?: pino.Logger): Promise<ChorusServer> {
  const server = await startServer(
    {
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      webhooks: { batchMs: 100, holdMs: HOLD_MS, retryForMs: 10_000 },
      apps: [{ ...TEST_APP, clientEvents: true, webhooks: hooks } as NonNullable<ChorusConfigInput['apps']>[number]],
      ...overrides,
    },
    logger ? { logger } : {},
  );
  servers.push(server);
  return server;
}

async function open(url: string): Promise<TestClient> {
  const client = await TestClient.open(url);
  clients.push(client);
  return client;
}

function raw(server: ChorusServer, channel: string, query = ''): Promise<TestClient> {
  return open(`${wsBase(server)}/v4/${channel}?api_key=${TEST_APP.key}${query}`);
}

const sdk = new PusherServer({ appId: TEST_APP.id, key: TEST_APP.key, secret: TEST_APP.secret, host: '127.0.0.1' });

/** A Pusher protocol client on plain `ws`, subscribed to `channel` (auth signed by the real SDK where needed). */
async function pusher(server: ChorusServer, channel: string, user?: string): Promise<TestClient> {
  const client = await open(`${wsBase(server)}/app/${TEST_APP.key}?protocol=7`);
  await client.until(() => client.events('pusher:connection_established').length === 1, 'connection_established');
  const socketId = (JSON.parse(client.events('pusher:connection_established')[0]?.data as string) as { socket_id: string }).socket_id;
  const auth = channel.startsWith('presence-') ? sdk.authorizeChannel(socketId, channel, { user_id: user ?? 'anon', user_info: { name: user } }) : channel.startsWith('private-') ? sdk.authorizeChannel(socketId, channel) : {};
  client.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel, ...auth } }));
  await client.until(() => client.events('pusher_internal:subscription_succeeded').length === 1 || client.events('pusher:cache_miss').length === 1, `subscription to ${channel}`);
  return client;
}

function socketIdOf(client: TestClient): string {
  return (JSON.parse(client.events('pusher:connection_established')[0]?.data as string) as { socket_id: string }).socket_id;
}

describe('webhooks', () => {
  it('events of every dialect arrive batched, with Pusher\'s body and a signature the pusher SDK accepts, and the receiver\'s own headers', async () => {
    const hooks = await receiver();
    const server = await serverWith([{ url: hooks.url, headers: { authorization: 'Bearer receiver-token' } }]);

    const rawClient = await raw(server, 'room');
    await hooks.until(() => hooks.named('channel_occupied', 'room').length === 1, 'room occupied (raw client)');
    const ann = await pusher(server, 'presence-lobby', 'ann');
    await hooks.until(() => hooks.named('member_added', 'presence-lobby').length === 1, 'ann added (Pusher client)');
    assert.deepEqual(hooks.named('member_added', 'presence-lobby')[0], { name: 'member_added', channel: 'presence-lobby', user_id: 'ann' });
    // One batch: the occupancy and the member of one subscription, within batchMs.
    assert.ok(hooks.accepted.some((hook) => hook.events.some((e) => e.name === 'channel_occupied' && e.channel === 'presence-lobby') && hook.events.some((e) => e.name === 'member_added')), 'occupied and member_added in one request');

    ann.ws.send(JSON.stringify({ event: 'client-typing', channel: 'presence-lobby', data: { text: 'hi' } }));
    await hooks.until(() => hooks.named('client_event').length === 1, 'client_event (Pusher)');
    assert.deepEqual(hooks.named('client_event')[0], { name: 'client_event', channel: 'presence-lobby', event: 'client-typing', data: '{"text":"hi"}', socket_id: socketIdOf(ann), user_id: 'ann' });

    const v1 = new V1Client(await open(v1Url(server)));
    assert.equal((await v1.command('connect', { token: await connectionToken('vic') })).ok, true);
    assert.equal((await v1.command('subscribe', { channel: 'private-doc', token: await channelToken('private-doc') })).ok, true);
    assert.equal((await v1.command('publish', { channel: 'private-doc', event: 'client-cursor', data: { x: 1 } })).ok, true);
    await hooks.until(() => hooks.named('client_event', 'private-doc').length === 1, 'client_event (v1 whisper)');
    assert.equal(hooks.named('client_event', 'private-doc')[0]?.['data'], '{"x":1}');

    await pusher(server, 'cache-prices');
    await hooks.until(() => hooks.named('cache_miss', 'cache-prices').length === 1, 'cache_miss');

    rawClient.ws.close();
    await hooks.until(() => hooks.named('channel_vacated', 'room').length === 1, 'room vacated', 5000);
    assert.deepEqual(hooks.named('subscription_count', 'room').map((e) => e['subscription_count']), [1, 0]);

    assert.ok(hooks.accepted.length >= 3);
    assert.ok(hooks.allValidFor(TEST_APP), 'every request passes the pusher SDK\'s webhook().isValid()');
    assert.equal(hooks.allValidFor({ ...TEST_APP, secret: 'another-secret-0123456789' }), false, 'and would not with another secret');
    for (const hook of hooks.accepted) {
      assert.equal(hook.headers['authorization'], 'Bearer receiver-token');
      assert.equal(hook.headers['x-pusher-key'], TEST_APP.key);
      assert.ok(Math.abs(hook.timeMs - Date.now()) < 60_000, 'time_ms is a current time in ms');
    }
  });

  it('a receiver gets only the events and channel prefix it asked for', async () => {
    const [all, filtered] = [await receiver(), await receiver()];
    const server = await serverWith([{ url: all.url }, { url: filtered.url, events: ['channel_occupied', 'channel_vacated'], channelPrefix: 'private-' }]);
    const a = await raw(server, 'public-one');
    const b = await pusher(server, 'private-two');
    await all.until(() => all.named('channel_occupied').length === 2, 'both occupied at the unfiltered receiver');
    a.ws.close();
    b.ws.close();
    await all.until(() => all.named('channel_vacated').length === 2, 'both vacated at the unfiltered receiver');
    await filtered.until(() => filtered.events.length === 2, 'the filtered receiver\'s two events');
    await settle(300);
    assert.deepEqual(filtered.events.map((e) => `${e.name} ${e.channel}`), ['channel_occupied private-two', 'channel_vacated private-two']);
  });

  it('a channel emptied and a member gone for less than holdMs are not announced; gone for longer, once', async () => {
    const hooks = await receiver();
    const server = await serverWith([{ url: hooks.url }]);
    const first = await raw(server, 'blink');
    const bo = await pusher(server, 'presence-blink', 'bo');
    await hooks.until(() => hooks.named('member_added', 'presence-blink').length === 1 && hooks.named('channel_occupied', 'blink').length === 1, 'occupied and added');
    // A page reload: gone and back well within holdMs.
    first.ws.close();
    bo.ws.close();
    await settle(50);
    const again = await raw(server, 'blink');
    const boAgain = await pusher(server, 'presence-blink', 'bo');
    await settle(HOLD_MS + 400);
    assert.deepEqual(hooks.named('channel_vacated', 'blink'), [], 'no vacated for a reload');
    assert.deepEqual(hooks.named('member_removed'), [], 'no member_removed for a reload');
    assert.equal(hooks.named('member_added').length, 1, 'nor a second member_added');
    again.ws.close();
    boAgain.ws.close();
    await hooks.until(() => hooks.named('channel_vacated', 'blink').length === 1 && hooks.named('member_removed', 'presence-blink').length === 1, 'vacated and removed after holdMs');
    await settle(HOLD_MS);
    assert.equal(hooks.named('channel_vacated', 'blink').length, 1);
    assert.deepEqual(hooks.named('member_removed', 'presence-blink'), [{ name: 'member_removed', channel: 'presence-blink', user_id: 'bo' }]);
  });

  it('a receiver that fails, then goes away, then comes back gets every event, in order, retried with backoff', async () => {
    const hooks = await receiver();
    const server = await serverWith([{ url: hooks.url, events: ['channel_occupied', 'channel_vacated'] }], { webhooks: { batchMs: 20, holdMs: 0, retryForMs: 30_000 } });
    hooks.failNext = 3;
    const cycle = async (): Promise<void> => {
      const client = await raw(server, 'seq');
      await settle(150);
      client.ws.close();
      await settle(150);
    };
    await cycle();
    await hooks.pause(); // connections refused now
    await cycle();
    await settle(700);
    await hooks.resume();
    await cycle();
    await hooks.until(() => hooks.events.length === 6, 'all six events', 20_000);
    assert.deepEqual(hooks.events.map((e) => e.name), ['channel_occupied', 'channel_vacated', 'channel_occupied', 'channel_vacated', 'channel_occupied', 'channel_vacated']);
    assert.equal(hooks.refused, 3, 'the three 503s were retried');
    assert.ok(hooks.allValidFor(TEST_APP));
  });

  it('a receiver that never recovers: the batch is dropped after webhooks.retryForMs with a log line, and later events still go out', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
    const hooks = await receiver();
    const server = await serverWith([{ url: `${hooks.url}?token=sekrit-query-token`, events: ['channel_occupied'] }], { webhooks: { batchMs: 20, holdMs: 0, retryForMs: 800 } }, logger);
    hooks.failNext = 1_000;
    await raw(server, 'doomed');
    const deadline = Date.now() + 5000;
    while (!lines.some((l) => l.includes('webhook events dropped')) && Date.now() < deadline) await settle(50);
    const line = lines.find((l) => l.includes('webhook events dropped')) ?? '(no log line)';
    assert.match(line, /webhooks\.retryForMs \(800 ms/);
    assert.doesNotMatch(lines.join('\n'), /sekrit-query-token/, 'the receiver URL is logged without its query');
    assert.ok(hooks.refused >= 2, `retried (${hooks.refused} attempts) before giving up`);
    hooks.failNext = 0;
    await raw(server, 'later');
    await hooks.until(() => hooks.named('channel_occupied', 'later').length === 1, 'a later event delivered');
    assert.deepEqual(hooks.named('channel_occupied', 'doomed'), []);
  });
});

describe('webhooks on two nodes over Redis', () => {
  let redis: TestRedis;
  after(() => redis?.stop());

  it('occupied/vacated and member added/removed reflect the whole cluster, each announced once', async () => {
    redis = await TestRedis.start();
    const hooks = await receiver();
    const engine = { type: 'redis' as const, url: redis.url };
    const [a, b] = [await serverWith([{ url: hooks.url }], { engine }), await serverWith([{ url: hooks.url }], { engine })];
    const onA = await raw(a, 'shared', '&presence=1&user=zoe');
    await hooks.until(() => hooks.named('member_added').length === 1, 'zoe added');
    const onB = await raw(b, 'shared', '&presence=1&user=zoe');
    await settle(HOLD_MS + 500);
    onA.ws.close(); // zoe is still on node B: the channel is occupied, zoe is a member
    await settle(HOLD_MS + 500);
    assert.equal(hooks.named('channel_occupied', 'shared').length, 1, 'one occupied for two nodes');
    assert.equal(hooks.named('member_added', 'shared').length, 1, 'one member_added for one user on two nodes');
    assert.deepEqual(hooks.named('channel_vacated'), [], 'no vacated while node B has a subscriber (soketi sends one here)');
    assert.deepEqual(hooks.named('member_removed'), [], 'no member_removed while the user is on node B');
    onB.ws.close();
    await hooks.until(() => hooks.named('channel_vacated', 'shared').length === 1 && hooks.named('member_removed', 'shared').length === 1, 'vacated and removed once the last node empties');
    await settle(HOLD_MS + 500);
    const order = hooks.events.map((e) => e.name);
    assert.ok(order.indexOf('channel_occupied') < order.indexOf('channel_vacated'), 'occupied before vacated');
    assert.ok(order.indexOf('member_added') < order.indexOf('member_removed'), 'added before removed');
    for (const name of ['channel_occupied', 'member_added', 'channel_vacated', 'member_removed']) assert.equal(hooks.named(name).length, 1, `${name} once`);
    assert.deepEqual(hooks.named('subscription_count', 'shared').map((e) => e['subscription_count']).sort(), [0, 1, 1, 2]);
    assert.ok(hooks.allValidFor(TEST_APP));
  });
});
