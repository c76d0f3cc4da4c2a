/**
 * The raw ceiling: how fast one Node process can relay on this machine with no WebSocket
 * library at all. A `net` server that does only what the protocol requires (the HTTP upgrade,
 * reading masked client frames, unmasking), frames each message once, and writes everything
 * due to a socket within one event-loop turn as one buffer: the same coalescing Chorus does,
 * without routing, limits, history, presence or ws. Same URL shape as a Chorus raw channel.
 *
 * Not a usable server: no fragmentation, no ping/pong, no close handshake, no limits, no
 * backpressure (a slow reader makes it queue without bound), no UTF-8 validation.
 *
 * Run: node --import tsx bench/servers/raw.ts   (prints {"ready":true,"port":…} when listening)
 */
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { BENCH_APP, BENCH_HOST } from '../lib/config.ts';
import { announceReady } from './harness.ts';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const REQUEST_LINE = /^GET (\/v[34]\/([^/?\s]+)\?(\S*)) HTTP\/1\.1\r\n/;
const KEY_HEADER = /\r\nsec-websocket-key:[ \t]*(\S+)/i;
const MAX_HEAD = 8192;

interface Client {
  readonly socket: Socket;
  readonly channel: Channel;
  /** An incomplete frame from the previous chunk. */
  carry: Buffer | undefined;
}

interface Channel {
  readonly name: string;
  readonly members: Set<Client>;
  /** Frames published this turn, and who sent each. */
  frames: Buffer[];
  senders: Client[];
  bytes: number;
  dirty: boolean;
}

const channels = new Map<string, Channel>();
let dirtyChannels: Channel[] = [];
let flushScheduled = false;

const server = createServer({ noDelay: true }, (socket) => {
  let head = '';
  const onHead = (chunk: Buffer): void => {
    head += chunk.toString('latin1');
    const headEnd = head.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      if (head.length > MAX_HEAD) socket.destroy();
      return;
    }
    socket.off('data', onHead);
    const request = REQUEST_LINE.exec(head);
    const key = KEY_HEADER.exec(head)?.[1];
    if (!request || !key || new URLSearchParams(request[3]).get('api_key') !== BENCH_APP.key) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const client: Client = { socket, channel: join(decodeURIComponent(request[2] ?? '')), carry: undefined };
    client.channel.members.add(client);
    socket.on('data', (data: Buffer) => onFrames(client, data));
    socket.once('close', () => leave(client));
    const rest = head.slice(headEnd + 4);
    head = '';
    if (rest.length > 0) onFrames(client, Buffer.from(rest, 'latin1'));
  };
  socket.on('data', onHead);
  socket.on('error', () => undefined);
});

function join(name: string): Channel {
  let channel = channels.get(name);
  if (!channel) channels.set(name, (channel = { name, members: new Set(), frames: [], senders: [], bytes: 0, dirty: false }));
  return channel;
}

function leave(client: Client): void {
  const { channel } = client;
  channel.members.delete(client);
  if (channel.members.size === 0 && !channel.dirty) channels.delete(channel.name);
}

/** Parses whole masked client frames; each data frame becomes one unmasked server frame. */
function onFrames(client: Client, chunk: Buffer): void {
  let buf = chunk;
  if (client.carry) {
    buf = Buffer.concat([client.carry, chunk]);
    client.carry = undefined;
  }
  const end = buf.length;
  let i = 0;
  while (end - i >= 2) {
    const b0 = buf[i]!;
    const b1 = buf[i + 1]!;
    const length7 = b1 & 0x7f;
    const extended = length7 === 126 ? 2 : length7 === 127 ? 8 : 0;
    const headerLength = 2 + extended + 4;
    if (end - i < headerLength) break;
    const length = length7 < 126 ? length7 : length7 === 126 ? buf.readUInt16BE(i + 2) : Number(buf.readBigUInt64BE(i + 2));
    if (end - i < headerLength + length) break;
    const opcode = b0 & 0x0f;
    if (opcode === 0x8) {
      client.socket.destroy();
      return;
    }
    if (opcode === 0x1 || opcode === 0x2) {
      const maskAt = i + 2 + extended;
      const payloadAt = maskAt + 4;
      const outHeader = length < 126 ? 2 : length < 65536 ? 4 : 10;
      const out = Buffer.allocUnsafe(outHeader + length);
      out[0] = 0x80 | opcode;
      if (outHeader === 2) {
        out[1] = length;
      } else if (outHeader === 4) {
        out[1] = 126;
        out.writeUInt16BE(length, 2);
      } else {
        out[1] = 127;
        out.writeBigUInt64BE(BigInt(length), 2);
      }
      const m0 = buf[maskAt]!;
      const m1 = buf[maskAt + 1]!;
      const m2 = buf[maskAt + 2]!;
      const m3 = buf[maskAt + 3]!;
      let k = 0;
      for (; k + 3 < length; k += 4) {
        out[outHeader + k] = buf[payloadAt + k]! ^ m0;
        out[outHeader + k + 1] = buf[payloadAt + k + 1]! ^ m1;
        out[outHeader + k + 2] = buf[payloadAt + k + 2]! ^ m2;
        out[outHeader + k + 3] = buf[payloadAt + k + 3]! ^ m3;
      }
      for (; k < length; k++) out[outHeader + k] = buf[payloadAt + k]! ^ buf[maskAt + (k & 3)]!;
      publish(client, out);
    }
    i += headerLength + length;
  }
  if (i < end) client.carry = Buffer.from(buf.subarray(i));
}

function publish(from: Client, frame: Buffer): void {
  const channel = from.channel;
  channel.frames.push(frame);
  channel.senders.push(from);
  channel.bytes += frame.length;
  if (channel.dirty) return;
  channel.dirty = true;
  dirtyChannels.push(channel);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

/** Once per turn: each channel's frames of the turn go to each member as one write. */
function flush(): void {
  flushScheduled = false;
  const due = dirtyChannels;
  dirtyChannels = [];
  for (const channel of due) {
    const { frames, senders } = channel;
    const onlySender = senders.every((sender) => sender === senders[0]) ? senders[0] : undefined;
    if (onlySender) {
      const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames, channel.bytes);
      for (const member of channel.members) if (member !== onlySender) member.socket.write(data);
    } else {
      for (const member of channel.members) {
        const own = frames.filter((_, index) => senders[index] !== member);
        if (own.length > 0) member.socket.write(own.length === 1 ? own[0]! : Buffer.concat(own));
      }
    }
    channel.frames = [];
    channel.senders = [];
    channel.bytes = 0;
    channel.dirty = false;
    if (channel.members.size === 0) channels.delete(channel.name);
  }
}

server.listen(0, BENCH_HOST, () => announceReady((server.address() as AddressInfo).port));
