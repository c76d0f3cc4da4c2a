/**
 * The baseline: the broadcast loop most Node WebSocket servers start with. A `ws` server with
 * the same URL shape as a Chorus raw channel (`/v4/{channel}?api_key=…`); every message a
 * client sends is passed to `client.send()` for each other client on the channel, one by one,
 * so each delivery is framed and written separately.
 *
 * Run: node --import tsx bench/servers/naive-ws.ts   (prints {"ready":true,"port":…} when listening)
 */
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { BENCH_APP, BENCH_HOST } from '../lib/config.ts';
import { announceReady } from './harness.ts';

const RAW_PATH = /^\/v[34]\/([^/]+)$/;
const channels = new Map<string, Set<WebSocket>>();

const wss = new WebSocketServer({ host: BENCH_HOST, port: 0, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const channel = RAW_PATH.exec(url.pathname)?.[1];
  if (channel === undefined || url.searchParams.get('api_key') !== BENCH_APP.key) {
    ws.close(4001, 'unknown api key or channel');
    return;
  }
  let peers = channels.get(channel);
  if (!peers) channels.set(channel, (peers = new Set()));
  const members = peers;
  members.add(ws);

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    for (const client of members) {
      if (client !== ws && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
  ws.on('error', () => undefined);
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0) channels.delete(channel);
  });
});

wss.on('listening', () => announceReady((wss.address() as AddressInfo).port));
