/** The client's connection life cycle against a real Chorus server: states, reconnects, backoff, terminal closes, dead links. */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { ChorusServer } from '../../server/src/index.ts';
import { ChorusError, createClient, type DisconnectedEvent, type ReconnectingEvent } from '../src/index.ts';
import { OTHER_APP, Recorder, TcpProxy, TEST_APP, closeClients, connectionToken, promiseState, serverUrl, settle, startTestServer, testClient } from './helpers.ts';

let server: ChorusServer;
let proxy: TcpProxy;

before(async () => {
  server = await startTestServer({ apps: [{ ...TEST_APP }, { ...OTHER_APP, allowAnonymous: false }] });
});
afterEach(async () => {
  closeClients();
  await proxy?.close();
});
after(async () => {
  await server.close();
});

async function viaProxy(): Promise<TcpProxy> {
  proxy = await TcpProxy.start(server.port);
  return proxy;
}

describe('options', () => {
  it('without a WebSocket constructor (Node 20 has no global one) createClient throws a TypeError naming the option', () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
    delete (globalThis as { WebSocket?: unknown }).WebSocket;
    try {
      assert.throws(
        () => createClient('ws://127.0.0.1:1', { key: TEST_APP.key }),
        (error: unknown) => error instanceof TypeError && /WebSocket option/.test(error.message) && /import WebSocket from 'ws'/.test(error.message),
      );
    } finally {
      if (saved) Object.defineProperty(globalThis, 'WebSocket', saved);
    }
  });

  it('refuses a missing key, token with getToken, bad numbers and bad URLs at once', () => {
    assert.throws(() => createClient('ws://x', { WebSocket } as never), /options.key/);
    assert.throws(() => createClient('ws://x', { key: 'k', WebSocket, token: 't', getToken: () => Promise.resolve('t') }), /token or getToken/);
    assert.throws(() => createClient('ws://x', { key: 'k', WebSocket, minDelayMs: 100, maxDelayMs: 10 }), RangeError);
    assert.throws(() => createClient('ftp://x', { key: 'k', WebSocket }), TypeError);
  });

  it('builds the /v1/connect URL with the key from ws://, http:// and full URLs', () => {
    const make = (url: string): string => createClient(url, { key: 'my key', WebSocket, autoConnect: false }).url;
    assert.equal(make('ws://example.com'), 'ws://example.com/v1/connect?key=my+key');
    assert.equal(make('https://example.com:8443/'), 'wss://example.com:8443/v1/connect?key=my+key');
    assert.equal(make('ws://example.com/v1/connect?key=old'), 'ws://example.com/v1/connect?key=my+key');
  });
});

describe('states', () => {
  it('connecting then connected, with the connect result; autoConnect waits a microtask so listeners see everything', async () => {
    const client = testClient(serverUrl(server));
    const recorder = new Recorder(client);
    assert.equal(client.state, 'disconnected');
    await recorder.until('connected');
    assert.deepEqual(recorder.names(), ['connecting', 'connected']);
    assert.deepEqual(recorder.all('state'), ['connecting', 'connected']);
    const result = recorder.all<{ client: string; user: string; pingIntervalMs: number }>('connected')[0];
    assert.equal(result?.user, '');
    assert.equal(result?.pingIntervalMs, 25_000);
    assert.equal(client.state, 'connected');
    assert.deepEqual(client.session, result);
  });

  it('autoConnect false waits for connect(), which resolves with the connect result', async () => {
    const client = testClient(serverUrl(server), { autoConnect: false });
    await settle(50);
    assert.equal(client.state, 'disconnected');
    const result = await client.connect();
    assert.equal(typeof result.client, 'string');
    assert.equal(client.state, 'connected');
    assert.equal(await client.connect(), result, 'connect() when connected resolves with the current session');
  });

  it('a connection cut by the network: disconnected (1006), reconnecting, connecting, connected again', async () => {
    await viaProxy();
    const client = testClient(proxy.url);
    const recorder = new Recorder(client);
    await recorder.until('connected');
    const first = client.session?.client;
    recorder.clear();
    proxy.cut();
    await recorder.until('connected');
    assert.deepEqual(recorder.names(), ['disconnected', 'reconnecting', 'connecting', 'connected']);
    assert.deepEqual(recorder.all('state'), ['disconnected', 'connecting', 'connected']);
    assert.deepEqual(recorder.all<DisconnectedEvent>('disconnected')[0], { code: 1006, reason: '', willReconnect: true });
    assert.equal(recorder.all<ReconnectingEvent>('reconnecting')[0]?.attempt, 1);
    assert.notEqual(client.session?.client, first, 'a new connection');
  });

  it('a server restart on the same port: the disconnect push (1001) sets the delay, and the client comes back', async () => {
    const own = await startTestServer();
    const port = own.port;
    const client = testClient(serverUrl(own));
    const recorder = new Recorder(client);
    await recorder.until('connected');
    recorder.clear();
    await own.close();
    await recorder.until('reconnecting');
    assert.deepEqual(recorder.all<DisconnectedEvent>('disconnected')[0], { code: 1001, reason: 'Server shutting down', willReconnect: true });
    const { delayMs } = recorder.all<ReconnectingEvent>('reconnecting')[0] ?? { delayMs: -1 };
    assert.ok(delayMs >= 0 && delayMs <= 5000, `retryAfterMs from the server's spread window, got ${delayMs}`);
    const again = await startTestServer({ port });
    try {
      await recorder.until('connected', 1, delayMs + 5000);
      assert.equal(client.state, 'connected');
    } finally {
      client.close();
      await again.close();
    }
  });

  it('close(): closed, no reconnect, and connect() starts over', async () => {
    const client = testClient(serverUrl(server));
    const recorder = new Recorder(client);
    await recorder.until('connected');
    client.close();
    assert.equal(client.state, 'closed');
    assert.deepEqual(recorder.names().slice(-2), ['disconnected', 'closed']);
    assert.deepEqual(recorder.all<DisconnectedEvent>('disconnected')[0], { code: 1000, reason: 'client closed', willReconnect: false });
    await settle(100);
    assert.equal(recorder.count('connecting'), 1);
    await client.connect();
    assert.equal(client.state, 'connected');
  });
});

