/**
 * A failover that loses acknowledged writes (issue 16, part 1), made deterministic: the replica
 * follows the primary through a TcpProxy; the test partitions that link, publishes three more
 * (acknowledged by the primary, never replicated), kills the primary, promotes the replica and
 * points the node's own proxy at it. The new primary's offsets are behind, and publishing goes
 * on from there: the offsets of the lost writes are assigned again, to other publications.
 *
 * A v1 client that received the lost writes and resumes from its last offset after the new
 * primary has passed it must hear `recovered: false`, not `recovered: true` with the reused
 * offsets silently skipped; one that stopped at a replicated write recovers across the failover; a subscriber that stayed connected ends with everything the new
 * primary holds, once, in order, or a recovery-failed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { TcpProxy } from '../../client/test/helpers.ts';
import { TEST_APP, closeAfterwards, settle } from './helpers.ts';
import { FAULTS_CHANNEL, RestPublisher, sdkSubscriber, waitFor } from './redis-faults-helpers.ts';
import { freePort, killRedisProcesses, redisProcess } from './redis.ts';
import { V1Client } from './v1-helpers.ts';

const { serverWith } = closeAfterwards();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  killRedisProcesses();
});

const COMMON = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];

describe('a failover that lost acknowledged writes', { timeout: 60_000 }, () => {
  it('clients resuming from a lost write hear recovered: false; nothing is skipped silently', async (t) => {
    const [primaryPort, replicaPort] = [await freePort(), await freePort()];
    const primaryProcess = await redisProcess(['--port', String(primaryPort), ...COMMON], /Ready to accept connections/);
    const replicationLink = await TcpProxy.start(primaryPort);
    cleanups.push(() => replicationLink.close());
    await redisProcess(['--port', String(replicaPort), '--replicaof', '127.0.0.1', String(replicationLink.port), ...COMMON], /Ready to accept connections/);
    const replica = new Redis(replicaPort, '127.0.0.1');
    const primary = new Redis(primaryPort, '127.0.0.1', { maxRetriesPerRequest: 0, retryStrategy: () => null });
    cleanups.push(() => replica.disconnect(), () => primary.disconnect());
    primary.on('error', () => undefined);
    await waitFor(async () => (await replica.info('replication')).includes('master_link_status:up'), 'the replica to sync', 10_000);

    const nodeLink = await TcpProxy.start(primaryPort);
    cleanups.push(() => nodeLink.close());
    const apps = [{ ...TEST_APP, limits: { messagesPerSecond: 0 }, history: { size: 1000 } }];
    const node = await serverWith({ apps, engine: { type: 'redis', url: `redis://127.0.0.1:${nodeLink.port}`, probeIntervalMs: 300 } });
    const subscriber = await sdkSubscriber(node.port);
    cleanups.push(() => subscriber.client.close());

    const publish = async (text: string): Promise<{ status: number; offset: number; epoch: string }> => {
      const res = await fetch(`http://127.0.0.1:${node.port}/api/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: TEST_APP.key, secret: TEST_APP.secret, channelId: FAULTS_CHANNEL, message: text }),
      });
      return { status: res.status, ...((await res.json()) as { offset: number; epoch: string }) };
    };
    for (let n = 1; n <= 5; n++) assert.equal((await publish(`kept-${n}`)).status, 200);
    assert.equal(await primary.call('WAIT', '1', '2000'), 1, 'the first five replicated');

    replicationLink.partition();
    const lost = [];
    for (let n = 1; n <= 3; n++) lost.push(await publish(`lost-${n}`));
    assert.deepEqual(lost.map((p) => p.status), [200, 200, 200], 'acknowledged by the primary');
    await waitFor(() => subscriber.received.length === 8, 'the lost writes delivered live', 5000);
    const resumeFrom = { epoch: lost[2]?.epoch, offset: lost[2]?.offset };

    // The failover: the primary dies, the replica (without the last three) is promoted, and the
    // node's connections go to it.
    primaryProcess.kill('SIGKILL');
    await replica.call('REPLICAOF', 'NO', 'ONE');
    nodeLink.targetPort = replicaPort;
    nodeLink.cut();
    const publisher = new RestPublisher('after', node.port, 10);
    cleanups.push(() => publisher.stop());
    await waitFor(() => publisher.acked.length >= 10, 'publications on the new primary', 15_000);
    await publisher.stop();
    const afterFailover = publisher.acked;
    assert.ok((afterFailover[0]?.offset ?? 0) <= (resumeFrom.offset ?? 0), `the new primary assigns the lost offsets again (first after: ${afterFailover[0]?.offset})`);

    // A client that saw the lost writes comes back after the new primary passed its offset.
    const late = await V1Client.connected(node);
    cleanups.push(() => late.raw.ws.terminate());
    const reply = (await late.command('subscribe', { channel: FAULTS_CHANNEL, since: resumeFrom })) as unknown as { ok: boolean; result: { recovered?: boolean; epoch: string } };
    assert.equal(reply.ok, true);
    assert.equal(reply.result.recovered, false, 'resuming from a lost write is not recovered: true');
    assert.notEqual(reply.result.epoch, resumeFrom.epoch, 'a new epoch began with the failover');

    // One that stopped at a replicated write recovers across the failover, into the new epoch.
    const replicated = await V1Client.connected(node);
    cleanups.push(() => replicated.raw.ws.terminate());
    const resumed = (await replicated.command('subscribe', { channel: FAULTS_CHANNEL, since: { epoch: resumeFrom.epoch, offset: 5 } })) as unknown as { ok: boolean; result: { recovered?: boolean; replayed: number } };
    assert.equal(resumed.result.recovered, true, 'resuming from a write the new primary holds recovers');
    assert.equal(resumed.result.replayed, afterFailover.length);
    assert.deepEqual((await replicated.untilPushes(afterFailover.length)).map((p) => p.data), afterFailover.map((x) => x.text), 'the publications after the failover, in order');

    // The subscriber that stayed: everything the new primary holds, once and in order, or told.
    const history = (await late.command('history', { channel: FAULTS_CHANNEL, limit: 100 })) as unknown as { result: { publications: Array<{ data: unknown }> } };
    const held = history.result.publications.map((p) => String(p.data));
    assert.ok(held.includes('kept-5') && !held.includes('lost-1'), 'the new primary holds the replicated writes, not the lost ones');
    await waitFor(() => subscriber.client.channel(FAULTS_CHANNEL).state === 'subscribed', 'the subscriber resubscribed', 10_000);
    assert.equal((await publish('final')).status, 200);
    await waitFor(() => subscriber.received.some((r) => r.text === 'final'), 'a last publication at the subscriber', 10_000);
    held.push('final');
    const texts = subscriber.received.map((r) => r.text);
    const missed = held.filter((text) => !texts.includes(text));
    assert.ok(missed.length === 0 || subscriber.recoveryFailures > 0, `missed ${missed.join(', ')} without a recovery-failed`);
    assert.equal(new Set(texts).size, texts.length, 'nothing twice');
    t.diagnostic(`lost 3 acknowledged writes (offsets ${lost.map((p) => p.offset).join(', ')}); the new primary assigned offset ${afterFailover[0]?.offset} again in a new epoch; the resuming client got recovered: false; the connected subscriber missed ${missed.length} (recovery-failed ${subscriber.recoveryFailures})`);
    await settle(100);
  });
});
