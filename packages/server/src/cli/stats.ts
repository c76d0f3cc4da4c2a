/** `chorus stats`: the admin API's live counts in the terminal (docs/admin.md). */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { text as readStream } from 'node:stream/consumers';
import { DEFAULT_TIMEOUT_MS, EXIT_FAILURE, SERVER_OPTIONS, UsageError, expectPositionals, fail, parseFlags, parseMs, resolveServerUrl } from './args.js';

export const STATS_USAGE = `Usage: chorus stats [options]

Shows a server's live counts, refreshed every second: this node's connections, channels,
messages per second, memory and webhooks, and per app its connections here and its channels and
subscriptions across the cluster. Reads the admin API (GET /admin/api/stats and /admin/api/apps),
so the server needs "admin" credentials in its config (docs/admin.md).

Options:
      --user USER        Admin user (env CHORUS_ADMIN_USER; default admin, or the config's)
      --password PASS    Admin password (env CHORUS_ADMIN_PASSWORD); never printed
  -c, --config FILE      Take the URL's port and the admin credentials from this server config
      --once             Print one snapshot and exit (for scripts)
      --interval MS      Refresh every MS (default 1000)
      --url URL          Server (env CHORUS_URL; default http://localhost:8080)
      --host H           Replace the URL's host
  -p, --port N           Replace the URL's port
      --insecure         Accept a self-signed certificate (https://)
      --timeout MS       Give up on one request after MS (default 10000)
  -h, --help             Show this help

Examples:
  chorus stats --password "$CHORUS_ADMIN_PASSWORD"
  chorus stats -c chorus.json --once

Exit codes:
  0  stopped with Ctrl-C, or --once printed
  1  the server could not be reached or refused the credentials
  2  bad usage: no password`;

interface Stats {
  node: { connections: number; channels: number; publications: number; uptimeSeconds: number; rssBytes: number; heapUsedBytes: number };
  webhooks: { delivered: number; failedAttempts: number; dropped: number; queued: number };
  engine: string;
}

interface AppRow {
  id: string;
  enabled: boolean;
  connectionsOnThisNode: number;
  channels: number | null;
  subscriptions: number | null;
}

export async function statsCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseFlags('stats', argv, {
    ...SERVER_OPTIONS,
    user: { type: 'string' },
    password: { type: 'string' },
    config: { type: 'string', short: 'c' },
    once: { type: 'boolean' },
    interval: { type: 'string' },
  });
  expectPositionals('stats', positionals, 0, 0, 'no arguments');
  const timeoutMs = parseMs('timeout', values.timeout, DEFAULT_TIMEOUT_MS);
  const intervalMs = Math.max(100, parseMs('interval', values.interval, 1000));
  const { loadConfigFile } = await import('../config.js');
  const config = values.config ? await loadConfigFile(values.config) : undefined;
  const password = values.password ?? process.env['CHORUS_ADMIN_PASSWORD'] ?? config?.admin?.password;
  const user = values.user ?? process.env['CHORUS_ADMIN_USER'] ?? config?.admin?.user ?? 'admin';
  if (password === undefined) throw new UsageError('stats needs the admin password: --password, CHORUS_ADMIN_PASSWORD, or --config FILE with "admin" (the banner of `npm start` prints the development one)');
  const base = resolveServerUrl(values, config);
  const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const get = async <T>(path: string): Promise<T> => {
    const url = new URL(`${base.pathname.replace(/\/$/, '')}/admin/api/${path}`, base);
    const response = await getJson(url, auth, timeoutMs, values.insecure ?? false);
    if (response.status === 401) throw new Error('the server refused the admin credentials (HTTP 401): check --user and --password');
    if (response.status === 404) throw new Error('the server has no admin API (HTTP 404): set "admin": {"password": …} in its config');
    if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${response.body.slice(0, 200)}`);
    return JSON.parse(response.body) as T;
  };

  let previous: number | undefined;
  for (;;) {
    let stats: Stats;
    let apps: AppRow[];
    try {
      [stats, { apps }] = await Promise.all([get<Stats>('stats'), get<{ apps: AppRow[] }>('apps')]);
    } catch (error) {
      const cause = error as NodeJS.ErrnoException;
      return fail(EXIT_FAILURE, `stats: ${cause.code === 'ECONNREFUSED' ? `cannot reach ${base.origin} (is the server running?)` : cause.message}`);
    }
    const rate = previous === undefined ? undefined : Math.round(((stats.node.publications - previous) * 1000) / intervalMs);
    previous = stats.node.publications;
    const text = render(base.origin, stats, apps, rate);
    if (values.once) {
      process.stdout.write(`${text}\n`);
      return 0;
    }
    // On a terminal, redraw in place; piped, one snapshot after the other.
    process.stdout.write(process.stdout.isTTY ? `\x1b[H\x1b[2J${text}\n` : `${text}\n\n`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function render(origin: string, stats: Stats, apps: AppRow[], rate: number | undefined): string {
  const { node, webhooks } = stats;
  const lines = [
    `${origin} (${stats.engine} engine, up ${node.uptimeSeconds} s)`,
    `  connections ${node.connections}   channels ${node.channels}   messages/s ${rate ?? '…'}   RSS ${mib(node.rssBytes)}   heap ${mib(node.heapUsedBytes)}`,
    `  webhooks: ${webhooks.delivered} delivered, ${webhooks.queued} queued, ${webhooks.dropped} dropped, ${webhooks.failedAttempts} failed attempts`,
    '',
  ];
  const rows = [['app', 'enabled', 'connections (node)', 'channels', 'subscriptions'], ...apps.map((a) => [a.id, a.enabled ? 'yes' : 'no', String(a.connectionsOnThisNode), String(a.channels ?? '?'), String(a.subscriptions ?? '?')])];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows) lines.push(`  ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')}`);
  return lines.join('\n');
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}

function getJson(url: URL, auth: string, timeoutMs: number, insecure: boolean): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { headers: { authorization: auth }, timeout: timeoutMs, ...(url.protocol === 'https:' ? { rejectUnauthorized: !insecure } : {}) }, (res: IncomingMessage) => {
      readStream(res).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms (--timeout MS)`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}
