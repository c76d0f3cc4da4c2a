/** The configured apps, looked up by API key, with constant-time secret checks. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AppConfig } from './config.js';
import { isOriginAllowed } from './origin.js';

export class App {
  readonly id: string;
  readonly key: string;
  readonly limits: AppConfig['limits'];
  readonly allowedOrigins: readonly string[];
  /** The secret as bytes, for HS256 verification. */
  readonly secretKey: Uint8Array;
  readonly #secretDigest: Buffer;

  constructor(config: AppConfig) {
    this.id = config.id;
    this.key = config.key;
    this.limits = config.limits;
    this.allowedOrigins = config.allowedOrigins;
    this.secretKey = new TextEncoder().encode(config.secret);
    this.#secretDigest = digest(config.secret);
  }

  /** Compares digests so neither the content nor the length of the secret leaks through timing. */
  isSecret(candidate: string): boolean {
    return timingSafeEqual(this.#secretDigest, digest(candidate));
  }

  allowsOrigin(origin: string | undefined): boolean {
    return isOriginAllowed(origin, this.allowedOrigins);
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export class AppRegistry {
  readonly #byKey = new Map<string, App>();
  readonly all: readonly App[];

  constructor(configs: readonly AppConfig[]) {
    this.all = configs.map((c) => new App(c));
    for (const app of this.all) this.#byKey.set(app.key, app);
  }

  byKey(key: string | null | undefined): App | undefined {
    return key ? this.#byKey.get(key) : undefined;
  }
}
