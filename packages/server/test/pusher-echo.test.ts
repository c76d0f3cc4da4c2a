/**
 * Laravel Echo (v2, `broadcaster: 'pusher'`, pusher-js passed in) in Node against Chorus, as a
 * Laravel app uses it: events triggered by the backend as `App\Events\…`, private channels
 * authorized by the app's auth endpoint (`authEndpoint`), presence with here/joining/leaving,
 * and whispers (client events) between two Echo instances.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Echo from 'laravel-echo';
import { settle, withTimeout } from './helpers.ts';
import { PUSHER_APP, PusherRig, connectedOf, eventually } from './pusher-helpers.ts';
import { Pusher } from './pusher-js.ts';

let rig: PusherRig;
before(async () => {
  rig = await PusherRig.start();
});
after(() => rig.close());

/** An Echo instance as a Laravel page makes one; `user` is who the auth endpoint signs for. */
async function echoFor(user: string, params: Record<string, string> = {}): Promise<Echo<'pusher'>> {
  const echo = new Echo({
    broadcaster: 'pusher',
    key: PUSHER_APP.key,
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: rig.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    // laravel-echo's .d.ts types this as pusher-js's default export, which is the module under NodeNext.
    Pusher: Pusher as never,
    authEndpoint: rig.authUrl,
    auth: { headers: { 'X-User': user }, params },
  });
  rig.track(echo.connector.pusher as never);
  await connectedOf(echo.connector.pusher as never);
  return echo;
}

function once<T>(register: (resolve: (value: T) => void) => void, what: string): Promise<T> {
  return withTimeout(new Promise<T>((resolve) => register(resolve)), 5000, what);
}

describe('Laravel Echo with the pusher broadcaster', () => {
  it(".channel('orders').listen('OrderShipped') receives App\\Events\\OrderShipped from the backend; toOthers' socket id is excluded", async () => {
    const [echo, sender] = [await echoFor('1'), await echoFor('2')];
    const shipped = once<unknown>((resolve) => echo.channel('orders').listen('OrderShipped', resolve), 'OrderShipped');
    const atSender: unknown[] = [];
    sender.channel('orders').listen('OrderShipped', (e: unknown) => atSender.push(e));
    await Promise.all([echo, sender].map((e) => once((resolve) => e.channel('orders').subscribed(resolve), 'subscribed')));
    // Laravel's broadcast(...)->toOthers() sends the X-Socket-Id it got from Echo as socket_id.
    await rig.backend().trigger('orders', 'App\\Events\\OrderShipped', { order: { id: 42 } }, { socket_id: sender.socketId() });
    assert.deepEqual(await shipped, { order: { id: 42 } });
    await settle();
    assert.deepEqual(atSender, []);
  });

  it(".private('App.Models.User.1') is authorized at authEndpoint as private-App.Models.User.1; a forged signature reaches .error()", async () => {
    const echo = await echoFor('1');
    const channel = echo.private('App.Models.User.1');
    const note = once<unknown>((resolve) => channel.listen('.invoice.paid', resolve), 'invoice.paid');
    await once((resolve) => channel.subscribed(resolve), 'private subscribed');
    const auth = rig.authRequests.find((r) => r.channel === 'private-App.Models.User.1');
    assert.equal(auth?.user, '1', 'Echo sent its auth headers');
    assert.equal(auth?.socketId, echo.socketId());
    await rig.backend().trigger('private-App.Models.User.1', 'invoice.paid', { amount: 10 });
    assert.deepEqual(await note, { amount: 10 });

    const forger = await echoFor('2', { sign: 'wrong' });
    const refused = await once<{ status?: number; error?: string }>((resolve) => forger.private('App.Models.User.1').error(resolve), '.error()');
    assert.equal(refused.status, 401);
    assert.match(refused.error ?? '', /Invalid signature/);
  });

  it(".join('room'): here() lists who is there, joining() and leaving() across two Echo instances", async () => {
    const first = await echoFor('taylor');
    const here = once<unknown[]>((resolve) => first.join('room').here(resolve), 'here');
    assert.deepEqual(await here, [{ name: 'taylor' }]);
    const joined: unknown[] = [];
    const left: unknown[] = [];
    first.join('room').joining((user: unknown) => joined.push(user)).leaving((user: unknown) => left.push(user));

    const second = await echoFor('abigail');
    const hereAtSecond = await once<Array<{ name: string }>>((resolve) => second.join('room').here(resolve), 'here at second');
    assert.deepEqual(hereAtSecond.map((u) => u.name).sort(), ['abigail', 'taylor']);
    await eventually(() => joined.length === 1, 'joining');
    assert.deepEqual(joined, [{ name: 'abigail' }]);

    second.leave('room');
    await eventually(() => left.length === 1, 'leaving');
    assert.deepEqual(left, [{ name: 'abigail' }]);
  });

  it('.whisper() reaches .listenForWhisper() on the other instance, not the whisperer', async () => {
    const [a, b] = [await echoFor('1'), await echoFor('2')];
    const [atA, atB] = [a.private('chat.5'), b.private('chat.5')];
    await Promise.all([once((r) => atA.subscribed(r), 'a'), once((r) => atB.subscribed(r), 'b')]);
    const ownEcho: unknown[] = [];
    atA.listenForWhisper('typing', (e: unknown) => ownEcho.push(e));
    const typing = once<unknown>((resolve) => atB.listenForWhisper('typing', resolve), 'whisper');
    atA.whisper('typing', { name: 'alice' });
    assert.deepEqual(await typing, { name: 'alice' });

    const inRoom = [a.join('chat-room.5'), b.join('chat-room.5')];
    await Promise.all(inRoom.map((channel, i) => once((r) => channel.here(r), `here ${i}`)));
    const presenceWhisper = once<unknown>((resolve) => inRoom[1]?.listenForWhisper('typing', resolve), 'presence whisper');
    inRoom[0]?.whisper('typing', { name: 'alice', room: true });
    assert.deepEqual(await presenceWhisper, { name: 'alice', room: true });
    await settle();
    assert.deepEqual(ownEcho, []);
  });
});
