/**
 * The engine section of the config: each engine type takes its own fields, and a field of another
 * type, or a missing one, is refused with an error that names it and says what to do instead.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, resolveConfig } from '../src/index.ts';

function refusal(engine: unknown): string {
  try {
    resolveConfig({ engine });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail(`accepted ${JSON.stringify(engine)}`);
}

describe('config: engine', () => {
  it('redis-cluster takes nodes, and refuses the fields of the redis engine', () => {
    const nodes = [{ host: '10.0.0.5', port: 6379 }];
    assert.deepEqual(resolveConfig({ engine: { type: 'redis-cluster', nodes, presenceTtlMs: 5000 } }).engine, { type: 'redis-cluster', nodes, presenceTtlMs: 5000 });
    assert.match(refusal({ type: 'redis-cluster' }), /engine\.nodes is required for the redis-cluster engine/);
    assert.match(refusal({ type: 'redis-cluster', nodes: [] }), /engine\.nodes/);
    assert.match(refusal({ type: 'redis-cluster', nodes: [{ host: 'h', port: 70000 }] }), /engine\.nodes\[0\]\.port/);
    assert.match(refusal({ type: 'redis-cluster', nodes, url: 'redis://127.0.0.1:6379' }), /engine\.url is for the redis engine; the redis-cluster engine finds its nodes through engine\.nodes/);
    assert.match(refusal({ type: 'redis-cluster', nodes, sentinels: [{ host: 'h', port: 26379 }], name: 'm' }), /engine\.sentinels is for the redis engine/);
  });

  it('redis refuses nodes, naming the engine type that takes them', () => {
    assert.match(refusal({ type: 'redis', url: 'redis://127.0.0.1:6379', nodes: [{ host: 'h', port: 6379 }] }), /engine\.nodes is for the redis-cluster engine: set engine\.type to "redis-cluster"/);
    assert.match(refusal({ type: 'redis' }), /engine\.url is required for the redis engine/);
  });
});
