/** Channels against a real Chorus server: publish acks and errors, payloads, queueing, exactly-once, recovery, history, presence. */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ChorusServer } from '../../server/src/index.ts';
import { ChorusError, type Channel, type ChorusClient, type Publication, type RecoveryFailedEvent, type SubscribedEvent } from '../src/index.ts';
import { Recorder, TcpProxy, TEST_APP, channelToken, closeClients, connectionToken, eventually, promiseState, serverUrl, settle, startTestServer, testClient } from './helpers.ts';

const MAX_MESSAGE_SIZE = 1024;

let server: ChorusServer;
let proxy: TcpProxy;

before(async () => {
  server = await startTestServer({
    apps: [{ ...TEST_APP, limits: { maxMessageSize: MAX_MESSAGE_SIZE }, channels: [{ pattern: 'norec-*', history: { size: 0 } }] }],
  });
});
afterEach(async () => {
  closeClients();
  await proxy?.close();
});
after(async () => {
  await server.close();
});

async function connected(url = serverUrl(server), options: Parameters<typeof testClient>[1] = {}): Promise<ChorusClient> {
  const client = testClient(url, options);
  await client.connect();
  return client;
}

/** Records every publication a channel delivers. */
function collect(channel: Channel): Publication[] {
  const received: Publication[] = [];
  channel.on('*', (_data, publication) => received.push(publication));
  return received;
}

function isCoded(code: number, codeName?: string): (error: unknown) => boolean {
  return (error) => error instanceof ChorusError && error.code === code && (codeName === undefined || error.codeName === codeName);
}

describe('publish', () => {
  it('resolves with the offset and epoch; subscribers get it by event name and with *, their own included', async () => {
    const client = await connected();
    const channel = client.channel('pub1');
    assert.equal(client.channel('pub1'), channel, 'the same object for the same name');
    const subscribed = await channel.subscribe();
    assert.equal(subscribed.offset, 0);
    const byName: unknown[] = [];
    channel.on('greeting', (data) => byName.push(data));
    const all = collect(channel);
    const first = await channel.publish('greeting', { text: 'hi' });
    const second = await channel.publish('other', 'plain string');
    assert.deepEqual(first, { offset: 1, epoch: subscribed.epoch });
    assert.deepEqual(second, { offset: 2, epoch: subscribed.epoch });
    await eventually(() => all.length === 2, 'two publications');
    assert.deepEqual(byName, [{ text: 'hi' }]);
    assert.deepEqual(
      all.map((p) => [p.event, p.data, p.offset, p.binary]),
      [
        ['greeting', { text: 'hi' }, 1, false],
        ['other', 'plain string', 2, false],
      ],
    );
    assert.equal(typeof all[0]?.ts, 'number');
  });

  it('rejects with the coded error: 102 bad channel, 103 private channel without subscription, 104 bad event', async () => {
    const client = await connected();
    await assert.rejects(client.channel('bad name!').publish('e', 1), isCoded(102, 'bad_channel'));
    await assert.rejects(client.channel('private-nosub').publish('e', 1), isCoded(103, 'permission_denied'));
    await assert.rejects(client.channel('pub2').publish('', 1), isCoded(104, 'bad_request'));
    assert.equal(client.state, 'connected', 'refusals do not touch the connection');
  });

  it('109 for a payload over maxMessageSize; a frame over the socket limit (close 1009) rejects that publish only', async () => {
    const client = await connected();
    const channel = client.channel('big1');
    await assert.rejects(channel.publish('e', 'x'.repeat(MAX_MESSAGE_SIZE + 10)), isCoded(109, 'message_too_large'));
    const recorder = new Recorder(client);
    const small = channel.publish('e', 'small');
    const huge = channel.publish('e', 'y'.repeat(MAX_MESSAGE_SIZE * 8));
    await assert.rejects(huge, isCoded(109));
    assert.deepEqual((await small).epoch.length > 0, true);
    await recorder.until('connected');
    assert.equal(recorder.all<{ code: number }>('disconnected')[0]?.code, 1009);
    assert.equal((await channel.publish('e', 'after')).offset > 0, true, 'publishing works after the reconnect');
  });

  it('rejects data that cannot be serialized at once, with the serializer\'s error', async () => {
    const client = await connected();
    await assert.rejects(client.channel('pub3').publish('e', { n: 1n }), TypeError);
  });
});

