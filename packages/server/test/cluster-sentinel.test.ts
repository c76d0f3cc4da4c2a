/**
 * Redis with Sentinel failover (issue 16, first part): a real primary, a replica and three
 * sentinels on free ports; two Chorus nodes find the primary through the sentinels. The primary
 * is SIGKILLed; the sentinels promote the replica, and both nodes move to it by themselves:
 * REST publishes are refused with 503 meanwhile (never lost silently) and accepted again after,
 * and a raw subscriber on the other node receives again. Meanwhile v1 SDK publishers on both
 * nodes publish continuously: every v1 subscriber must end with every publication the new
 * primary holds exactly once, in order, and any acknowledged one the replica lost (asynchronous
 * replication) either received before the failover or announced by `recovery-failed`
 * (`recovered: false`); pusher-js keeps receiving. The time to recover and the acknowledged
 * writes lost are reported.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { TEST_APP, TestClient, closeAfterwards, rawUrl, settle } from './helpers.ts';
import { freePort, killRedisProcesses, redisProcess } from './redis.ts';
import { SdkPublisher, pusherListener, sdkSubscriber, waitFor, type PusherListener, type SdkSubscriber } from './redis-faults-helpers.ts';

const { serverWith, track } = closeAfterwards();
after(killRedisProcesses);
async function until(predicate: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await settle(100);
  }
}

async function restPublish(port: number, message: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: 'ha', message }),
  });
  return res.status;
}

const V1_CHANNEL = 'ha-v1';

/**
 * After the failover: what the new primary holds against what was acknowledged (the replica
 * loses what had not reached it), and what each v1 subscriber and pusher-js received.
 */
async function v1Outcome(
  t: TestContext,
  run: { publishers: SdkPublisher[]; subscribers: SdkSubscriber[]; pushers: PusherListener[] },
): Promise<void> {
  const { publishers, subscribers, pushers } = run;
  const counts = publishers.map((p) => p.acked.length);
  await waitFor(() => publishers.every((p, i) => p.acked.length >= (counts[i] ?? 0) + 50), 'v1 publications after the failover', 15_000);
  for (const publisher of publishers) await publisher.stop();
  const acked = publishers.flatMap((p) => p.acked);

  // What the new primary holds, oldest first.
  const reader = subscribers[2]?.client.channel(V1_CHANNEL);
  assert.ok(reader);
  const { epoch, offset: last } = await reader.history({ limit: 1 });
  const held: string[] = [];
  for (let offset = 0; offset < last; ) {
    const page = await reader.history({ limit: 100, since: { epoch, offset } });
    held.push(...page.publications.map((p) => String(p.data)));
    offset = page.publications.at(-1)?.offset ?? last;
  }
  const kept = new Set(held);
  const lost = acked.filter((x) => !kept.has(x.text));
  t.diagnostic(`v1: ${acked.length} publications acknowledged, ${lost.length} of them lost by the promoted replica (${lost.map((x) => `${x.text}@${x.offset}`).join(', ') || 'none'}); publishers saw ${publishers.map((p) => p.refusals).join(' and ')} refusals or timeouts, each retried with the same msgId`);

  const lastHeld = held.at(-1);
  for (const [i, sub] of subscribers.entries()) {
    await waitFor(() => sub.received.some((r) => r.text === lastHeld), `the last publication at v1 subscriber ${i}`, 15_000);
    const texts = sub.received.map((r) => r.text);
    assert.equal(new Set(texts).size, texts.length, `v1 subscriber ${i}: nothing twice`);
    const missed = held.filter((text) => !texts.includes(text));
    const lostUnseen = lost.filter((x) => !texts.includes(x.text));
    if (sub.recoveryFailures === 0) {
      assert.deepEqual(texts.filter((text) => kept.has(text)), held, `v1 subscriber ${i}: everything the new primary holds, once, in order`);
      assert.deepEqual(lostUnseen, [], `v1 subscriber ${i}: a lost write it never saw is announced by recovery-failed`);
    }
    t.diagnostic(`v1 subscriber ${i}: ${texts.length} received, ${missed.length} of the held ones missed, ${sub.recoveryFailures} recovery-failed, ${sub.closeCodes.length} disconnects (${[...new Set(sub.closeCodes)].join(', ')})`);
  }
  const lastTexts = publishers.map((p) => p.acked.at(-1)?.text);
  for (const [i, pusher] of pushers.entries()) {
    await waitFor(() => lastTexts.every((text) => pusher.texts.includes(String(text))), `pusher-js ${i} receiving after the failover`, 10_000);
  }
  t.diagnostic(`pusher-js: received ${pushers.map((p) => p.texts.length).join(' and ')} of ${acked.length} (at-most-once)`);
}

