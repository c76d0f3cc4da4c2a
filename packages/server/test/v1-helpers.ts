/** A raw-frame v1 client for conformance tests: JSON commands in, replies and pushes out. */
import { SignJWT } from 'jose';
import type WebSocket from 'ws';
import type { ChorusServer } from '../src/index.ts';
import { TEST_APP, TestClient, wsBase } from './helpers.ts';

export interface ReplyFrame {
  id: number;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: number; name: string; message: string };
}

export interface PushFrame {
  type: string;
  channel?: string;
  offset?: number;
  epoch?: string;
  event?: string;
  data?: unknown;
  b64?: string;
  [field: string]: unknown;
}

export class V1Client {
  readonly raw: TestClient;
  #nextId = 1;

  constructor(raw: TestClient) {
    this.raw = raw;
  }

  static async open(server: ChorusServer, key: string = TEST_APP.key, options?: WebSocket.ClientOptions): Promise<V1Client> {
    return new V1Client(await TestClient.open(v1Url(server, key), options));
  }

  /** Opens and connects; returns the connect result. */
  static async connected(server: ChorusServer, fields: Record<string, unknown> = {}): Promise<V1Client> {
    const client = await V1Client.open(server);
    const reply = await client.command('connect', fields);
    if (!reply.ok) throw new Error(`connect failed: ${JSON.stringify(reply)}`);
    return client;
  }

  get frames(): Array<Record<string, unknown>> {
    return this.raw.received.map((r) => JSON.parse(r.text) as Record<string, unknown>);
  }

  pushes(type?: string, channel?: string): PushFrame[] {
    return (this.frames.filter((f) => f['id'] === undefined) as PushFrame[]).filter((p) => (!type || p.type === type) && (!channel || p.channel === channel));
  }

  /** Sends a command and waits for its reply. */
  async command(type: string, fields: Record<string, unknown> = {}): Promise<ReplyFrame> {
    const id = this.send(type, fields);
    return this.reply(id);
  }

  send(type: string, fields: Record<string, unknown> = {}): number {
    const id = this.#nextId++;
    this.raw.ws.send(JSON.stringify({ id, type, ...fields }));
    return id;
  }

  async reply(id: number): Promise<ReplyFrame> {
    await this.raw.until(() => this.frames.some((f) => f['id'] === id), `reply ${id}`);
    return this.frames.find((f) => f['id'] === id) as unknown as ReplyFrame;
  }

  async untilPushes(count: number, type = 'pub', channel?: string): Promise<PushFrame[]> {
    await this.raw.until(() => this.pushes(type, channel).length >= count, `${count} ${type} pushes`);
    return this.pushes(type, channel);
  }
}

export function v1Url(server: ChorusServer, key: string = TEST_APP.key): string {
  return `${wsBase(server)}/v1/connect?key=${key}`;
}

/** Expires in an hour unless `extra.exp` says otherwise; `audience: null` mints one without `aud`. */
export function connectionToken(sub: string, extra: Record<string, unknown> = {}, audience: string | null = 'chorus:connection', secret: string = TEST_APP.secret): Promise<string> {
  let jwt = new SignJWT(extra).setProtectedHeader({ alg: 'HS256' }).setSubject(sub);
  if (extra['exp'] === undefined) jwt = jwt.setExpirationTime('1h');
  if (audience) jwt = jwt.setAudience(audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

export function channelToken(channel: string, secret: string = TEST_APP.secret): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(channel).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
}