describe('binary payloads', () => {
  it('ArrayBuffer, Uint8Array (a view with an offset), DataView and Blob arrive as Uint8Array, live and in history', async () => {
    const client = await connected();
    const channel = client.channel('bin1');
    await channel.subscribe();
    const received = collect(channel);
    const backing = new Uint8Array([9, 9, 0, 1, 2, 253, 254, 255, 9]);
    await channel.publish('ab', new Uint8Array([1, 2, 3]).buffer);
    await channel.publish('u8', backing.subarray(2, 8));
    await channel.publish('dv', new DataView(backing.buffer, 3, 2));
    await channel.publish('blob', new Blob([new Uint8Array([7, 8]), 'A']));
    await channel.publish('json', [1, 2, 3]);
    await eventually(() => received.length === 5, 'five publications');
    const expected: Array<[string, unknown]> = [
      ['ab', new Uint8Array([1, 2, 3])],
      ['u8', new Uint8Array([0, 1, 2, 253, 254, 255])],
      ['dv', new Uint8Array([1, 2])],
      ['blob', new Uint8Array([7, 8, 65])],
      ['json', [1, 2, 3]],
    ];
    assert.deepEqual(
      received.map((p) => [p.event, p.data]),
      expected,
    );
    assert.deepEqual(
      received.map((p) => p.binary),
      [true, true, true, true, false],
    );
    const history = await channel.history();
    assert.deepEqual(
      history.publications.map((p) => [p.event, p.data]),
      expected,
    );
  });

  it('a Blob published before a string keeps its place in the order', async () => {
    const client = await connected();
    const channel = client.channel('bin2');
    const blob = channel.publish('first', new Blob(['x'.repeat(50_0)]));
    const text = channel.publish('second', 'y');
    const [a, b] = await Promise.all([blob, text]);
    assert.ok(a.offset < b.offset, `${a.offset} < ${b.offset}`);
  });
});

describe('queueing', () => {
  it('publishes made while disconnected are sent in order after the reconnect; a full queue rejects with 201 at once', async () => {
    proxy = await TcpProxy.start(server.port);
    const observer = await connected();
    const watched = observer.channel('queue1');
    await watched.subscribe();
    const seen = collect(watched);

    const client = await connected(proxy.url, { maxQueuedPublishes: 5 });
    const recorder = new Recorder(client);
    proxy.refusing = true;
    proxy.cut();
    await recorder.until('disconnected');
    const channel = client.channel('queue1');
    const publishes = [1, 2, 3, 4, 5].map((n) => channel.publish('n', n));
    await assert.rejects(channel.publish('n', 6), isCoded(201, 'queue_full'));
    await settle(100);
    for (const publish of publishes) assert.equal(await promiseState(publish), 'pending');

    proxy.refusing = false;
    const acks = await Promise.all(publishes);
    const offsets = acks.map((ack) => ack.offset);
    assert.deepEqual(offsets, [...offsets].sort((x, y) => x - y), 'acked in order');
    assert.deepEqual(
      offsets.map((offset, i) => offset - i),
      Array(5).fill(offsets[0]),
      'consecutive offsets',
    );
    await eventually(() => seen.length === 5, 'five publications at the observer');
    assert.deepEqual(
      seen.map((p) => p.data),
      [1, 2, 3, 4, 5],
    );
    assert.equal((await channel.publish('n', 7)).offset, (offsets[4] ?? 0) + 1, 'the queue has room again');
  });

  it('publishes wait for a subscribe in progress: a private channel can be published to right after subscribe()', async () => {
    const client = await connected();
    const channel = client.channel('private-q2', { getToken: () => channelToken('private-q2') });
    const subscribing = channel.subscribe();
    const ack = await channel.publish('e', 'hello');
    await subscribing;
    assert.equal(ack.offset, 1);
  });

  it('close() rejects queued publishes with 203 client_closed', async () => {
    const client = testClient(serverUrl(server), { autoConnect: false });
    const publish = client.channel('q3').publish('e', 1);
    client.close();
    await assert.rejects(publish, isCoded(203, 'client_closed'));
    await assert.rejects(client.channel('q3').publish('e', 2), isCoded(203));
  });
});

describe('exactly once', () => {
  it('a publish whose ack is lost in a disconnect is re-sent with its msgId and acked with the original offset, published once', async () => {
    proxy = await TcpProxy.start(server.port);
    const observer = await connected();
    const watched = observer.channel('once1');
    await watched.subscribe();
    const seen = collect(watched);

    const client = await connected(proxy.url);
    const recorder = new Recorder(client);
    proxy.dropReplies = true;
    const publish = client.channel('once1').publish('e', 'exactly once');
    await eventually(() => seen.length === 1, 'the server published it');
    assert.equal(await promiseState(publish), 'pending', 'the ack was lost');
    proxy.cut();
    proxy.dropReplies = false;
    const ack = await publish;
    assert.equal(recorder.count('connected'), 1, 'acked over a new connection');
    assert.equal(ack.offset, seen[0]?.offset);
    await settle(100);
    assert.equal(seen.length, 1, 'not published twice');
    assert.equal((await watched.history()).publications.length, 1);
  });

  it('an explicit msgId makes a retried publish idempotent across clients', async () => {
    const a = await connected();
    const b = await connected();
    const first = await a.channel('once2').publish('e', 1, { msgId: 'order-42' });
    const again = await b.channel('once2').publish('e', 1, { msgId: 'order-42' });
    assert.deepEqual(again, first);
  });
});

