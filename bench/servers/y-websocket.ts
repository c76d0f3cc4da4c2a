/**
 * The peer for Yjs rooms: the sample y-websocket server from npm (@y/websocket-server), its own
 * `setupWSConnection` on a plain `ws` server, exactly as its bin/server.js wires it (no
 * persistence: a document lives while a connection is open). Rooms are `/{room}`.
 *
 * Run: node --import tsx bench/servers/y-websocket.ts   (prints {"ready":true,"port":…} when listening)
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { setupWSConnection } from '@y/websocket-server/utils';
import { BENCH_HOST } from '../lib/config.ts';
import { announceReady } from './harness.ts';

const wss = new WebSocketServer({ host: BENCH_HOST, port: 0, perMessageDeflate: false });
wss.on('connection', (ws, req) => setupWSConnection(ws, req));
wss.on('listening', () => announceReady((wss.address() as AddressInfo).port));
