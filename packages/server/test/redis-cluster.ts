/**
 * A real Redis Cluster for tests: `primaries` redis-server processes with cluster mode on (and
 * `replicasPerPrimary` replicas each), on free loopback ports, persistence off, joined with
 * `redis-cli --cluster create`. Resolves once every node reports cluster_state:ok.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { settle } from './helpers.ts';
import { startRedisServer } from './redis.ts';

export interface ClusterNode {
  readonly port: number;
  process: ChildProcess;
}

export class TestRedisCluster {
  readonly nodes: ClusterNode[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), 'chorus-redis-cluster-'));

  static async start(options: { primaries?: number; replicasPerPrimary?: number } = {}): Promise<TestRedisCluster> {
    const primaries = options.primaries ?? 3;
    const replicas = options.replicasPerPrimary ?? 0;
    const cluster = new TestRedisCluster();
    try {
      for (let i = 0; i < primaries * (1 + replicas); i++) cluster.nodes.push(await cluster.#spawn(await freeClusterPort()));
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
      await cluster.waitUntilOk();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The startup nodes for the engine config. */
  get startupNodes(): Array<{ host: string; port: number }> {
    return this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  /** A plain connection to one node, for CLUSTER commands. */
  nodeClient(port: number): Redis {
    return new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, lazyConnect: false });
  }

  /** Polls until every running node says cluster_state:ok and agrees on the slots (after a create, reshard or failover). */
  async waitUntilOk(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const check = spawnSync('redis-cli', ['--cluster', 'check', `127.0.0.1:${this.running()[0]?.port ?? 0}`], { encoding: 'utf8', timeout: 10_000 });
      const states = await Promise.all(this.running().map((n) => this.#info(n.port)));
      if (check.status === 0 && check.stdout.includes('[OK] All 16384 slots covered') && states.every((s) => s.includes('cluster_state:ok'))) return;
      if (Date.now() > deadline) throw new Error(`the redis cluster is not ok after ${timeoutMs} ms: ${check.stdout}${check.stderr}`);
      await settle(200);
    }
  }

  running(): ClusterNode[] {
    return this.nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null);
  }

  /** The port of the primary that owns `slot`, and its node id. */
  async ownerOf(slot: number): Promise<{ port: number; id: string }> {
    const client = this.nodeClient(this.running()[0]?.port ?? 0);
    try {
      const shards = (await client.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string]]>;
      const range = shards.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no owner for slot ${slot}`);
      return { port: Number(range[2][1]), id: String(range[2][2]) };
    } finally {
      client.disconnect();
    }
  }

  /** CLUSTER NODES as the first running node sees it: id, port, flags, primary id per node. */
  async clusterNodes(): Promise<Array<{ id: string; port: number; flags: string[]; primaryId: string }>> {
    const client = this.nodeClient(this.running()[0]?.port ?? 0);
    try {
      const text = String(await client.call('CLUSTER', 'NODES'));
      return text.trim().split('\n').map((line) => {
        const [id = '', address = '', flags = '', primaryId = ''] = line.split(' ');
        return { id, port: Number(/:(\d+)@/.exec(address)?.[1]), flags: flags.split(','), primaryId };
      });
    } finally {
      client.disconnect();
    }
  }

  async primaryPorts(): Promise<number[]> {
    return (await this.clusterNodes()).filter((n) => n.flags.includes('master') && !n.flags.includes('fail')).map((n) => n.port);
  }

  /** The port of a replica of the primary with this node id. */
  async replicaOf(primaryId: string): Promise<number> {
    const replica = (await this.clusterNodes()).find((n) => n.primaryId === primaryId && !n.flags.includes('fail'));
    if (!replica) throw new Error(`no replica of ${primaryId}`);
    return replica.port;
  }

  /**
   * Resolves once the replica's link to its primary is up. A replica that never completed its
   * first sync cannot be promoted (its data counts as too old): a SIGKILL of its primary then
   * leaves the slots without one for good, and CLUSTER FAILOVER is refused.
   */
  async replicaSynced(replicaPort: number, timeoutMs = 15_000): Promise<void> {
    const replica = this.nodeClient(replicaPort);
    try {
      const deadline = Date.now() + timeoutMs;
      let info = '';
      while (!(info = await replica.info('replication')).includes('master_link_status:up')) {
        if (Date.now() > deadline) throw new Error(`replica ${replicaPort} has no link to its primary after ${timeoutMs} ms: ${info.replace(/\r?\n/g, ' ')}`);
        await settle(50);
      }
    } finally {
      replica.disconnect();
    }
  }

  /** A manual failover (CLUSTER FAILOVER on the replica): it becomes the primary once it has caught up. */
  async failover(replicaPort: number): Promise<void> {
    await this.replicaSynced(replicaPort);
    const replica = this.nodeClient(replicaPort);
    try {
      await replica.call('CLUSTER', 'FAILOVER');
      const deadline = Date.now() + 15_000;
      while (!(await replica.info('replication')).includes('role:master')) {
        if (Date.now() > deadline) throw new Error(`replica ${replicaPort} did not take over`);
        await settle(50);
      }
    } finally {
      replica.disconnect();
    }
    await this.waitUntilOk();
  }

  /**
   * Moves `slot` to the primary on `toPort` the way `redis-cli --cluster reshard` does, one slot
   * at a time: IMPORTING/MIGRATING, MIGRATE of its keys in batches (clients meanwhile get ASK
   * redirections for keys already moved), then SETSLOT NODE on every primary.
   */
  async migrateSlot(slot: number, toPort: number): Promise<{ keys: number }> {
    const from = await this.ownerOf(slot);
    const source = this.nodeClient(from.port);
    const target = this.nodeClient(toPort);
    try {
      const targetId = String(await target.call('CLUSTER', 'MYID'));
      await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
      await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
      let keys = 0;
      for (;;) {
        const batch = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 10)) as string[];
        if (batch.length === 0) break;
        await source.call('MIGRATE', '127.0.0.1', toPort, '', 0, 5000, 'REPLACE', 'KEYS', ...batch);
        keys += batch.length;
      }
      for (const node of this.running()) {
        const client = this.nodeClient(node.port);
        await client.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId).catch(() => undefined); // replicas refuse; they follow their primary
        client.disconnect();
      }
      return { keys };
    } finally {
      source.disconnect();
      target.disconnect();
    }
  }

  /** SIGKILL: the node is gone without a word; its replica (see replicaSynced) takes over after cluster-node-timeout. */
  kill(port: number): void {
    this.nodes.find((n) => n.port === port)?.process.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(async ({ process: child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }),
    );
  }

  async #info(port: number): Promise<string> {
    const client = this.nodeClient(port);
    try {
      return String(await client.call('CLUSTER', 'INFO'));
    } catch {
      return '';
    } finally {
      client.disconnect();
    }
  }

  async #spawn(port: number): Promise<ClusterNode> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--cluster-enabled', 'yes', '--cluster-config-file', join(this.#dir, `nodes-${port}.conf`), '--cluster-node-timeout', '1000', '--dir', this.#dir, '--repl-diskless-sync-delay', '0'];
    const child = await startRedisServer(args, /Ready to accept connections/);
    return { port, process: child };
  }
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await canListen(port)) && (await canListen(port + 10_000))) return port;
  }
  throw new Error('no free port pair (port, port + 10000) for a redis cluster node');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