describe('recovery', () => {
  it('after a drop, the channel is resubscribed from its last position and receives exactly what it missed, in order', async () => {
    proxy = await TcpProxy.start(server.port);
    const publisher = await connected();
    const client = await connected(proxy.url);
    const recorder = new Recorder(client);
    const channel = client.channel('rec1');
    const subscribedEvents: SubscribedEvent[] = [];
    channel.on('subscribed', (event) => subscribedEvents.push(event));
    await channel.subscribe();
    const received = collect(channel);
    await publisher.channel('rec1').publish('n', 1);
    await eventually(() => received.length === 1, 'the first publication');

    proxy.refusing = true;
    proxy.cut();
    await recorder.until('disconnected');
    for (const n of [2, 3, 4]) await publisher.channel('rec1').publish('n', n);
    assert.equal(channel.state, 'subscribing');
    proxy.refusing = false;
    await eventually(() => received.length === 4, 'the missed publications', 5000, () => received.map((p) => p.data));
    await publisher.channel('rec1').publish('n', 5);
    await eventually(() => received.length === 5, 'the live publication');
    assert.deepEqual(
      received.map((p) => [p.data, p.offset]),
      [
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
        [5, 5],
      ],
    );
    assert.equal(subscribedEvents.length, 2);
    assert.equal(subscribedEvents[1]?.resubscribed, true);
    assert.equal(subscribedEvents[1]?.recovered, true);
    assert.equal(subscribedEvents[1]?.replayed, 3);
    assert.deepEqual(channel.position, { offset: 5, epoch: subscribedEvents[0]?.epoch });
  });

  it('when the gap cannot be filled, recovery-failed and subscribed {recovered: false} are emitted, never silence', async () => {
    proxy = await TcpProxy.start(server.port);
    const publisher = await connected();
    const client = await connected(proxy.url);
    const recorder = new Recorder(client);
    const channel = client.channel('norec-1');
    await channel.subscribe();
    const failures: RecoveryFailedEvent[] = [];
    const subscribedEvents: SubscribedEvent[] = [];
    channel.on('recovery-failed', (event) => failures.push(event));
    channel.on('subscribed', (event) => subscribedEvents.push(event));
    const received = collect(channel);
    proxy.refusing = true;
    proxy.cut();
    await recorder.until('disconnected');
    await publisher.channel('norec-1').publish('n', 1);
    await publisher.channel('norec-1').publish('n', 2);
    proxy.refusing = false;
    await eventually(() => subscribedEvents.length === 1, 'the resubscribe');
    assert.equal(subscribedEvents[0]?.recovered, false);
    assert.equal(failures.length, 1);
    assert.deepEqual(failures[0]?.since.offset, 0);
    assert.deepEqual(failures[0]?.position.offset, 2);
    await publisher.channel('norec-1').publish('n', 3);
    await eventually(() => received.length === 1, 'live publications continue');
    assert.equal(received[0]?.data, 3);
  });

  it('unsubscribe() stops delivery and is not undone by a reconnect', async () => {
    proxy = await TcpProxy.start(server.port);
    const publisher = await connected();
    const client = await connected(proxy.url);
    const recorder = new Recorder(client);
    const channel = client.channel('unsub1');
    await channel.subscribe();
    const received = collect(channel);
    await channel.unsubscribe();
    assert.equal(channel.state, 'unsubscribed');
    proxy.cut();
    await recorder.until('connected', 1);
    await publisher.channel('unsub1').publish('n', 1);
    await settle(150);
    assert.equal(received.length, 0);
  });

  it('a resubscribe that fails is reported on the channel and the client (error, unsubscribed)', async () => {
    proxy = await TcpProxy.start(server.port);
    const client = await connected(proxy.url);
    const recorder = new Recorder(client);
    let allow = true;
    const channel = client.channel('private-resub', { getToken: () => (allow ? channelToken('private-resub') : Promise.resolve('bad.token.here')) });
    await channel.subscribe();
    const errors: ChorusError[] = [];
    const unsubscribed: unknown[] = [];
    channel.on('error', (error) => errors.push(error));
    channel.on('unsubscribed', (event) => unsubscribed.push(event));
    allow = false;
    proxy.cut();
    await eventually(() => errors.length === 1, 'the channel error');
    assert.equal(errors[0]?.code, 103);
    assert.equal(channel.state, 'unsubscribed');
    assert.deepEqual(unsubscribed, [{ reason: 'error', error: errors[0] }]);
    assert.equal(recorder.all<ChorusError>('error')[0], errors[0]);
  });
});

