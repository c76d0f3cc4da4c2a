/**
 * Helpers for the tests that drive the Pusher dialect with the real libraries (pusher-clients,
 * pusher-api, pusher-echo, pusher-browser): a server with Pusher apps, the `pusher` SDK as the
 * app's backend, a real node:http auth endpoint that signs with it as an app's backend would, and
 * pusher-js clients that are all disconnected after the file. Every wait has a deadline.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import PusherServer from 'pusher';
import { startServer, type ChorusConfigInput, type ChorusServer } from '../src/index.ts';
import { withTimeout } from './helpers.ts';
import { Pusher, type PusherClient, type PusherOptions } from './pusher-js.ts';

/** Client events, subscription_count and no per-connection frame rate (tests send bursts). */
export const PUSHER_APP = {
  id: 'pusher-test',
  key: 'pusher-key-123',
  secret: 'pusher-secret-0123456789',
  clientEvents: true,
  subscriptionCount: true,
  limits: { messagesPerSecond: 0, maxConnectionsPerIp: 10_000 },
} as const;

/** The defaults: no client events, no subscription_count. */
export const QUIET_APP = { id: 'quiet', key: 'quiet-key-123', secret: 'quiet-secret-0123456789' } as const;

type TestApp = typeof PUSHER_APP | typeof QUIET_APP;
const APPS: readonly TestApp[] = [PUSHER_APP, QUIET_APP];

/** The key `private-encrypted-` payloads are encrypted with, known to the backend only. */
export const MASTER_KEY_BASE64 = Buffer.alloc(32, 7).toString('base64');

/** What the rig touches of pusher-js's Node socket (faye-websocket's client). */
interface FayeSocket {
  readonly readyState: number;
  readonly _closeTimer?: NodeJS.Timeout;
}
const FAYE_CLOSED = 3;

export interface AuthRequest {
  readonly socketId: string;
  readonly channel: string;
  readonly user: string | undefined;
}

export interface ClientOptions {
  readonly app?: TestApp;
  /** A key other than the app's (an unknown one, to be refused). */
  readonly key?: string;
  /** Sent to the auth endpoint (pusher-js `params`): the presence member and the signed-in user. */
  readonly user?: string;
  /** More form fields for the auth endpoint (`sign: 'wrong'`). */
  readonly authParams?: Readonly<Record<string, string>>;
  /** Connect to this port instead of the rig's server. */
  readonly port?: number;
  readonly extra?: Partial<PusherOptions>;
}

/**
 * One Chorus server with PUSHER_APP and QUIET_APP, and the auth endpoint at `authUrl`. The
 * endpoint reads pusher-js's form body (socket_id, channel_name, plus the client's `params`) or,
 * for Laravel Echo, the user from an `X-User` header; `user=forbidden` is refused with 403 (as a
 * backend refuses), and `sign=wrong` signs with a wrong secret (so the server must refuse).
 */
export class PusherRig {
  readonly server: ChorusServer;
  readonly authServer: Server;
  readonly authRequests: AuthRequest[] = [];
  readonly #clients: PusherClient[] = [];
  readonly #sockets = new Set<FayeSocket>();

  private constructor(server: ChorusServer, authServer: Server) {
    this.server = server;
    this.authServer = authServer;
  }

