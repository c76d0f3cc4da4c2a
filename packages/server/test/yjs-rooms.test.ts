/** Yjs rooms with the real y-websocket provider: sync, the server-kept document, access, limits. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import * as Y from 'yjs';
import { TEST_APP, TestClient, closeAfterwards, wsBase } from './helpers.ts';
import { pusherBackend } from './pusher-helpers.ts';
import { editor, eventually, roomToken, synced, type Editor } from './yjs-helpers.ts';

const { serverWith } = closeAfterwards();
// Each y-websocket provider in Node adds a process 'exit' listener.
process.setMaxListeners(100);
const editors: Editor[] = [];
after(() => {
  for (const e of editors) e.destroy();
});
function track(e: Editor): Editor {
  editors.push(e);
  return e;
}

describe('yjs rooms', () => {
  it('two providers converge, and a late joiner gets the document from the server alone', async () => {
    const server = await serverWith({ yjs: { idleUnloadMs: 50 } });
    const base = `${wsBase(server)}/yjs`;
    const a = track(editor(base, 'notes'));
    const b = track(editor(base, 'notes'));
    await Promise.all([synced(a), synced(b)]);
    a.text.insert(0, 'hello ');
    b.text.insert(0, 'world ');
    await eventually(() => a.text.toJSON() === b.text.toJSON() && a.text.length === 12, 'a and b converge');
    const content = a.text.toJSON();
    const health = (await (await fetch(`http://127.0.0.1:${server.port}/health`)).json()) as { yjs: { rooms: number; documentBytes: number; updates: number } };
    assert.equal(health.yjs.rooms, 1);
    assert.ok(health.yjs.documentBytes >= 12 && health.yjs.updates >= 2, JSON.stringify(health.yjs));
    const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    assert.match(metrics, /^chorus_yjs_rooms\{[^}]*\} 1$/m, 'the room count in /metrics too');
    assert.match(metrics, /^chorus_ws_messages_received_total\{[^}]*dialect="yjs"[^}]*\} [1-9]/m, 'yjs messages counted');
    a.destroy();
    b.destroy();
    // Long enough for the room to be unloaded (idleUnloadMs 50): it comes back from the store.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const late = track(editor(base, 'notes'));
    await synced(late);
    assert.equal(late.text.toJSON(), content);
  });

  it('20 concurrent random editors converge to one document', async () => {
    const server = await serverWith({ apps: [{ ...TEST_APP, limits: { messagesPerSecond: 0 } }] });
    const base = `${wsBase(server)}/yjs`;
    const crowd = Array.from({ length: 20 }, () => track(editor(base, 'crowd')));
    await Promise.all(crowd.map((e) => synced(e)));
    for (let round = 0; round < 10; round++) {
      for (const [i, e] of crowd.entries()) {
        const length = e.text.length;
        if (length > 5 && Math.random() < 0.3) e.text.delete(Math.floor(Math.random() * (length - 2)), 2);
        else e.text.insert(Math.floor(Math.random() * (length + 1)), `${i}.`);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually(() => crowd.every((e) => e.text.toJSON() === crowd[0]?.text.toJSON()), '20 editors converge');
    const late = track(editor(base, 'crowd'));
    await synced(late);
    await eventually(() => late.text.toJSON() === crowd[0]?.text.toJSON(), 'the server document equals the editors\'');
    assert.ok(late.text.length > 0);
  });

  it('shows awareness across clients and removes a client\'s state when it leaves', async () => {
    const server = await serverWith();
    const base = `${wsBase(server)}/yjs`;
    const a = track(editor(base, 'cursors'));
    const b = track(editor(base, 'cursors'));
    await Promise.all([synced(a), synced(b)]);
    a.provider.awareness.setLocalStateField('user', { name: 'Ada' });
    await eventually(() => (b.provider.awareness.getStates().get(a.doc.clientID) as { user?: { name: string } } | undefined)?.user?.name === 'Ada', 'b sees Ada');
    a.provider.disconnect();
    await eventually(() => !b.provider.awareness.getStates().has(a.doc.clientID), 'Ada\'s state removed at b');
  });

  it('a read-only token syncs and shows awareness, but its updates are refused', async () => {
    const server = await serverWith();
    const base = `${wsBase(server)}/yjs`;
    const writer = track(editor(base, 'private-report', { token: await roomToken('private-report', 'read-write') }));
    await synced(writer);
    writer.text.insert(0, 'draft');
    const reader = track(editor(base, 'private-report', { token: await roomToken('private-report', 'read-only') }));
    await synced(reader);
    await eventually(() => reader.text.toJSON() === 'draft', 'the reader syncs');
    // y-websocket hands y-protocols' permission-denied message to console.warn.
    const denied: string[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => void denied.push(args.map(String).join(' '));
    after(() => (console.warn = warn));
    reader.text.insert(0, 'HACKED ');
    await eventually(() => denied.some((text) => text.includes('read-only')), 'the reader is told its update was refused');
    console.warn = warn;
    reader.provider.awareness.setLocalStateField('user', { name: 'Reader' });
    await eventually(() => writer.provider.awareness.getStates().has(reader.doc.clientID), 'the writer sees the reader\'s awareness');
    writer.text.insert(5, '!');
    await eventually(() => reader.text.toJSON().includes('draft!'), 'the reader keeps receiving');
    assert.equal(writer.text.toJSON(), 'draft!');
    const fresh = track(editor(base, 'private-report', { token: await roomToken('private-report') }));
    await synced(fresh);
    assert.equal(fresh.text.toJSON(), 'draft!', 'the server did not store the read-only update');
  });

  it('refuses a private room without a token, a bad token, a bad access claim, a bad key and a bad name', async () => {
    const server = await serverWith();
    const url = (room: string, query: string): string => `${wsBase(server)}/yjs/${room}?${query}`;
    const cases: Array<[string, number]> = [
      [url('private-x', `key=${TEST_APP.key}`), 4003],
      [url('private-x', `key=${TEST_APP.key}&token=${await roomToken('private-y')}`), 4003],
      [url('doc', `key=${TEST_APP.key}&token=${await roomToken('doc', 'admin')}`), 4003],
      [url('doc', 'key=nope-nope-nope'), 4001],
      [url('bad%20name', `key=${TEST_APP.key}`), 4002],
    ];
    for (const [target, code] of cases) {
      const client = await TestClient.open(target);
      assert.equal((await client.closed()).code, code, target);
    }
  });

  it('a file directory keeps documents across a restart', async () => {
    const directory = (await import('node:fs')).mkdtempSync('/tmp/yjs/store-');
    const first = await serverWith({ yjs: { directory } });
    const a = track(editor(`${wsBase(first)}/yjs`, 'kept'));
    await synced(a);
    a.text.insert(0, 'survives a restart');
    await eventually(() => first.port > 0 && a.provider.wsconnected, 'connected');
    // Wait until the update reached the server: a second editor sees it.
    const probe = track(editor(`${wsBase(first)}/yjs`, 'kept'));
    await synced(probe);
    await eventually(() => probe.text.toJSON() === 'survives a restart', 'stored');
    a.destroy();
    probe.destroy();
    await first.close();
    const second = await serverWith({ yjs: { directory } });
    const b = track(editor(`${wsBase(second)}/yjs`, 'kept'));
    await synced(b);
    assert.equal(b.text.toJSON(), 'survives a restart');
    // An offline edit made before connecting is merged into the stored document.
    const offline = new Y.Doc();
    Y.applyUpdate(offline, Y.encodeStateAsUpdate(b.doc));
    offline.getText('text').insert(0, '» ');
    const c = track(editor(`${wsBase(second)}/yjs`, 'kept', { doc: offline }));
    await synced(c);
    await eventually(() => b.text.toJSON() === '» survives a restart', 'the offline edit merged');
  });

  it('holds awareness to the app\'s limits: maxPresenceMembers states per room (4005), maxMessageSize per frame (1009)', async () => {
    const server = await serverWith({ apps: [{ ...TEST_APP, limits: { maxPresenceMembers: 2, maxMessageSize: 1024 } }] });
    const base = `${wsBase(server)}/yjs`;
    const closes: number[] = [];
    const crowd = [0, 1, 2].map(() => track(editor(base, 'crowded')));
    for (const e of crowd) e.provider.on('connection-close', (event: { code: number } | null) => event && closes.push(event.code));
    await Promise.all(crowd.map((e) => synced(e)));
    for (const [i, e] of crowd.entries()) e.provider.awareness.setLocalStateField('user', { name: `user ${i}` });
    await eventually(() => closes.includes(4005), 'the third state closes with 4005');
    for (const e of crowd) e.provider.disconnect();
    const big = track(editor(base, 'chatty'));
    big.provider.on('connection-close', (event: { code: number } | null) => event && closes.push(event.code));
    await synced(big);
    big.provider.awareness.setLocalStateField('user', { name: 'x'.repeat(2000) });
    await eventually(() => closes.includes(1009), 'an awareness frame over maxMessageSize closes with 1009');
    big.provider.disconnect();
  });

  it('fires webhooks when a room is occupied and vacated (channel yjs:{room}), once per transition', async () => {
    const received: Array<{ name: string; channel: string }> = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push(...(JSON.parse(body) as { events: Array<{ name: string; channel: string }> }).events);
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    after(() => receiver.close());
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const server = await serverWith({
      webhooks: { holdMs: 0, batchMs: 0 },
      apps: [{ ...TEST_APP, webhooks: [{ url, events: ['channel_occupied', 'channel_vacated'], channelPrefix: 'yjs:' }] }],
    });
    const base = `${wsBase(server)}/yjs`;
    const a = track(editor(base, 'watched'));
    const b = track(editor(base, 'watched'));
    await Promise.all([synced(a), synced(b)]);
    await eventually(() => received.length === 1, 'occupied');
    // The room is listed like a channel by the Pusher HTTP API (the admin view of an app).
    const listing = await pusherBackend(TEST_APP, server.port).get({ path: '/channels', params: { filter_by_prefix: 'yjs:' } });
    assert.deepEqual(await listing.json(), { channels: { 'yjs:watched': {} } });
    a.destroy();
    b.destroy();
    await eventually(() => received.length === 2, 'vacated');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(received, [
      { name: 'channel_occupied', channel: 'yjs:watched' },
      { name: 'channel_vacated', channel: 'yjs:watched' },
    ]);
  });

  it('refuses an update that would grow the document past yjs.maxDocumentBytes with 4021', async () => {
    const server = await serverWith({ yjs: { maxDocumentBytes: 4096 } });
    const a = track(editor(`${wsBase(server)}/yjs`, 'big'));
    await synced(a);
    const closes: number[] = [];
    a.provider.on('connection-close', (event: { code: number } | null) => {
      if (event) closes.push(event.code);
    });
    a.text.insert(0, 'x'.repeat(8000));
    await eventually(() => closes.includes(4021), 'closed with 4021');
    a.provider.disconnect();
    const fresh = track(editor(`${wsBase(server)}/yjs`, 'big'));
    await synced(fresh);
    assert.equal(fresh.text.length, 0);
  });
});