describe('Redis Sentinel failover', { timeout: 90_000 }, () => {
  it('both nodes follow the promoted replica: publishes are refused with 503 during the failover, then accepted and delivered across nodes', async (t) => {
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
    const [primaryPort, replicaPort] = [await freePort(), await freePort()];
    const primary = await redisProcess(['--port', String(primaryPort), ...common], /Ready to accept connections/);
    await redisProcess(['--port', String(replicaPort), '--replicaof', '127.0.0.1', String(primaryPort), ...common], /Ready to accept connections/);
    const replica = new Redis(replicaPort, '127.0.0.1', { lazyConnect: false });
    await until(async () => (await replica.info('replication')).includes('master_link_status:up'), 'the replica to sync', 10_000);

    const dir = mkdtempSync(join(tmpdir(), 'chorus-sentinel-'));
    const sentinels: Array<{ host: string; port: number }> = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const file = join(dir, `sentinel-${i}.conf`);
      writeFileSync(
        file,
        [`port ${port}`, 'bind 127.0.0.1', 'protected-mode no', `sentinel monitor chorus 127.0.0.1 ${primaryPort} 2`, 'sentinel down-after-milliseconds chorus 1000', 'sentinel failover-timeout chorus 5000', ''].join('\n'),
      );
      await redisProcess([file, '--sentinel'], /monitor master chorus/);
      sentinels.push({ host: '127.0.0.1', port });
    }
    const sentinel = new Redis(sentinels[0]?.port ?? 0, '127.0.0.1', { lazyConnect: false });
    await until(async () => {
      const known = (await sentinel.call('SENTINEL', 'sentinels', 'chorus')) as unknown[];
      const replicas = (await sentinel.call('SENTINEL', 'replicas', 'chorus')) as unknown[];
      return known.length === 2 && replicas.length === 1;
    }, 'the sentinels to know each other and the replica', 20_000);

    const engine = { type: 'redis' as const, sentinels, name: 'chorus', probeIntervalMs: 300 };
    const apps = [{ ...TEST_APP, limits: { messagesPerSecond: 0 }, history: { size: 10_000 } }];
    const [a, b] = [await serverWith({ apps, engine, logLevel: (process.env['SENTINEL_LOG'] ?? 'silent') as 'silent' }), await serverWith({ apps, engine })];
    const listener = track(await TestClient.open(rawUrl(b, 'ha')));
    await settle(300); // the raw subscription attaches asynchronously
    assert.equal(await restPublish(a.port, 'before'), 200);
    await listener.until(() => listener.received.some((r) => r.text === 'before'), 'the message before the failover', 5000);

    const subscribers = [await sdkSubscriber(a.port, V1_CHANNEL), await sdkSubscriber(a.port, V1_CHANNEL), await sdkSubscriber(b.port, V1_CHANNEL), await sdkSubscriber(b.port, V1_CHANNEL)];
    const pushers = [await pusherListener(a.port, V1_CHANNEL), await pusherListener(b.port, V1_CHANNEL)];
    after(() => {
      for (const sub of subscribers) sub.client.close();
      for (const pusher of pushers) pusher.client.disconnect();
    });
    const publishers = [new SdkPublisher('A', a.port, V1_CHANNEL, 5), new SdkPublisher('B', b.port, V1_CHANNEL, 5)];
    await waitFor(() => publishers.every((p) => p.acked.length >= 50), 'v1 publications before the failover', 10_000);

    const killedAt = Date.now();
    primary.kill('SIGKILL');
    const statuses = new Set<number>();
    let status = 0;
    for (let n = 0; status !== 200 && Date.now() - killedAt < 45_000; n++) {
      status = await restPublish(a.port, `during-${n}`);
      statuses.add(status);
      if (status !== 200) await settle(100);
    }
    const recoveredAfterMs = Date.now() - killedAt;
    t.diagnostic(`node A accepted publishes again ${recoveredAfterMs} ms after the primary was killed (down-after 1000 ms); answers meanwhile: ${[...statuses].join(', ')}`);
    assert.equal(status, 200, 'publishes are accepted again after the failover');
    assert.deepEqual([...statuses].filter((s) => s !== 200 && s !== 503), [], 'refused with 503 while there is no primary, nothing else');

    // Node B's pub/sub moved to the new primary as well: a publish through A reaches B's subscriber.
    await until(async () => {
      await restPublish(a.port, 'after');
      await settle(200);
      return listener.received.some((r) => r.text === 'after');
    }, 'a message after the failover at the subscriber on node B', 15_000);
    t.diagnostic(`delivered across nodes again ${Date.now() - killedAt} ms after the kill`);

    await v1Outcome(t, { publishers, subscribers, pushers });
    for (const node of [a, b]) assert.equal((await fetch(`http://127.0.0.1:${node.port}/health`)).status, 200, 'both nodes still serve');
    replica.disconnect();
    sentinel.disconnect();
  });
});
