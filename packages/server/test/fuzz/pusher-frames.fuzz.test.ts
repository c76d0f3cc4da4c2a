/**
 * Fuzzed Pusher protocol 7 frames: per case one connection on `/app/{key}?protocol=7`, a few
 * fuzzed frames (pusher:subscribe with signed, badly signed and malformed auth on every channel
 * kind, presence channel_data, pusher:signin, client events, unknown events, JSON that is not an
 * object, text that is not JSON, binary, invalid UTF-8), then pusher:ping. Every server frame is
 * a Pusher frame; errors carry documented codes (or null); a subscription signed right succeeds
 * (a presence one lists its member), one signed wrong is refused with AuthError 401; closes are
 * documented codes after their pusher:error; the final ping is answered unless closed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { isValidChannelName } from '../../src/dialects/pusher/names.ts';
import { channelAuthSignature, userAuthSignature } from '../../src/dialects/pusher/signatures.ts';
import { TEST_APP, wsBase } from '../helpers.ts';
import { PUSHER_CLOSE_CODES, deeplyNested, fuzz, startFuzzServer, wsCase, type FuzzServer } from './harness.ts';

type Auth = 'valid' | 'bad-signature' | 'wrong-key' | 'malformed' | 'none';

/** Keys that are special on plain objects: a user id must survive them in a presence roster. */
const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
const NAME_CHARS = [...'abcXYZ019_-=@,.;'];
const name = fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 1, maxLength: 20 });
const channel = fc.oneof(
  fc.tuple(fc.constantFrom('', 'private-', 'presence-', 'private-encrypted-', 'cache-', 'presence-cache-', '#server-to-user-'), name).map(([prefix, n]) => prefix + n),
  fc.constantFrom('', 'a b', 'x'.repeat(201), 'private-', 'presence-', '#server-to-user-', 'é'),
);
const anything = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 30 }));
const userId = fc.oneof(name, fc.integer(), fc.constantFrom(...PROTOTYPE_KEYS), fc.string({ maxLength: 12 }));

type Frame =
  | { kind: 'subscribe'; channel: string; auth: Auth; channelData: string | undefined; dataAsString: boolean }
  | { kind: 'unsubscribe'; channel: unknown }
  | { kind: 'signin'; userData: string; auth: Auth }
  | { kind: 'client'; event: string; channel: unknown; data: unknown }
  | { kind: 'text'; text: string }
  /** Data thousands of levels deep, in a client event on a channel it subscribes first, or in presence user_info. */
  | { kind: 'deep'; where: 'client-event' | 'user_info'; depth: number }
  | { kind: 'binary'; bytes: Buffer }
  | { kind: 'invalid-utf8' };

const auth = fc.constantFrom<Auth>('valid', 'valid', 'valid', 'bad-signature', 'wrong-key', 'malformed', 'none');
const channelData = fc.oneof(
  fc.record({ user_id: userId, user_info: fc.option(anything, { nil: undefined }) }, { requiredKeys: ['user_id'] }).map((d) => JSON.stringify(d)),
  fc.string({ maxLength: 20 }),
);

const frame: fc.Arbitrary<Frame> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('subscribe' as const), channel, auth, channelData: fc.option(channelData, { nil: undefined }), dataAsString: fc.boolean() }), weight: 8 },
  { arbitrary: fc.record({ kind: fc.constant('unsubscribe' as const), channel: fc.oneof(channel, anything) }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('signin' as const),
      userData: fc.oneof(fc.record({ id: userId, watchlist: fc.option(fc.oneof(fc.array(name, { maxLength: 120 }), anything), { nil: undefined }) }).map((d) => JSON.stringify(d)), fc.string({ maxLength: 20 })),
      auth,
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('client' as const), event: fc.oneof(fc.constant('client-x'), fc.string({ maxLength: 12 }).map((s) => `client-${s}`), fc.constant(`client-${'e'.repeat(200)}`)), channel: fc.oneof(channel, anything), data: anything }), weight: 3 },
  { arbitrary: fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ maxLength: 30 }), fc.constantFrom('{"event":"pusher:ping"}', '{"event":"pusher:pong"}', '{"event":"nope"}', '{"event":7}', '{"event":"pusher:subscribe","data":"{\\"channel\\":"}')).map((text) => ({ kind: 'text' as const, text })), weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 20 }).map((bytes) => ({ kind: 'binary' as const, bytes: Buffer.from(bytes) })), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('deep' as const), where: fc.constantFrom('client-event' as const, 'user_info' as const), depth: fc.integer({ min: 3000, max: 15_000 }) }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'invalid-utf8' as const }), weight: 1 },
);

