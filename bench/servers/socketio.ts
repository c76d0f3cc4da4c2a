/**
 * Socket.IO under test, with the settings its performance guide recommends: WebSocket
 * transport only (no long-polling upgrade dance), permessage-deflate and HTTP compression off,
 * no client bundle served. Clients connect to `/socket.io/?EIO=4&transport=websocket&channel=…&api_key=…`
 * (engine.io v4), join the room named by `channel` on connect, and every `m` event a client
 * emits is relayed to the rest of the room with `socket.to(room).emit`, which encodes and frames
 * the packet once for all recipients (socket.io-adapter's pre-encoded WebSocket frame).
 *
 * Run: node --import tsx bench/servers/socketio.ts   (prints {"ready":true,"port":…} when listening)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { BENCH_APP, BENCH_HOST } from '../lib/config.ts';
import { announceReady } from './harness.ts';

const http = createServer();
const io = new Server(http, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
});

io.use((socket, next) => {
  const { api_key: key, channel } = socket.handshake.query;
  if (key !== BENCH_APP.key || typeof channel !== 'string' || channel === '') next(new Error('unknown api key or channel'));
  else next();
});

io.on('connection', (socket) => {
  const room = String(socket.handshake.query.channel);
  void socket.join(room);
  socket.on('m', (data: unknown) => {
    socket.to(room).emit('m', data);
  });
});

http.listen(0, BENCH_HOST, () => announceReady((http.address() as AddressInfo).port));
