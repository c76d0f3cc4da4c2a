/** Random identifiers for publish idempotency keys (msgId), from crypto.getRandomValues when present. */
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

interface CryptoLike {
  getRandomValues<T extends ArrayBufferView>(array: T): T;
}

export function randomId(length: number): string {
  const bytes = new Uint8Array(length);
  const crypto = (globalThis as { crypto?: CryptoLike }).crypto;
  if (crypto && typeof crypto.getRandomValues === 'function') crypto.getRandomValues(bytes);
  else for (let i = 0; i < length; i++) bytes[i] = Math.floor(Math.random() * 256);
  let id = '';
  for (const byte of bytes) id += ALPHABET[byte % ALPHABET.length];
  return id;
}

/**
 * msgIds `<16 random chars>-<counter>`: the random part (~82 bits) tells clients apart, the
 * counter publishes of one client. Far below the 64-character limit.
 */
export class MsgIdGenerator {
  readonly #prefix = randomId(16);
  #counter = 0;

  next(): string {
    return `${this.#prefix}-${(++this.#counter).toString(36)}`;
  }
}