describe('backoff', () => {
  it('delays grow exponentially up to maxDelayMs, jittered within [minDelayMs, min(max, min·2ⁿ)]', async () => {
    await viaProxy();
    proxy.refusing = true;
    const minDelayMs = 10;
    const maxDelayMs = 160;
    const client = testClient(proxy.url, { minDelayMs, maxDelayMs });
    const recorder = new Recorder(client);
    await recorder.until('reconnecting', 8, 10_000);
    const events = recorder.all<ReconnectingEvent>('reconnecting').slice(0, 8);
    assert.deepEqual(events.map((e) => e.attempt), [1, 2, 3, 4, 5, 6, 7, 8]);
    for (const { attempt, delayMs } of events) {
      const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** attempt);
      assert.ok(delayMs >= minDelayMs && delayMs <= ceiling, `attempt ${attempt}: ${delayMs} not in [${minDelayMs}, ${ceiling}]`);
    }
    assert.ok(new Set(events.slice(2).map((e) => e.delayMs)).size > 1, `jittered: ${JSON.stringify(events)}`);
    // Each failed attempt is a connecting → disconnected pair, never a connected.
    assert.equal(recorder.count('connected'), 0);
    assert.ok(recorder.all<DisconnectedEvent>('disconnected').every((e) => e.code === 1006 && e.willReconnect));

    // Once the server is reachable again it connects, and the attempt count starts over.
    proxy.refusing = false;
    await recorder.until('connected', 1, 2000);
    recorder.clear();
    proxy.cut();
    await recorder.until('reconnecting');
    assert.equal(recorder.all<ReconnectingEvent>('reconnecting')[0]?.attempt, 1);
  });

  it('with a fixed random source the delays are exactly the ceilings: 20, 40, 80, 160, 160', async () => {
    await viaProxy();
    proxy.refusing = true;
    const client = testClient(proxy.url, { minDelayMs: 10, maxDelayMs: 160, random: () => 1 });
    const recorder = new Recorder(client);
    await recorder.until('reconnecting', 5, 5000);
    assert.deepEqual(recorder.all<ReconnectingEvent>('reconnecting').slice(0, 5).map((e) => e.delayMs), [20, 40, 80, 160, 160]);
    const times = recorder.events.filter((e) => e.name === 'connecting').map((e) => e.at);
    assert.ok((times[4] ?? 0) - (times[3] ?? 0) >= 150, 'the timer really waits the delay');
  });
});

