/**
 * Fuzzed config files (config.ts): JSON and YAML text of any shape (alias bombs and deep nesting
 * included) and configs whose known fields hold values of any type. Loading and resolving ends
 * in a config or a ConfigError naming the file (and, for a bad field, the field), never another
 * exception or a hang; a config that resolves keeps the values it was given.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { ConfigError, loadConfigFile, resolveConfig } from '../../src/config.ts';
import { deeplyNested, fuzzParameters } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'chorus-config-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const anything = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 20 }));
const or = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: plausible, weight: 15 }, { arbitrary: anything, weight: 1 });

const app = fc.record(
  {
    id: or(fc.constantFrom('a', 'app_1', 'x'.repeat(65), '')),
    key: or(fc.constantFrom('key-12345678', 'short', 'k'.repeat(300))),
    secret: or(fc.constantFrom('secret-0123456789abcdef', 'too-short')),
    allowedOrigins: or(fc.array(fc.constantFrom('*', 'https://a.example', 'https://*.example.com', 'http://[::1', 'nope', ''), { maxLength: 3 })),
    limits: or(fc.record({ maxMessageSize: or(fc.integer({ min: -1, max: 200 * 1024 * 1024 })), messagesPerSecond: or(fc.double()), messageBurst: or(fc.integer()) }, { requiredKeys: [] })),
    channels: or(fc.array(fc.record({ pattern: or(fc.constantFrom('*', 'chat-*', '[')), schema: or(fc.oneof(fc.constant({ type: 'object' }), fc.constant({ type: 'nope' }), fc.constant({ $ref: '#/nowhere' }), fc.object({ maxDepth: 2 }))) }, { requiredKeys: [] }), { maxLength: 2 })),
    tokenKeys: or(fc.array(fc.record({ kid: or(fc.constant('k')), alg: or(fc.constantFrom('HS256', 'RS256', 'none')), secret: or(fc.constant('s'.repeat(20))), publicKey: or(fc.constant('-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----')) }, { requiredKeys: [] }), { maxLength: 2 })),
    webhooks: or(fc.array(fc.record({ url: or(fc.constantFrom('https://hooks.example/x', 'ftp://x')), events: or(fc.array(fc.constantFrom('member_added', 'nope'), { maxLength: 2 })) }, { requiredKeys: [] }), { maxLength: 2 })),
  },
  { requiredKeys: [] },
);

const config = fc.record(
  {
    port: or(fc.integer({ min: -1, max: 70_000 })),
    host: or(fc.constantFrom('127.0.0.1', '', '::')),
    logLevel: or(fc.constantFrom('info', 'silent', 'loud')),
    heartbeatIntervalMs: or(fc.integer({ min: 0, max: 100_000 })),
    trustedProxies: or(fc.array(fc.constantFrom('loopback', '10.0.0.0/8', '10.0.0.0/99', 'nonsense', '::1'), { maxLength: 3 })),
    engine: or(fc.record({ type: or(fc.constantFrom('memory', 'redis', 'mongo')), url: or(fc.constantFrom('redis://127.0.0.1:6379', 'http://x')), sentinels: or(fc.array(fc.record({ host: or(fc.constant('h')), port: or(fc.integer()) }), { maxLength: 2 })), name: or(fc.constant('mymaster')) }, { requiredKeys: [] })),
    pusher: or(fc.record({ pathPrefix: or(fc.constantFrom('', '/pusher', 'pusher', '/a b')), activityTimeoutSeconds: or(fc.integer()) }, { requiredKeys: [] })),
    yjs: or(fc.record({ path: or(fc.constantFrom('/yjs', 'yjs', '/')), maxMessageSize: or(fc.integer()) }, { requiredKeys: [] })),
    admin: or(fc.record({ user: or(fc.constantFrom('admin', 'a:b')), password: or(fc.constantFrom('p'.repeat(16), 'short')) }, { requiredKeys: [] })),
    metrics: or(fc.record({ prefix: or(fc.constantFrom('chorus_', '1bad')), token: or(fc.constant('t'.repeat(16))) }, { requiredKeys: [] })),
    apps: or(fc.array(app, { maxLength: 3 })),
    unknownOption: fc.option(anything, { freq: 20, nil: undefined }),
  },
  { requiredKeys: [] },
);

/** Configs that should resolve: the fields above with values the schema allows. */
const validConfig = fc.record(
  {
    port: fc.integer({ min: 0, max: 65_535 }),
    host: fc.constantFrom('127.0.0.1', '::'),
    logLevel: fc.constantFrom('info', 'silent', 'debug'),
    heartbeatIntervalMs: fc.integer({ min: 100, max: 100_000 }),
    trustedProxies: fc.array(fc.constantFrom('loopback', '10.0.0.0/8', '::1'), { maxLength: 3 }),
    pusher: fc.record({ pathPrefix: fc.constantFrom('', '/pusher'), activityTimeoutSeconds: fc.integer({ min: 1, max: 3600 }) }, { requiredKeys: [] }),
    apps: fc.array(fc.record({ id: fc.constantFrom('a', 'b_2'), key: fc.constantFrom('key-12345678', 'other-key-123'), secret: fc.constant('secret-0123456789abcdef'), allowedOrigins: fc.array(fc.constantFrom('*', 'https://a.example', 'https://*.example.com'), { maxLength: 2 }) }, { requiredKeys: ['id', 'key', 'secret'] }), { maxLength: 2 }),
  },
  { requiredKeys: [] },
);

