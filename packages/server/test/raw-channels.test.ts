/** The raw (PieSocket-compatible) dialect against real `ws` clients. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import type { ChorusServer } from '../src/index.ts';
import { OTHER_APP, TEST_APP, TestClient, rawUrl, settle, startTestServer } from './helpers.ts';

let server: ChorusServer;
const clients: TestClient[] = [];

async function open(channel: string, query = `api_key=${TEST_APP.key}`, options?: ConstructorParameters<typeof TestClient>[1]): Promise<TestClient> {
  const client = await TestClient.open(rawUrl(server, channel, query), options);
  clients.push(client);
  return client;
}

function channelToken(channel: string, claims: Record<string, unknown> = {}, expiresIn: string | number = '1h', secret: string = TEST_APP.secret): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(channel).setExpirationTime(expiresIn).sign(new TextEncoder().encode(secret));
}

before(async () => {
  // The relay tests send bursts of a few hundred frames: above the default burst of 200.
  server = await startTestServer({ limits: { messageBurst: 1000 } });
});
after(async () => {
  for (const client of clients) client.ws.terminate();
  await server.close();
});

describe('relay', () => {
  it('delivers text as text and binary as binary, byte for byte and in order, to the other connections', async () => {
    const sender = await open('relay_1');
    const receiver = await open('relay_1');
    const binary = Buffer.from([0, 1, 2, 253, 254, 255]);
    const unicode = 'héllo wörld ✓ 🎉';
    sender.ws.send('first');
    sender.ws.send(binary);
    sender.ws.send(unicode);
    for (let i = 0; i < 200; i++) sender.ws.send(`n${i}`);
    const got = await receiver.messages(203);
    assert.deepEqual(got.slice(0, 3).map((m) => [m.binary, m.data]), [[false, Buffer.from('first')], [true, binary], [false, Buffer.from(unicode)]]);
    assert.deepEqual(got.slice(3).map((m) => m.text), Array.from({ length: 200 }, (_, i) => `n${i}`));
    await settle();
    assert.equal(sender.received.length, 0, 'sender must not get its own messages without notify_self');
  });

  it('a client that gets some messages alone and some with others, in the same turns, gets each sender\'s in order, text and binary', async () => {
    // The reader's own messages come back (notify_self) as frames shared with the other member;
    // the writer's reach the reader alone, queued as payloads framed at the flush. Both kinds
    // interleave in the reader's queue whenever the two writes land in one turn.
    const reader = await open('relay_mixed', `api_key=${TEST_APP.key}&notify_self`);
    const writer = await open('relay_mixed');
    const count = 300;
    const body = (from: string, index: number): Buffer => Buffer.from(`${from}${index}:${'x'.repeat(index % 3 === 0 ? 200 : index % 7)}`);
    for (let index = 0; index < count; index++) {
      writer.ws.send(index % 5 === 0 ? body('w', index) : body('w', index).toString());
      reader.ws.send(body('r', index).toString());
    }
    const got = await reader.messages(2 * count);
    const from = (prefix: string): { binary: boolean; data: Buffer }[] => got.filter((m) => m.text.startsWith(prefix)).map((m) => ({ binary: m.binary, data: m.data }));
    assert.deepEqual(from('w'), Array.from({ length: count }, (_, index) => ({ binary: index % 5 === 0, data: body('w', index) })), "the writer's messages, in order");
    assert.deepEqual(from('r'), Array.from({ length: count }, (_, index) => ({ binary: false, data: body('r', index) })), 'its own, in order');
    assert.equal((await writer.messages(count)).length, count);
  });

  it('echoes to the sender with notify_self, bare or =1 or =true, and not with =0 or =false', async () => {
    for (const flag of ['notify_self', 'notify_self=1', 'notify_self=true', 'notify_self=0', 'notify_self=false']) {
      const client = await open('echo_1', `api_key=${TEST_APP.key}&${flag}`);
      client.ws.send(`ping ${flag}`);
      const expectEcho = !flag.endsWith('=0') && !flag.endsWith('=false');
      if (expectEcho) assert.equal((await client.messages(1))[0]?.text, `ping ${flag}`);
      else {
        await settle();
        assert.equal(client.received.length, 0, flag);
      }
      client.close();
      await client.closed();
    }
  });

  it('delivers what was queued for a client before answering its close', async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const client = await open('echo_close', `api_key=${TEST_APP.key}&notify_self`);
      client.ws.send(`last words ${attempt}`);
      client.ws.close(1000, 'bye');
      assert.deepEqual(await client.closed(), { code: 1000, reason: 'bye' });
      assert.deepEqual(client.received.map((m) => m.text), [`last words ${attempt}`]);
    }
  });

  it('relays frames whose event starts with system: like any other frame', async () => {
    const a = await open('sys_1');
    const b = await open('sys_1');
    const frame = JSON.stringify({ event: 'system:member_joined', data: { fake: true } });
    a.ws.send(frame);
    assert.equal((await b.messages(1))[0]?.text, frame);
  });

  it('keeps channels apart, and apps apart even on equal channel names', async () => {
    const a = await open('iso_1');
    const sameAppOtherChannel = await open('iso_2');
    const otherAppSameChannel = await open('iso_1', `api_key=${OTHER_APP.key}`);
    const b = await open('iso_1');
    a.ws.send('only for iso_1 of test app');
    await b.messages(1);
    await settle();
    assert.equal(sameAppOtherChannel.received.length, 0);
    assert.equal(otherAppSameChannel.received.length, 0);
  });

  it('serves /v3 like /v4', async () => {
    const v3 = await TestClient.open(`ws://127.0.0.1:${server.port}/v3/ver_1?api_key=${TEST_APP.key}`);
    clients.push(v3);
    const v4 = await open('ver_1');
    v3.ws.send('from v3');
    assert.equal((await v4.messages(1))[0]?.text, 'from v3');
  });

  it('sends system:boot first when asked with be=1', async () => {
    const client = await open('boot_1', `api_key=${TEST_APP.key}&be=1`);
    assert.deepEqual(JSON.parse((await client.messages(1))[0]?.text ?? ''), { event: 'system:boot' });
  });
});

describe('refusals', () => {
  it('unknown api key: {"error":"Unknown api key"} then close 4001', async () => {
    const client = new TestClient(rawUrl(server, 'x', 'api_key=nope'));
    assert.equal((await client.messages(1))[0]?.text, '{"error":"Unknown api key"}');
    assert.deepEqual(await client.closed(), { code: 4001, reason: 'Unknown api key' });
  });

  it('missing api key is an unknown key', async () => {
    const client = new TestClient(rawUrl(server, 'x', ''));
    assert.deepEqual(await client.closed(), { code: 4001, reason: 'Unknown api key' });
  });

  // Pusher's name rule in every dialect (Laravel's private-App.Models.User.1 is a channel).
  for (const bad of ['has%20space', 'hash%23tag', 'x'.repeat(201), '%E2%9C%93']) {
    it(`invalid channel name ${bad.slice(0, 20)}: error frame then close 4002`, async () => {
      const client = new TestClient(rawUrl(server, bad));
      assert.equal((await client.messages(1))[0]?.text, '{"error":"Invalid channel name"}');
      assert.equal((await client.closed()).code, 4002);
    });
  }

  it('a user parameter over 1024 characters is refused with 4004', async () => {
    const client = new TestClient(rawUrl(server, 'c', `api_key=${TEST_APP.key}&user=${'u'.repeat(1025)}`));
    assert.equal((await client.closed()).code, 4004);
  });

  it('a non-WebSocket request to a WebSocket path gets 426 with a JSON error', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v4/channel_1?api_key=${TEST_APP.key}`);
    assert.equal(res.status, 426);
    assert.equal(((await res.json()) as { code: string }).code, 'upgrade_required');
  });

  it('an upgrade on an unknown path gets 404', async () => {
    const client = new TestClient(`ws://127.0.0.1:${server.port}/nope/channel`);
    await assert.rejects(client.opened(), /Unexpected server response: 404/);
  });
});

describe('presence', () => {
  it('member_list on join, member_joined and member_left with the full roster', async () => {
    const alice = await open('presence_1', `api_key=${TEST_APP.key}&presence=1&user=alice&uuid=uuid-a`);
    await alice.until(() => alice.events('system:member_list').length === 1, 'member_list');
    assert.deepEqual(alice.events('system:member_list')[0]?.data, { members: [{ user: 'alice', uuid: 'uuid-a' }] });

    const bob = await open('presence_1', `api_key=${TEST_APP.key}&presence=true&user=bob&uuid=uuid-b`);
    await bob.until(() => bob.events('system:member_list').length === 1, 'member_list');
    const roster = [{ user: 'alice', uuid: 'uuid-a' }, { user: 'bob', uuid: 'uuid-b' }];
    assert.deepEqual(bob.events('system:member_list')[0]?.data, { members: roster });
    await alice.until(() => alice.events('system:member_joined').length === 1, 'member_joined');
    assert.deepEqual(alice.events('system:member_joined')[0]?.data, { member: { user: 'bob', uuid: 'uuid-b' }, members: roster });
    assert.equal(bob.events('system:member_joined').length, 0, 'a joiner is not told about itself');

    bob.close();
    await alice.until(() => alice.events('system:member_left').length === 1, 'member_left');
    assert.deepEqual(alice.events('system:member_left')[0]?.data, { member: { user: 'bob', uuid: 'uuid-b' }, members: [roster[0]] });
  });

  it('presence- channels turn presence on; a missing uuid is generated; user is URL-decoded', async () => {
    const user = encodeURIComponent(JSON.stringify({ name: 'Zoë' }));
    const client = await open('presence-room_2', `api_key=${TEST_APP.key}&user=${user}`);
    await client.until(() => client.events('system:member_list').length === 1, 'member_list');
    const members = (client.events('system:member_list')[0]?.data as { members: Array<{ user: string; uuid: string }> }).members;
    assert.equal(members[0]?.user, '{"name":"Zoë"}');
    assert.match(members[0]?.uuid ?? '', /^[0-9a-f-]{36}$/);
  });

  it('connections without presence neither receive presence events nor appear in the roster', async () => {
    const quiet = await open('presence_3');
    const member = await open('presence_3', `api_key=${TEST_APP.key}&presence=1&user=m`);
    await member.until(() => member.events('system:member_list').length === 1, 'member_list');
    assert.deepEqual(member.events('system:member_list')[0]?.data, { members: [{ user: 'm', uuid: (member.events('system:member_list')[0]?.data as { members: Array<{ uuid: string }> }).members[0]?.uuid }] });
    await settle();
    assert.equal(quiet.received.length, 0);
  });
});

describe('private channels', () => {
  it('accept a valid JWT in the query and take the member user from its user claim', async () => {
    const token = await channelToken('private-room_1', { user: 'carol' });
    const client = await open('private-room_1', `api_key=${TEST_APP.key}&presence=1&user=ignored&jwt=${token}`);
    await client.until(() => client.events('system:member_list').length === 1, 'member_list');
    assert.equal((client.events('system:member_list')[0]?.data as { members: Array<{ user: string }> }).members[0]?.user, 'carol');
  });

  it('accept a valid JWT in the jwt header', async () => {
    const token = await channelToken('private-room_2');
    const a = await open('private-room_2', `api_key=${TEST_APP.key}`, { headers: { jwt: token } });
    const b = await open('private-room_2', `api_key=${TEST_APP.key}&jwt=${token}`);
    a.ws.send('secret hello');
    assert.equal((await b.messages(1))[0]?.text, 'secret hello');
  });

  const refusals: Array<[string, () => Promise<string | undefined>]> = [
    ['no token', () => Promise.resolve(undefined)],
    ['a token for another channel', () => channelToken('private-other')],
    ['an expired token', () => channelToken('private-room_3', {}, Math.floor(Date.now() / 1000) - 60)],
    ['a token signed with another secret', () => channelToken('private-room_3', {}, '1h', OTHER_APP.secret)],
    ['a token without exp', () => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('private-room_3').sign(new TextEncoder().encode(TEST_APP.secret))],
    ['an alg=none token', () => Promise.resolve(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'private-room_3', exp: 9999999999 })).toString('base64url')}.`)],
    ['garbage', () => Promise.resolve('not.a.jwt')],
  ];
  for (const [name, makeToken] of refusals) {
    it(`refuse ${name} with PieSocket's error text and close 4003`, async () => {
      const token = await makeToken();
      const client = new TestClient(rawUrl(server, 'private-room_3', `api_key=${TEST_APP.key}${token ? `&jwt=${token}` : ''}`));
      assert.equal((await client.messages(1))[0]?.text, '{"error":"Authentication failed, provide valid jwt token."}');
      assert.deepEqual(await client.closed(), { code: 4003, reason: 'Authentication failed' });
    });
  }

  it('a bad token is refused on a public channel too', async () => {
    const client = new TestClient(rawUrl(server, 'public_1', `api_key=${TEST_APP.key}&jwt=garbage`));
    assert.equal((await client.closed()).code, 4003);
  });
});

describe('origin allow-list', () => {
  let strict: ChorusServer;
  before(async () => {
    strict = await startTestServer({
      apps: [{ ...TEST_APP, allowedOrigins: ['https://app.example.com', 'https://*.example.org'] }],
    });
  });
  after(() => strict.close());

  const cases: Array<[string, boolean]> = [
    ['https://app.example.com', true],
    ['https://APP.example.com:443', true],
    ['https://eu.example.org', true],
    ['https://a.b.example.org', true],
    ['https://example.org', false],
    ['http://app.example.com', false],
    ['https://evil.com', false],
    ['https://app.example.com.evil.com', false],
    ['null', false],
  ];
  for (const [origin, allowed] of cases) {
    it(`${allowed ? 'accepts' : 'refuses with HTTP 403'} Origin ${origin}`, async () => {
      const client = new TestClient(rawUrl(strict, 'o_1'), { origin });
      if (allowed) {
        await client.opened();
        client.ws.terminate();
      } else {
        await assert.rejects(client.opened(), /Unexpected server response: 403/);
        assert.equal(client.ws.readyState, client.ws.CLOSED);
      }
    });
  }
});