  /** Starts a rig; the caller closes it (`after(() => rig.close())`). */
  static async start(overrides: ChorusConfigInput = {}): Promise<PusherRig> {
    const server = await startPusherServer(overrides);
    const authServer = createServer();
    const rig = new PusherRig(server, authServer);
    authServer.on('request', (req: IncomingMessage, res: ServerResponse) => void rig.#answerAuth(req, res));
    await new Promise<void>((resolve) => authServer.listen(0, '127.0.0.1', resolve));
    return rig;
  }

  get port(): number {
    return this.server.port;
  }

  get authUrl(): string {
    const address = this.authServer.address();
    if (address === null || typeof address === 'string') throw new Error('auth endpoint is not listening');
    return `http://127.0.0.1:${address.port}/auth`;
  }

  backend(app: TestApp = PUSHER_APP, port = this.port): PusherServer {
    return pusherBackend(app, port);
  }

  /** A pusher-js client (not yet connected), disconnected after the file. */
  client(options: ClientOptions = {}): PusherClient {
    const app = options.app ?? PUSHER_APP;
    const signer = this.backend(app);
    const user = options.user;
    const pusher = new Pusher(options.key ?? app.key, {
      cluster: 'local',
      wsHost: '127.0.0.1',
      wsPort: options.port ?? this.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      channelAuthorization: { endpoint: this.authUrl, transport: 'ajax', params: { app: app.id, ...(user === undefined ? {} : { user }), ...options.authParams } },
      userAuthentication: {
        endpoint: '',
        transport: 'ajax',
        customHandler: ({ socketId }, callback) => callback(null, signer.authenticateUser(socketId, { id: user ?? 'anonymous' })),
      },
      ...options.extra,
    });
    this.track(pusher);
    return pusher;
  }

  /** A client that is connected (pusher:connection_established received). */
  async connected(options: ClientOptions = {}): Promise<PusherClient> {
    const pusher = this.client(options);
    await connectedOf(pusher);
    return pusher;
  }

  track(pusher: PusherClient): PusherClient {
    this.#clients.push(pusher);
    pusher.connection.bind('connected', () => {
      const socket = (pusher.connection as unknown as { connection?: { transport?: { socket?: FayeSocket } } }).connection?.transport?.socket;
      if (socket) this.#sockets.add(socket);
    });
    return pusher;
  }

  async close(): Promise<void> {
    for (const pusher of this.#clients) pusher.disconnect();
    await new Promise<void>((resolve) => {
      this.authServer.close(() => resolve());
      this.authServer.closeAllConnections();
    });
    await this.server.close();
    // pusher-js answers a refusing close (4001-4099) by closing its socket again; its Node
    // build's faye-websocket then starts a 30 s close timer that nothing clears, which would keep
    // the test process alive for 30 s after the last test.
    for (const socket of this.#sockets) if (socket.readyState === FAYE_CLOSED) clearTimeout(socket._closeTimer);
  }

  async #answerAuth(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const form = new URLSearchParams(body);
    const socketId = form.get('socket_id') ?? '';
    const channel = form.get('channel_name') ?? '';
    const header = req.headers['x-user'];
    const user = form.get('user') ?? (typeof header === 'string' ? header : undefined);
    this.authRequests.push({ socketId, channel, user });
    if (user === 'forbidden') {
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not yours' }));
      return;
    }
    const app = APPS.find((a) => a.id === form.get('app')) ?? PUSHER_APP;
    const signer = form.get('sign') === 'wrong' ? pusherBackend({ ...app, secret: 'not-the-secret-0123456789' }, this.port) : this.backend(app);
    const presence = channel.startsWith('presence-') ? { user_id: user ?? 'anonymous', user_info: { name: user ?? 'anonymous' } } : undefined;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(signer.authorizeChannel(socketId, channel, presence)));
  }
}

export function startPusherServer(overrides: ChorusConfigInput = {}): Promise<ChorusServer> {
  return startServer({ port: 0, host: '127.0.0.1', logLevel: 'silent', apps: APPS.map((app) => ({ ...app })), ...overrides });
}

/** The `pusher` SDK as the app's backend, with the encryption master key. */
export function pusherBackend(app: { id: string; key: string; secret: string }, port: number): PusherServer {
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    port: String(port),
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_BASE64,
  });
}

export function connectedOf(pusher: PusherClient, timeoutMs = 5000): Promise<void> {
  if (pusher.connection.state === 'connected') return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => pusher.connection.bind('connected', () => resolve())), timeoutMs, 'pusher-js did not connect');
}

/** Subscribes and resolves with pusher:subscription_succeeded's data; rejects on subscription_error. */
export function subscribed(pusher: PusherClient, name: string, timeoutMs = 5000): Promise<unknown> {
  const channel = pusher.subscribe(name);
  return withTimeout(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', resolve);
      channel.bind('pusher:subscription_error', (error: unknown) => reject(new Error(`subscription to ${name} refused: ${JSON.stringify(error)}`)));
    }),
    timeoutMs,
    `subscription to ${name}`,
  );
}

/** The client's channel, subscribing to it if it is not yet (pusher-js binds only on a channel object). */
export function channelOf(pusher: PusherClient, name: string): ReturnType<PusherClient['subscribe']> {
  return pusher.channel(name) ?? pusher.subscribe(name);
}

/** The next `event` on the client's channel (subscribing if needed): its data and metadata. */
export function nextEvent(pusher: PusherClient, channel: string, event: string, timeoutMs = 5000): Promise<{ data: unknown; metadata: unknown }> {
  return withTimeout(
    new Promise((resolve) => {
      const handler = (data: unknown, metadata: unknown): void => {
        channelOf(pusher, channel).unbind(event, handler);
        resolve({ data, metadata });
      };
      channelOf(pusher, channel).bind(event, handler);
    }),
    timeoutMs,
    `${event} on ${channel}`,
  );
}

/** Every `event` on the channel (subscribing if needed) from now on, in order. */
export function collect(pusher: PusherClient, channel: string, event: string): unknown[] {
  const got: unknown[] = [];
  channelOf(pusher, channel).bind(event, (data: unknown) => got.push(data));
  return got;
}

/** The Pusher error codes the connection reports (pusher:error frames and close codes), in order. */
export function errorCodes(pusher: PusherClient): Array<number | null> {
  const codes: Array<number | null> = [];
  pusher.connection.bind('error', (error: { type?: string; data?: { code?: number | null }; error?: { data?: { code?: number } } }) => {
    const code = error.data?.code ?? error.error?.data?.code;
    if (code !== undefined) codes.push(code);
  });
  return codes;
}

/** The connection's states from now on (pusher-js `state_change`), plus `connecting_in` retries. */
export function stateLog(pusher: PusherClient): string[] {
  const states: string[] = [];
  pusher.connection.bind('state_change', (change: { current: string }) => states.push(change.current));
  pusher.connection.bind('connecting_in', (seconds: number) => states.push(`retry in ${seconds}s`));
  return states;
}

/** Resolves when `predicate` holds (checked every 20 ms), or rejects with `what` after the deadline. */
export async function eventually(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