/** YAML whose aliases expand exponentially (a "billion laughs"), which the parser must refuse. */
const aliasBomb = fc.integer({ min: 3, max: 12 }).map((levels) => {
  const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i <= levels; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
  return lines.join('\n');
});

const file = fc.oneof(
  { arbitrary: config.map((c) => ({ ext: '.json', text: JSON.stringify(c) })), weight: 5 },
  { arbitrary: validConfig.map((c) => ({ ext: '.json', text: JSON.stringify(c) })), weight: 2 },
  { arbitrary: validConfig.map((c) => ({ ext: '.yaml', text: toYaml(c) })), weight: 1 },
  { arbitrary: config.map((c) => ({ ext: '.yaml', text: toYaml(c) })), weight: 3 },
  { arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ ext: '.yaml', text })), weight: 1 },
  { arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ ext: '.json', text })), weight: 1 },
  { arbitrary: aliasBomb.map((text) => ({ ext: '.yml', text })), weight: 1 },
  { arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((depth) => ({ ext: '.json', text: `{"apps":${deeplyNested(depth)}}` })), weight: 1 },
  { arbitrary: fc.integer({ min: 100, max: 1_000 }).map((depth) => ({ ext: '.yaml', text: `${'- '.repeat(depth)}x` })), weight: 1 },
);

describe('fuzz: config files', () => {
  it('every file resolves to a config or a ConfigError that names the file, never another error', async (t) => {
    let n = 0;
    const outcomes = { resolved: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(file, async ({ ext, text }) => {
        const path = join(dir, `case-${n++ % 50}${ext}`);
        writeFileSync(path, text);
        try {
          const input = await loadConfigFile(path);
          const resolved = resolveConfig(input, path);
          outcomes.resolved++;
          const given = input as { port?: unknown };
          if (given.port !== undefined) assert.equal(resolved.port, given.port);
        } catch (error) {
          assert.ok(error instanceof ConfigError, `a ConfigError, not ${String(error)}`);
          assert.ok(error.message.startsWith(`${path}: `), `the message names the file: ${error.message}`);
          outcomes.refused++;
        }
      }),
      fuzzParameters(0x5eed_000c, 2500),
    );
    t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
    assert.ok(outcomes.resolved > 0 && outcomes.refused > 0, 'both outcomes were reached');
  });
});