function signed(kind: Auth, sign: () => string): string | undefined {
  switch (kind) {
    case 'valid':
      return sign();
    case 'bad-signature':
      return `${TEST_APP.key}:${'ab'.repeat(32)}`;
    case 'wrong-key':
      return `other-key:${sign().split(':')[1] ?? ''}`;
    case 'malformed':
      return sign().replace(':', '');
    case 'none':
      return undefined;
  }
}

function textOf(f: Frame, socketId: string): string | Buffer | string[] {
  switch (f.kind) {
    case 'subscribe': {
      const data = { channel: f.channel, auth: signed(f.auth, () => channelAuthSignature(TEST_APP, socketId, f.channel, f.channel.startsWith('presence-') ? f.channelData : undefined)), channel_data: f.channelData };
      return JSON.stringify({ event: 'pusher:subscribe', data: f.dataAsString ? JSON.stringify(data) : data });
    }
    case 'unsubscribe':
      return JSON.stringify({ event: 'pusher:unsubscribe', data: { channel: f.channel } });
    case 'signin':
      return JSON.stringify({ event: 'pusher:signin', data: { user_data: f.userData, auth: signed(f.auth, () => userAuthSignature(TEST_APP, socketId, f.userData)) } });
    case 'client':
      return JSON.stringify({ event: f.event, channel: f.channel, data: f.data });
    case 'text':
      return f.text;
    case 'deep': {
      if (f.where === 'client-event') {
        const channel = 'private-deep';
        const subscribe = JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth: channelAuthSignature(TEST_APP, socketId, channel) } });
        return [subscribe, `{"event":"client-deep","channel":"${channel}","data":${deeplyNested(f.depth)}}`];
      }
      const channel = 'presence-deep';
      const channelData = `{"user_id":"deep","user_info":${deeplyNested(f.depth)}}`;
      return [JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth: channelAuthSignature(TEST_APP, socketId, channel, channelData), channel_data: channelData } })];
    }
    case 'binary':
      return f.bytes;
    case 'invalid-utf8':
      return Buffer.of(0x7b, 0xc0, 0x80, 0x7d);
  }
}

/** What the first subscription to a channel must get, when this test can tell. */
function expectedSubscription(f: Extract<Frame, { kind: 'subscribe' }>): 'succeeded' | 'AuthError' | undefined {
  if (!isValidChannelName(f.channel) || f.channel.startsWith('#server-to-user-')) return undefined;
  if (!f.channel.startsWith('private-') && !f.channel.startsWith('presence-')) return 'succeeded';
  if (f.auth !== 'valid' || (f.channel.startsWith('presence-') && f.channelData === undefined)) return 'AuthError';
  if (f.channel.startsWith('presence-')) return isUsableChannelData(f.channelData) ? 'succeeded' : undefined;
  return 'succeeded';
}

function isUsableChannelData(text: string | undefined): boolean {
  try {
    const { user_id: id } = JSON.parse(text ?? '') as { user_id?: unknown };
    return (typeof id === 'string' && id !== '') || typeof id === 'number';
  } catch {
    return false;
  }
}

interface ServerFrame {
  event: string;
  channel?: string;
  data: unknown;
}

