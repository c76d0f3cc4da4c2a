/** Protocol v1 conformance, driven by raw JSON frames as docs/protocol.md describes them. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChorusServer } from '../src/index.ts';
import { OTHER_APP, TEST_APP, TestClient, rawUrl, settle, startTestServer } from './helpers.ts';
import { V1Client, channelToken, connectionToken, v1Url } from './v1-helpers.ts';

let server: ChorusServer;
const open: V1Client[] = [];

async function connected(fields: Record<string, unknown> = {}, on: ChorusServer = server): Promise<V1Client> {
  const client = await V1Client.connected(on, fields);
  open.push(client);
  return client;
}

before(async () => {
  server = await startTestServer({
    apps: [
      { ...TEST_APP, channels: [{ pattern: 'short-*', history: { size: 3 } }, { pattern: 'brief-*', history: { ttlSeconds: 1 } }], limits: { maxChannelsPerConnection: 4, maxMessageSize: 1024 } },
      { ...OTHER_APP, allowAnonymous: false },
    ],
  });
});
after(async () => {
  for (const client of open) client.raw.ws.terminate();
  await server.close();
});

describe('connect', () => {
  it('anonymous connect returns the client id, an empty user and the ping interval', async () => {
    const client = await V1Client.open(server);
    open.push(client);
    const reply = await client.command('connect', { client: 'test/1' });
    assert.equal(reply.ok, true);
    assert.equal(reply.result?.['user'], '');
    assert.equal(typeof reply.result?.['client'], 'string');
    assert.equal(reply.result?.['pingIntervalMs'], 25_000);
  });

  it('a connection token sets the user; its info shows in presence', async () => {
    const token = await connectionToken('alice', { info: { name: 'Alice' } });
    const client = await connected({ token });
    assert.equal((await client.command('subscribe', { channel: 'who', presence: true })).ok, true);
    const members = (await client.command('presence', { channel: 'who' })).result?.['members'];
    assert.deepEqual(members, [{ user: 'alice', uuid: (await client.command('ping')).ok && (members as Array<{ uuid: string }>)[0]?.uuid, info: { name: 'Alice' } }]);
  });

  const badTokens: Array<[string, () => Promise<string>]> = [
    ['without the connection audience', () => connectionToken('alice', {}, null)],
    ['a channel-style token', () => channelToken('alice')],
    ['signed with another secret', () => connectionToken('alice', {}, 'chorus:connection', OTHER_APP.secret)],
    ['garbage', () => Promise.resolve('x.y.z')],
  ];
  for (const [name, token] of badTokens) {
    it(`refuses a token ${name}: error 101 then close 4003`, async () => {
      const client = await V1Client.open(server);
      const reply = await client.command('connect', { token: await token() });
      assert.equal(reply.error?.code, 101);
      assert.equal((await client.raw.closed()).code, 4003);
      assert.deepEqual(client.pushes('disconnect')[0], { type: 'disconnect', code: 4003, reason: 'Authentication failed', reconnect: false });
    });
  }

  it('trusted backends connect with the secret; a wrong secret is refused', async () => {
    assert.equal((await connected({ secret: TEST_APP.secret })).raw.ws.readyState, 1);
    const client = await V1Client.open(server);
    assert.equal((await client.command('connect', { secret: 'nope' })).error?.code, 101);
  });

  it('an app with allowAnonymous false refuses a connect without token', async () => {
    const client = await V1Client.open(server, OTHER_APP.key);
    assert.equal((await client.command('connect')).error?.name, 'unauthorized');
    assert.equal((await client.raw.closed()).code, 4003);
  });

  it('unknown key in the URL: disconnect advice and close 4001', async () => {
    const client = new TestClient(v1Url(server, 'nope'));
    const { code } = await client.closed();
    assert.equal(code, 4001);
    assert.deepEqual(JSON.parse(client.received[0]?.text ?? ''), { type: 'disconnect', code: 4001, reason: 'Unknown api key', reconnect: false });
  });

  it('a command before connect closes with 4006', async () => {
    const client = await V1Client.open(server);
    client.send('subscribe', { channel: 'x' });
    assert.equal((await client.raw.closed()).code, 4006);
  });

  for (const [name, frame] of [['not JSON', 'hello'], ['no id', '{"type":"ping"}'], ['id 0', '{"id":0,"type":"ping"}'], ['an array', '[1]']] as const) {
    it(`a frame that is ${name} closes with 4006; others are unaffected`, async () => {
      const bystander = await connected();
      const client = await connected();
      client.raw.ws.send(frame);
      assert.equal((await client.raw.closed()).code, 4006);
      assert.equal((await bystander.command('ping')).ok, true);
    });
  }

  it('a binary frame closes with 4006', async () => {
    const client = await connected();
    client.raw.ws.send(Buffer.from([1, 2, 3]));
    assert.equal((await client.raw.closed()).code, 4006);
  });

  it('a readable id with a bad command gets 104 and the connection stays', async () => {
    const client = await connected();
    assert.deepEqual((await client.command('bogus')).error, { code: 104, name: 'bad_request', message: 'unknown type "bogus" (one of connect, subscribe, unsubscribe, publish, history, presence, refresh, ping)' });
    client.raw.ws.send(JSON.stringify({ id: 900, channel: 'a' }));
    assert.match((await client.reply(900)).error?.message ?? '', /^the command has no "type" \(one of connect, /);
    assert.match((await client.command('subscribe', {})).error?.message ?? '', /missing field "channel"/);
    assert.match((await client.command('subscribe', { channel: 'a', extra: 1 })).error?.message ?? '', /unknown field "extra"/);
    assert.equal((await client.command('ping')).ok, true);
  });

  it('connect twice gets 105', async () => {
    const client = await connected();
    assert.equal((await client.command('connect')).error?.code, 105);
  });

  it('no connect within connectTimeoutMs: advice and close 4501', async () => {
    const quick = await startTestServer({ connectTimeoutMs: 150 });
    try {
      const client = await V1Client.open(quick);
      assert.equal((await client.raw.closed()).code, 4501);
      assert.equal(client.pushes('disconnect')[0]?.['reconnect'], true);
    } finally {
      await quick.close();
    }
  });
});

describe('publish and subscribe', () => {
  it('acks with consecutive offsets; every subscriber, the publisher included, gets each publication once', async () => {
    const a = await connected();
    const b = await connected();
    const subA = await a.command('subscribe', { channel: 'room1' });
    await b.command('subscribe', { channel: 'room1' });
    assert.deepEqual(subA.result, { channel: 'room1', epoch: subA.result?.['epoch'], offset: 0 });
    const acks = [];
    for (let i = 1; i <= 5; i++) acks.push(await a.command('publish', { channel: 'room1', event: 'n', data: { i } }));
    assert.deepEqual(acks.map((r) => r.result?.['offset']), [1, 2, 3, 4, 5]);
    for (const client of [a, b]) {
      const pubs = await client.untilPushes(5);
      assert.deepEqual(pubs.map((p) => [p.offset, p.event, p.data]), [1, 2, 3, 4, 5].map((i) => [i, 'n', { i }]));
      assert.ok(pubs.every((p) => p.epoch === subA.result?.['epoch'] && typeof p['ts'] === 'number'));
    }
  });

  it('refuses bad publishes with coded errors and delivers nothing', async () => {
    const a = await connected();
    await a.command('subscribe', { channel: 'room2' });
    const cases: Array<[Record<string, unknown>, number]> = [
      [{ channel: 'bad name', data: 1 }, 102],
      [{ channel: 'room2' }, 104],
      [{ channel: 'room2', data: 1, b64: 'AA==' }, 104],
      [{ channel: 'room2', b64: 'not base64!' }, 104],
      [{ channel: 'room2', event: '', data: 1 }, 104],
      [{ channel: 'room2', data: 'x'.repeat(1100) }, 109],
      [{ channel: 'private-x', data: 1 }, 103],
    ];
    for (const [fields, code] of cases) assert.equal((await a.command('publish', fields)).error?.code, code, JSON.stringify(fields));
    await settle();
    assert.equal(a.pushes('pub').length, 0);
  });

  it('a repeated msgId is acknowledged with the original offset and not published again', async () => {
    const a = await connected();
    await a.command('subscribe', { channel: 'idem' });
    const first = await a.command('publish', { channel: 'idem', data: 'once', msgId: 'k-1' });
    const again = await a.command('publish', { channel: 'idem', data: 'once', msgId: 'k-1' });
    const other = await a.command('publish', { channel: 'idem', data: 'twice', msgId: 'k-2' });
    assert.deepEqual([first.result?.['offset'], again.result?.['offset'], other.result?.['offset']], [1, 1, 2]);
    await a.untilPushes(2);
    await settle();
    assert.deepEqual(a.pushes('pub').map((p) => p.data), ['once', 'twice']);
  });

  it('translates between dialects: raw text, raw JSON envelopes, raw binary, v1 data and b64, REST', async () => {
    const v1 = await connected();
    await v1.command('subscribe', { channel: 'mixed' });
    const raw = await TestClient.open(rawUrl(server, 'mixed'));
    raw.ws.send('plain text');
    raw.ws.send(JSON.stringify({ event: 'new_message', data: { x: 1 }, meta: { from: 'sdk' } }));
    raw.ws.send(Buffer.from([0, 255]));
    await fetch(`http://127.0.0.1:${server.port}/api/publish`, {
      method: 'POST',
      body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'mixed', message: { event: 'from_rest', data: [1] } }),
    });
    const pubs = await v1.untilPushes(4);
    assert.deepEqual(pubs.map((p) => ({ event: p.event, data: p.data, b64: p.b64, meta: p['meta'] })), [
      { event: 'message', data: 'plain text', b64: undefined, meta: undefined },
      { event: 'new_message', data: { x: 1 }, b64: undefined, meta: { from: 'sdk' } },
      { event: 'message', data: undefined, b64: 'AP8=', meta: undefined },
      { event: 'from_rest', data: [1], b64: undefined, meta: undefined },
    ]);
    await v1.command('publish', { channel: 'mixed', event: 'chat', data: { text: 'hi' } });
    await v1.command('publish', { channel: 'mixed', event: 'blob', b64: 'AQID' });
    const got = await raw.messages(3);
    assert.deepEqual(JSON.parse(got[0]?.text ?? ''), { event: 'from_rest', data: [1] }, 'REST, as sent');
    assert.deepEqual(JSON.parse(got[1]?.text ?? ''), { event: 'chat', data: { text: 'hi' } });
    assert.deepEqual([got[2]?.binary, got[2]?.data], [true, Buffer.from([1, 2, 3])]);
    raw.ws.terminate();
  });

  it('private channels need a channel token to subscribe, then allow publish', async () => {
    const a = await connected();
    assert.equal((await a.command('subscribe', { channel: 'private-p' })).error?.code, 103);
    assert.equal((await a.command('subscribe', { channel: 'private-p', token: await channelToken('private-other') })).error?.code, 103);
    assert.equal((await a.command('history', { channel: 'private-p' })).error?.code, 103);
    assert.equal((await a.command('subscribe', { channel: 'private-p', token: await channelToken('private-p') })).ok, true);
    assert.equal((await a.command('publish', { channel: 'private-p', data: 1 })).ok, true);
    assert.equal((await a.command('history', { channel: 'private-p' })).ok, true);
  });

  it('subscription errors: 106 twice, 108 for unsubscribe of nothing, 107 past maxChannelsPerConnection, 102 for a bad name', async () => {
    const a = await connected();
    assert.equal((await a.command('subscribe', { channel: 'c1' })).ok, true);
    assert.equal((await a.command('subscribe', { channel: 'c1' })).error?.code, 106);
    assert.equal((await a.command('unsubscribe', { channel: 'zz' })).error?.code, 108);
    assert.equal((await a.command('subscribe', { channel: 'bad name' })).error?.code, 102);
    for (const channel of ['c2', 'c3', 'c4']) assert.equal((await a.command('subscribe', { channel })).ok, true);
    assert.equal((await a.command('subscribe', { channel: 'c5' })).error?.code, 107);
    assert.equal((await a.command('unsubscribe', { channel: 'c1' })).ok, true);
    assert.equal((await a.command('subscribe', { channel: 'c5' })).ok, true);
  });

  it('after unsubscribe no more publications arrive', async () => {
    const a = await connected();
    const b = await connected();
    await a.command('subscribe', { channel: 'unsub' });
    await b.command('publish', { channel: 'unsub', data: 1 });
    await a.untilPushes(1);
    await a.command('unsubscribe', { channel: 'unsub' });
    await b.command('publish', { channel: 'unsub', data: 2 });
    await settle();
    assert.equal(a.pushes('pub').length, 1);
  });
});

describe('presence', () => {
  it('join and leave pushes reach the other presence subscribers, not the member itself', async () => {
    const alice = await connected({ token: await connectionToken('alice') });
    const bob = await connected({ token: await connectionToken('bob') });
    await alice.command('subscribe', { channel: 'presence-lobby' });
    const bobClient = (await bob.command('ping')).ok;
    assert.ok(bobClient);
    await bob.command('subscribe', { channel: 'presence-lobby' });
    const [join] = await alice.untilPushes(1, 'join');
    assert.equal((join?.['member'] as { user: string }).user, 'bob');
    const members = (await alice.command('presence', { channel: 'presence-lobby' })).result?.['members'] as Array<{ user: string }>;
    assert.deepEqual(members.map((m) => m.user), ['alice', 'bob']);
    await bob.command('unsubscribe', { channel: 'presence-lobby' });
    const [leave] = await alice.untilPushes(1, 'leave');
    assert.equal((leave?.['member'] as { user: string }).user, 'bob');
    assert.equal(bob.pushes('join').length, 0);
  });
});

describe('history and recovery', () => {
  it('recovers exactly what was missed, then continues live, without duplicates', async () => {
    const publisher = await connected();
    const first = await connected();
    const sub = await first.command('subscribe', { channel: 'rec' });
    for (let i = 1; i <= 3; i++) await publisher.command('publish', { channel: 'rec', data: i });
    const seen = await first.untilPushes(3);
    const last = { offset: seen[2]?.offset, epoch: sub.result?.['epoch'] };
    first.raw.ws.terminate();
    for (let i = 4; i <= 6; i++) await publisher.command('publish', { channel: 'rec', data: i });

    const second = await connected();
    const reply = await second.command('subscribe', { channel: 'rec', since: last });
    assert.deepEqual(reply.result, { channel: 'rec', epoch: last.epoch, offset: 6, recovered: true, replayed: 3 });
    await publisher.command('publish', { channel: 'rec', data: 7 });
    const pubs = await second.untilPushes(4);
    await settle();
    assert.deepEqual(second.pushes('pub').map((p) => [p.offset, p.data]), [[4, 4], [5, 5], [6, 6], [7, 7]]);
    assert.equal(pubs.length, 4);
  });

  it('recovered: false for another epoch, and for a gap past the retained history, with nothing replayed', async () => {
    const client = await connected();
    for (let i = 1; i <= 6; i++) await client.command('publish', { channel: 'short-1', data: i });
    const wrongEpoch = await client.command('subscribe', { channel: 'short-1', since: { offset: 5, epoch: 'other' } });
    assert.equal(wrongEpoch.result?.['recovered'], false);
    const epoch = wrongEpoch.result?.['epoch'];
    await client.command('unsubscribe', { channel: 'short-1' });
    const tooOld = await client.command('subscribe', { channel: 'short-1', since: { offset: 2, epoch } });
    assert.deepEqual(tooOld.result, { channel: 'short-1', epoch, offset: 6, recovered: false, replayed: 0 });
    await client.command('unsubscribe', { channel: 'short-1' });
    const edge = await client.command('subscribe', { channel: 'short-1', since: { offset: 3, epoch } });
    assert.deepEqual(edge.result?.['replayed'], 3, 'history size 3 keeps offsets 4–6: since 3 is exactly recoverable');
    await settle();
    assert.deepEqual(client.pushes('pub').map((p) => p.offset), [4, 5, 6]);
  });

  it('history returns the retained window, honours limit and since, and expires with the TTL', async () => {
    const client = await connected();
    for (let i = 1; i <= 5; i++) await client.command('publish', { channel: 'hist', event: 'e', data: i });
    const all = await client.command('history', { channel: 'hist' });
    assert.deepEqual((all.result?.['publications'] as Array<{ data: number }>).map((p) => p.data), [1, 2, 3, 4, 5]);
    const lastTwo = await client.command('history', { channel: 'hist', limit: 2 });
    assert.deepEqual((lastTwo.result?.['publications'] as Array<{ offset: number }>).map((p) => p.offset), [4, 5]);
    const after3 = await client.command('history', { channel: 'hist', since: { offset: 3, epoch: all.result?.['epoch'] } });
    assert.deepEqual((after3.result?.['publications'] as Array<{ offset: number }>).map((p) => p.offset), [4, 5]);
    assert.equal(after3.result?.['recovered'], true);
    assert.equal((await client.command('history', { channel: 'hist', limit: 101 })).error?.code, 104);

    await client.command('publish', { channel: 'brief-1', data: 'gone soon' });
    const fresh = await client.command('history', { channel: 'brief-1' });
    assert.equal((fresh.result?.['publications'] as unknown[]).length, 1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const expired = await client.command('history', { channel: 'brief-1' });
    assert.deepEqual(expired.result?.['publications'], []);
    assert.equal(expired.result?.['offset'], 1, 'offsets survive expiry');
    const recover = await client.command('subscribe', { channel: 'brief-1', since: { offset: 0, epoch: fresh.result?.['epoch'] } });
    assert.equal(recover.result?.['recovered'], false, 'an expired publication cannot be recovered');
  });

  it('subscribing mid-stream gives contiguous offsets from the reported position', async () => {
    const publisher = await connected();
    let publishing = true;
    const stream = (async () => {
      for (let i = 0; publishing; i++) {
        publisher.send('publish', { channel: 'busy', data: i });
        if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await settle(30);
    const late = await connected();
    const reply = await late.command('subscribe', { channel: 'busy' });
    await late.untilPushes(50);
    publishing = false;
    await stream;
    const offsets = late.pushes('pub').map((p) => p.offset ?? 0);
    const start = Number(reply.result?.['offset']);
    assert.deepEqual(offsets.slice(0, 50), Array.from({ length: 50 }, (_, i) => start + 1 + i));
  });
});

describe('shutdown', () => {
  it('sends reconnect advice with a spread-out retryAfterMs, then closes 1001', async () => {
    const doomed = await startTestServer();
    const clients = await Promise.all([1, 2, 3].map(() => V1Client.connected(doomed)));
    await doomed.close();
    for (const client of clients) {
      assert.equal((await client.raw.closed()).code, 1001);
      const advice = client.pushes('disconnect')[0];
      assert.equal(advice?.['reconnect'], true);
      assert.ok(typeof advice?.['retryAfterMs'] === 'number' && advice['retryAfterMs'] >= 0 && advice['retryAfterMs'] < 5000);
    }
  });
});