describe('history and presence', () => {
  it('history with limit and since, oldest first', async () => {
    const client = await connected();
    const channel = client.channel('hist1');
    for (let n = 1; n <= 5; n++) await channel.publish('n', n);
    const all = await channel.history();
    assert.deepEqual(
      all.publications.map((p) => p.data),
      [1, 2, 3, 4, 5],
    );
    assert.equal(all.offset, 5);
    const limited = await channel.history({ limit: 2 });
    assert.equal(limited.publications.length, 2);
    const since = await channel.history({ since: { offset: 3, epoch: all.epoch } });
    assert.deepEqual(
      since.publications.map((p) => p.offset),
      [4, 5],
    );
    const stale = await channel.history({ since: { offset: 3, epoch: 'other-epoch' } });
    assert.equal(stale.recovered, false);
  });

  it('presence lists members with their token info; join and leave events reach the others', async () => {
    const alice = await connected(serverUrl(server), { getToken: () => connectionToken('alice', { info: { name: 'Alice' } }) });
    const bob = await connected(serverUrl(server), { getToken: () => connectionToken('bob') });
    const aliceChannel = alice.channel('room1', { presence: true });
    await aliceChannel.subscribe();
    const joins: string[] = [];
    const leaves: string[] = [];
    aliceChannel.on('join', (member) => joins.push(member.user));
    aliceChannel.on('leave', (member) => leaves.push(member.user));
    const bobChannel = bob.channel('room1', { presence: true });
    await bobChannel.subscribe();
    await eventually(() => joins.length === 1, 'the join');
    assert.deepEqual(joins, ['bob']);
    const { members } = await bobChannel.presence();
    assert.deepEqual(
      members.map((m) => [m.user, m.uuid, m.info]).sort(),
      [
        ['alice', alice.session?.client, { name: 'Alice' }],
        ['bob', bob.session?.client, undefined],
      ],
    );
    await bobChannel.unsubscribe();
    await eventually(() => leaves.length === 1, 'the leave');
    assert.deepEqual(leaves, ['bob']);
  });

  it('a history request made while disconnected is sent after the reconnect', async () => {
    proxy = await TcpProxy.start(server.port);
    const client = await connected(proxy.url);
    const recorder = new Recorder(client);
    await client.channel('hist2').publish('n', 1);
    proxy.refusing = true;
    proxy.cut();
    await recorder.until('disconnected');
    const history = client.channel('hist2').history();
    await settle(50);
    assert.equal(await promiseState(history), 'pending');
    proxy.refusing = false;
    assert.equal((await history).publications.length, 1);
  });
});

describe('transient subscribe refusals', () => {
  it('retries subscribes refused with 110 rate_limited until every channel is subscribed, without giving any up', async () => {
    // 3 commands at once, then 10 a second: subscribing to 8 channels at once is refused in part.
    const limited = await startTestServer({ apps: [{ ...TEST_APP, limits: { messagesPerSecond: 10, messageBurst: 3 } }] });
    try {
      const client = await connected(serverUrl(limited));
      const errors: unknown[] = [];
      client.on('error', (error) => errors.push(error));
      const channels = Array.from({ length: 8 }, (_, index) => client.channel(`busy-${index}`));
      const refusals: unknown[] = [];
      for (const channel of channels) channel.on('error', (error) => refusals.push(error));
      const results = await Promise.all(channels.map((channel) => channel.subscribe()));
      assert.equal(results.length, 8);
      assert.deepEqual(
        channels.map((channel) => channel.state),
        channels.map(() => 'subscribed'),
      );
      assert.deepEqual([errors, refusals], [[], []], 'transient refusals are retried, not reported');
      // Subscribed on the server for real: a publication from another client reaches the last one.
      const received = collect(channels[7] as Channel);
      const other = await connected(serverUrl(limited));
      await other.channel('busy-7').publish('e', 'after the retries');
      await eventually(() => received.length === 1, 'the publication on busy-7');
    } finally {
      closeClients();
      await limited.close();
    }
  });
});