describe('fuzz: Pusher frames', () => {
  let fuzzed: FuzzServer;
  after(() => fuzzed?.stop());

  it('every frame gets a Pusher answer with documented codes, subscriptions as signed, and the connection ends cleanly', async (t) => {
    fuzzed = await startFuzzServer();
    const events = new Map<string, number>();
    await fuzz(0x5eed_0006, 800, fc.array(frame, { minLength: 1, maxLength: 5 }), async (frames) => {
      const outcome = await wsCase(`${wsBase(fuzzed.server)}/app/${TEST_APP.key}?protocol=7`, async (ws, received) => {
        const established = await new Promise<string>((resolve) => {
          const check = (): void => {
            const first = received[0];
            if (first) resolve((JSON.parse((JSON.parse(first) as { data: string }).data) as { socket_id: string }).socket_id);
          };
          ws.on('message', check);
          check();
        });
        for (const f of frames) {
          const text = textOf(f, established);
          if (Array.isArray(text)) for (const part of text) ws.send(part);
          else ws.send(text, { binary: f.kind === 'binary' });
        }
        ws.send('{"event":"pusher:ping","data":{}}');
        await new Promise<void>((resolve) => {
          const check = (): void => void (received.some((r) => r.startsWith('{"event":"pusher:pong"')) && resolve());
          ws.on('message', check);
          ws.on('close', () => resolve());
          check();
        });
      });
      const replies = outcome.frames.map((text) => JSON.parse(text) as ServerFrame);
      for (const reply of replies) {
        events.set(reply.event, (events.get(reply.event) ?? 0) + 1);
        assert.equal(typeof reply.event, 'string');
        if (reply.event === 'pusher:error') {
          const { code, message } = reply.data as { code: unknown; message: unknown };
          assert.ok(code === null || PUSHER_CLOSE_CODES.has(code as number), `documented pusher:error code: ${JSON.stringify(reply)}`);
          assert.equal(typeof message, 'string');
          assert.ok(!String(message).includes('failed on the server'), `a server failure: ${JSON.stringify(reply)}`);
        }
        if (reply.event === 'pusher:subscription_error') {
          const { type, status } = reply.data as { type: string; status: number };
          assert.ok(['AuthError', 'LimitReached'].includes(type) && [400, 401, 403, 4100].includes(status), `a coded refusal: ${JSON.stringify(reply)}`);
        }
      }
      const closedByServer = outcome.closeCode !== 1000;
      if (closedByServer) {
        const code = outcome.closeCode ?? 0;
        assert.ok(PUSHER_CLOSE_CODES.has(code) || code === 1007, `documented close ${code} (${outcome.closeReason})`);
        if (code >= 4000) assert.ok(replies.some((r) => r.event === 'pusher:error' && (r.data as { code: number }).code === code), `pusher:error ${code} before the close`);
      }
      // Subscriptions as signed: the first subscribe to each channel, when nothing closed the socket.
      const seen = new Set<string>();
      for (const f of frames) {
        if (f.kind !== 'subscribe' || seen.has(f.channel)) continue;
        seen.add(f.channel);
        const expected = expectedSubscription(f);
        // An unsubscribe sent while the subscription is being set up cancels it without an answer.
        const unsubscribed = frames.some((u) => u.kind === 'unsubscribe' && u.channel === f.channel);
        if (expected === undefined || closedByServer || unsubscribed) continue;
        const answer = replies.find((r) => r.channel === f.channel && (r.event === 'pusher_internal:subscription_succeeded' || r.event === 'pusher:subscription_error'));
        if (expected === 'succeeded') {
          assert.equal(answer?.event, 'pusher_internal:subscription_succeeded', `subscribed to ${f.channel}: ${JSON.stringify(answer)}`);
          if (f.channel.startsWith('presence-')) {
            const { user_id: id } = JSON.parse(f.channelData ?? '') as { user_id: string | number };
            const { presence } = JSON.parse(answer?.data as string) as { presence: { ids: string[]; hash: Record<string, unknown>; count: number } };
            assert.ok(presence.ids.includes(String(id)) && Object.hasOwn(presence.hash, String(id)), `the member ${String(id)} is in the roster: ${JSON.stringify(presence)}`);
            assert.equal(presence.count, presence.ids.length);
          }
        } else {
          assert.equal((answer?.data as { type?: string } | undefined)?.type, 'AuthError', `refused ${f.channel}: ${JSON.stringify(answer)}`);
        }
      }
      fuzzed.assertNoErrors();
    }, [
      // Found by this fuzz: the roster was a plain object, so these user ids were not listed.
      // A subscription cancelled by an unsubscribe right after it (npm run fuzz): no answer is due.
      [{ kind: 'subscribe', channel: 'private-', auth: 'valid', channelData: undefined, dataAsString: false }, { kind: 'unsubscribe', channel: 'private-' }] satisfies Frame[],
      // Found by this fuzz: data too deep for JSON.stringify failed on the server (logged as errors).
      [{ kind: 'deep', where: 'client-event', depth: 10_000 } satisfies Frame],
      [{ kind: 'deep', where: 'user_info', depth: 10_000 } satisfies Frame],
      ...['toString', '__proto__', 'constructor'].map((id): Frame[] => [{ kind: 'subscribe', channel: 'presence-', auth: 'valid', channelData: JSON.stringify({ user_id: id }), dataAsString: true }]),
    ]);
    t.diagnostic(`server events: ${JSON.stringify(Object.fromEntries(events))}`);
    await fuzzed.finish((line) => t.diagnostic(line));
  });
});
