/** Connection tokens that expire while connected: the SDK refreshes them in-band, so the connection never drops. */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { ChorusServer } from '../../server/src/index.ts';
import { closeClients, connectionToken, serverUrl, settle, startTestServer, testClient } from './helpers.ts';

let server: ChorusServer;
before(async () => {
  server = await startTestServer({ tokenGraceMs: 300 });
});
after(async () => {
  closeClients();
  await server.close();
});

it('refreshes a token before it expires, through getToken, without reconnecting', async () => {
  const issued: number[] = [];
  const getToken = async (): Promise<string> => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    issued.push(exp);
    return connectionToken('alice', { exp });
  };
  const client = testClient(serverUrl(server), { getToken });
  const disconnects: number[] = [];
  client.on('disconnected', (event) => disconnects.push(event.code));
  const session = await client.connect();
  assert.equal(typeof session.expiresAt, 'number');
  // Each 2-second token is replaced halfway through its life, again and again, never in a storm.
  await settle(3500);
  assert.ok(issued.length >= 3 && issued.length <= 6, `getToken called ${issued.length} times`);
  assert.deepEqual(disconnects, [], 'the connection never dropped');
  assert.equal(client.state, 'connected');
  assert.ok((client.session?.expiresAt ?? 0) >= (issued.at(-2) ?? 0) * 1000, 'the session knows the refreshed expiry');
  const ch = client.channel('refreshing');
  await ch.subscribe();
  assert.equal((await ch.publish('still', 'here')).offset, 1);
});

it('without getToken the server closes an expired connection with 4503 and the SDK reports it', async () => {
  const token = await connectionToken('bob', { exp: Math.floor(Date.now() / 1000) + 1 });
  const client = testClient(serverUrl(server), { token });
  const codes: number[] = [];
  client.on('disconnected', (event) => codes.push(event.code));
  await client.connect();
  await settle(2500);
  assert.equal(codes[0], 4503);
});