describe('terminal closes', () => {
  it('an unknown key: close 4001, state closed, no reconnect, pending commands and connect() reject with 204', async () => {
    const client = testClient(serverUrl(server), { key: 'no-such-key-123' });
    const recorder = new Recorder(client);
    const is204 = (error: unknown): boolean => error instanceof ChorusError && error.code === 204 && error.codeName === 'terminal_disconnect' && error.closeCode === 4001;
    const expectations = [client.connect(), client.channel('t1').publish('e', 1), client.channel('t1').subscribe()].map((promise) => assert.rejects(promise, is204));
    await recorder.until('closed');
    assert.equal(client.state, 'closed');
    await Promise.all(expectations);
    assert.deepEqual(recorder.all<DisconnectedEvent>('disconnected'), [{ code: 4001, reason: 'Unknown api key', willReconnect: false }]);
    assert.equal(recorder.all<ChorusError>('error')[0]?.code, 204);
    await settle(150);
    assert.equal(recorder.count('reconnecting'), 0);
    assert.equal(recorder.count('connecting'), 1);
  });

  it('a refused token: error event 101, close 4003, closed; connect() rejects with the 101', async () => {
    const client = testClient(serverUrl(server), { key: OTHER_APP.key, token: 'not.a.jwt', autoConnect: false });
    const recorder = new Recorder(client);
    await assert.rejects(client.connect(), (error: unknown) => error instanceof ChorusError && error.code === 101 && error.codeName === 'unauthorized');
    assert.equal(client.state, 'closed');
    const errors = recorder.all<ChorusError>('error');
    assert.deepEqual(
      errors.map((e) => e.code),
      [101, 204],
    );
    assert.equal(errors[1]?.closeCode, 4003);
    assert.equal(recorder.count('reconnecting'), 0);
  });

  it('getToken is called on every connect and reconnect', async () => {
    await viaProxy();
    let calls = 0;
    const client = testClient(proxy.url, {
      key: OTHER_APP.key,
      getToken: () => {
        calls++;
        return connectionToken(`user-${calls}`, {}, 'chorus:connection', OTHER_APP.secret);
      },
    });
    const recorder = new Recorder(client);
    await recorder.until('connected');
    assert.equal(client.session?.user, 'user-1');
    proxy.cut();
    await recorder.until('connected', 2);
    assert.equal(calls, 2);
    assert.equal(client.session?.user, 'user-2');
  });

  it('a getToken that fails is reported and retried with backoff', async () => {
    let calls = 0;
    const client = testClient(serverUrl(server), {
      key: OTHER_APP.key,
      getToken: () => {
        calls++;
        if (calls < 3) return Promise.reject(new Error('backend down'));
        return connectionToken('carol', {}, 'chorus:connection', OTHER_APP.secret);
      },
    });
    const recorder = new Recorder(client);
    await recorder.until('connected');
    assert.equal(client.session?.user, 'carol');
    assert.deepEqual(recorder.all<ReconnectingEvent>('reconnecting').map((e) => e.attempt), [1, 2]);
    assert.ok(recorder.all<ChorusError>('error').every((e) => /getToken\(\) failed: backend down/.test(e.message)));
  });
});

describe('dead connections', () => {
  it('silence beyond pingIntervalMs + margin sends a ping; no reply within pingTimeoutMs drops the socket and reconnects', async () => {
    await viaProxy();
    const client = testClient(proxy.url, { pingIntervalMs: 100, pingMarginMs: 50, pingTimeoutMs: 150 });
    const recorder = new Recorder(client);
    await recorder.until('connected');
    // A live but quiet connection survives several ping rounds.
    await settle(500);
    assert.equal(recorder.count('disconnected'), 0);
    const publish = client.channel('dead1').publish('e', 'survives');
    await publish;
    proxy.freeze();
    const started = Date.now();
    await recorder.until('disconnected');
    const elapsed = Date.now() - started;
    assert.deepEqual(recorder.all<DisconnectedEvent>('disconnected')[0], { code: 1006, reason: 'no reply to ping', willReconnect: true });
    assert.ok(elapsed >= 150 && elapsed < 1500, `dropped after ${elapsed} ms`);
    await recorder.until('connected', 2);
  });

  it('a socket that never answers the upgrade is given up after connectTimeoutMs', async () => {
    await viaProxy();
    proxy.hanging = true;
    const client = testClient(proxy.url, { connectTimeoutMs: 200 });
    const recorder = new Recorder(client);
    await recorder.until('disconnected', 1, 3000);
    assert.deepEqual(recorder.all<DisconnectedEvent>('disconnected')[0], { code: 1006, reason: 'connect timeout', willReconnect: true });
    await recorder.until('reconnecting');
    assert.equal(await promiseState(client.connect()), 'pending');
    proxy.hanging = false;
    await recorder.until('connected', 1, 3000);
  });
});
