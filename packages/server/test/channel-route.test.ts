/**
 * ChannelRoute: a raw connection's shortcut to its channel's stream and subscribers. Each owner
 * must notice when what the route holds is no longer current: a stream dropped for idleness
 * (memory engine) and a hub entry whose last subscriber left. Both are checked here on the real
 * classes: the store, and the hub with real connections over real sockets.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { ChannelRoute } from '../src/channel-route.ts';
import { Connection } from '../src/connection.ts';
import { rawEncoder } from '../src/dialects/raw.ts';
import { MemoryStreams, STREAM_IDLE_TTL_MS } from '../src/engine/memory-history.ts';
import type { MessageInput, MessagePublication } from '../src/engine/types.ts';
import { Hub } from '../src/hub.ts';
import { Traffic } from '../src/metrics/stats.ts';
import { OutboundScheduler } from '../src/outbound.ts';
import { TestClient } from './helpers.ts';

const policy = { size: 10, ttlMs: STREAM_IDLE_TTL_MS * 2 };

function message(text: string): MessageInput {
  return { appId: 'app', channel: 'room', originId: 'publisher', event: undefined, payload: Buffer.from(text), binary: false };
}

describe('ChannelRoute and the memory streams', () => {
  it('a route whose stream was dropped for idleness goes to the stream that replaces it', () => {
    const streams = new MemoryStreams();
    const route = new ChannelRoute();
    const first = streams.append(message('before'), policy, route) as MessagePublication;
    assert.equal(first.offset, 1);

    streams.sweep(Date.now() + STREAM_IDLE_TTL_MS + 1);
    const second = streams.append(message('after'), policy, route) as MessagePublication;

    // A new stream: a new epoch, counting from 1, and the one history is read from.
    assert.notEqual(second.epoch, first.epoch);
    assert.equal(second.offset, 1);
    const page = streams.read('app', 'room', { since: undefined, limit: 10 }, policy);
    assert.equal(page.epoch, second.epoch);
    assert.deepEqual(
      page.publications.map((p) => p.payload.toString()),
      ['after'],
    );
  });

  it('a route keeps using its live stream, and publications without one find the same stream', () => {
    const streams = new MemoryStreams();
    const route = new ChannelRoute();
    const viaRoute = streams.append(message('one'), policy, route) as MessagePublication;
    const direct = streams.append(message('two'), policy) as MessagePublication;
    const viaRouteAgain = streams.append(message('three'), policy, route) as MessagePublication;
    assert.deepEqual([viaRoute.offset, direct.offset, viaRouteAgain.offset], [1, 2, 3]);
    assert.equal(new Set([viaRoute.epoch, direct.epoch, viaRouteAgain.epoch]).size, 1);
  });
});

describe('ChannelRoute and the hub', () => {
  const scheduler = new OutboundScheduler(1000);
  const traffic = new Traffic('app', 'raw');
  let http: Server;
  let wss: WebSocketServer;
  let port: number;
  let nextId = 0;
  /** The server side of each client, in the order they connected. */
  const accepted: Connection[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    wss = new WebSocketServer({ noServer: true });
    http = createServer();
    http.on('upgrade', (request, socket, head) => {
      wss.handleUpgrade(request, socket, head, (ws) => {
        accepted.push(new Connection(`conn-${++nextId}`, ws, socket, scheduler, { maxPendingBytes: 1 << 20, maxMessageBytes: 1 << 16, warn: () => undefined }, traffic, '127.0.0.1'));
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    port = (http.address() as AddressInfo).port;
  });
  after(async () => {
    for (const client of clients) client.ws.terminate();
    wss.close();
    await new Promise((resolve) => http.close(resolve));
  });

  /** A real client and its server-side Connection; resolves once both ends are open. */
  async function connect(): Promise<{ client: TestClient; connection: Connection }> {
    const count = accepted.length;
    const client = await TestClient.open(`ws://127.0.0.1:${port}/`);
    clients.push(client);
    while (accepted.length === count) await new Promise((resolve) => setImmediate(resolve));
    return { client, connection: accepted[count] as Connection };
  }

  function subscriberOf(connection: Connection) {
    return { connection, held: undefined, encoder: rawEncoder, notifySelf: false, presenceEvents: false, recoverable: false };
  }

  let offset = 0;
  function publication(text: string): MessagePublication {
    return { ...message(text), kind: 'message', offset: ++offset, epoch: 'e', ts: Date.now() };
  }

  it('a route whose channel lost every subscriber delivers to the subscribers who came after', async () => {
    const hub = new Hub(scheduler);
    const route = new ChannelRoute();
    const early = await connect();
    const earlySubscriber = subscriberOf(early.connection);
    await hub.subscribe('app', 'room', earlySubscriber);
    hub.deliver(publication('to the first subscriber'), route);
    await early.client.messages(1);
    assert.ok(route.entry, 'the hub remembered the channel on the route');

    // The channel empties (its entry leaves the hub), then someone subscribes again.
    hub.unsubscribe('app', 'room', earlySubscriber);
    const late = await connect();
    await hub.subscribe('app', 'room', subscriberOf(late.connection));
    hub.deliver(publication('to the one who came after'), route);

    await late.client.messages(1);
    assert.deepEqual(late.client.received.map((r) => r.text), ['to the one who came after']);
    assert.deepEqual(early.client.received.map((r) => r.text), ['to the first subscriber']);
  });
});
