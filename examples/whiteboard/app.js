// A shared whiteboard on the @chorus/client SDK: one channel per board, `whiteboard-NAME`, with
// presence on. Events on it:
//
//   draw          {id, gen, color, size, points: [x0, y0, x1, y1, …]}: a piece of a stroke. While
//                 the pen is down, the points gathered are sent every 50 ms, so a long stroke is
//                 many small `draw`s that others see as it is being drawn. Each piece starts
//                 where the previous one ended, so the pieces join up.
//   cursor        {uuid, name, color, x, y}: where someone's pointer is, at most 20 times a second
//                 (x null: it left the board). With `draw`, a busy pen sends ~40 messages a second,
//                 well under the server's default limit of 100 per connection.
//   clear         {gen}: wipe the board. Every piece carries the `gen` (clear count) it was drawn
//                 in, so a piece that was in flight when someone cleared is dropped everywhere.
//   sync-request  {requestId, from, to}: a newcomer asks `to` (a presence uuid) for the drawing…
//   snapshot      {requestId, to, gen, part, parts, pieces}: …which answers with every piece it
//                 has, in parts of ~32 KB (the server refuses messages over 64 KiB), or with
//                 {unavailable: true} if it is itself still loading.
//
// Why snapshots from the other browsers rather than the server's history: history keeps only a
// channel's last 100 publications for 5 minutes, far less than a drawing. Pieces are kept by id
// and a piece that is already there is ignored, so the snapshot and the live pieces that arrive
// while it loads can overlap in any order. After a short disconnect the SDK replays what was
// missed; if that is no longer possible (`recovery-failed`), the page asks for a snapshot again.
import { startChorus } from '../shared/chorus.js';
import { describeError, toastFailure } from '../shared/toasts.js';
import { colorFor, getNickname, randomId, roomFromHash, setNickname } from '../shared/identity.js';

const WIDTH = 1200;
const HEIGHT = 750;
const COLORS = ['#1d2330', '#d92d20', '#f79009', '#12b76a', '#2e90fa', '#9e77ed'];
const FLUSH_EVERY_MS = 50;
const CURSOR_EVERY_MS = 50;
/** A cursor not heard of for this long is removed (its owner's network may have gone). */
const CURSOR_TTL_MS = 10_000;
/** How long to wait for (each part of) a snapshot before asking someone else. */
const SYNC_TIMEOUT_MS = 2000;
const SNAPSHOT_PART_CHARS = 32_000;

const $ = (id) => document.getElementById(id);
const ui = {
  swatches: $('swatches'),
  size: $('size'),
  clear: $('clear'),
  nameForm: $('name-form'),
  name: $('name'),
  info: $('board-info'),
  canvas: $('canvas'),
  cursors: $('cursors'),
};
const ctx = ui.canvas.getContext('2d');

const { client, toast } = await startChorus();
const boardName = roomFromHash('lobby');
const channel = client.channel(`whiteboard-${boardName}`, { presence: true });
const tabId = randomId();

let name = getNickname();
let penColor = COLORS[0];
/** The drawing: every piece of the current generation, by id, in the order they arrived. */
let generation = 0;
const pieces = new Map();
/** True once this page has the whole drawing (and may hand it to newcomers). */
let synced = false;
/** The snapshot this page is waiting for: {requestId, received, timer, done}. */
let syncWait;
/** presence uuid → member */
const members = new Map();

ui.name.value = name;
ui.nameForm.addEventListener('submit', (event) => {
  event.preventDefault();
  name = setNickname(ui.name.value);
  ui.name.value = name;
});

for (const color of COLORS) {
  const swatch = document.createElement('button');
  swatch.type = 'button';
  swatch.className = 'swatch';
  swatch.style.background = color;
  swatch.setAttribute('aria-label', `Colour ${color}`);
  swatch.setAttribute('aria-pressed', String(color === penColor));
  swatch.addEventListener('click', () => {
    penColor = color;
    for (const other of ui.swatches.children) other.setAttribute('aria-pressed', String(other === swatch));
  });
  ui.swatches.append(swatch);
}

ui.clear.addEventListener('click', () => {
  clearBoard(generation + 1);
  report(channel.publish('clear', { gen: generation }), 'Could not clear the board');
});

// ---- Drawing with the pointer -------------------------------------------------------------

/** The stroke being drawn: {id, seq, color, size, last, points, timer}. */
let stroke;

ui.canvas.addEventListener('pointerdown', (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  ui.canvas.setPointerCapture(event.pointerId);
  const point = toBoard(event);
  stroke = { id: `${tabId}-${randomId()}`, seq: 0, color: penColor, size: Number(ui.size.value), last: point, points: [point] };
  drawPiece({ color: stroke.color, size: stroke.size, points: point });
  stroke.timer = setInterval(flush, FLUSH_EVERY_MS);
});

ui.canvas.addEventListener('pointermove', (event) => {
  const point = toBoard(event);
  sendCursor(point);
  if (!stroke) return;
  // Drawn here at once; the others get it with the next flush.
  drawPiece({ color: stroke.color, size: stroke.size, points: [...stroke.last, ...point] });
  stroke.last = point;
  stroke.points.push(point);
});

const endStroke = () => {
  if (!stroke) return;
  flush();
  clearInterval(stroke.timer);
  stroke = undefined;
  redraw(); // what this page drew bit by bit, now drawn exactly as the others draw it
};
ui.canvas.addEventListener('pointerup', endStroke);
ui.canvas.addEventListener('pointercancel', endStroke);
ui.canvas.addEventListener('pointerleave', () => sendCursor(null));

/** Sends the points gathered since the last flush as one `draw` piece. */
function flush() {
  // Only the start point since the last piece: the pen has not moved (a first piece is a dot).
  if (!stroke || (stroke.points.length === 1 && stroke.seq > 0)) return;
  const piece = { id: `${stroke.id}-${stroke.seq++}`, gen: generation, color: stroke.color, size: stroke.size, points: stroke.points.flat() };
  pieces.set(piece.id, piece);
  stroke.points = [stroke.last]; // the next piece starts where this one ends
  report(channel.publish('draw', piece), 'A stroke was not sent');
  updateInfo();
}

/** Pointer position in board coordinates (the canvas is scaled by CSS). */
function toBoard(event) {
  const rect = ui.canvas.getBoundingClientRect();
  const x = Math.round(((event.clientX - rect.left) / rect.width) * WIDTH);
  const y = Math.round(((event.clientY - rect.top) / rect.height) * HEIGHT);
  return [Math.min(WIDTH, Math.max(0, x)), Math.min(HEIGHT, Math.max(0, y))];
}

// ---- Rendering ------------------------------------------------------------------------------

function drawPiece({ color, size, points }) {
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = size;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  if (points.length === 2) {
    // A dot: the pen went down and up without moving.
    ctx.beginPath();
    ctx.arc(points[0], points[1], size / 2, 0, Math.PI * 2);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(points[0], points[1]);
  for (let i = 2; i < points.length; i += 2) ctx.lineTo(points[i], points[i + 1]);
  ctx.stroke();
}

function redraw() {
  ctx.clearRect(0, 0, WIDTH, HEIGHT);
  for (const piece of pieces.values()) drawPiece(piece);
  updateInfo();
}

function clearBoard(gen) {
  generation = gen;
  pieces.clear();
  redraw();
}

/** Adds a piece from the network; returns whether it was new. */
function addPiece(piece) {
  if (!isPiece(piece) || piece.gen < generation) return false;
  if (piece.gen > generation) clearBoard(piece.gen); // someone cleared and we missed it
  if (pieces.has(piece.id)) return false;
  pieces.set(piece.id, piece);
  drawPiece(piece);
  return true;
}

function isPiece(piece) {
  return (
    typeof piece?.id === 'string' &&
    Number.isInteger(piece.gen) &&
    typeof piece.color === 'string' &&
    typeof piece.size === 'number' &&
    Array.isArray(piece.points) &&
    piece.points.length >= 2 &&
    piece.points.length % 2 === 0 &&
    piece.points.every((n) => typeof n === 'number')
  );
}

function updateInfo() {
  const others = Math.max(0, members.size - 1);
  ui.info.textContent = `${synced ? '' : 'Loading the drawing… · '}${others === 0 ? 'Only you here' : `${others} other${others === 1 ? '' : 's'} here`}`;
  ui.canvas.dataset.pieces = String(pieces.size);
  ui.canvas.dataset.synced = String(synced);
}

// ---- Cursors --------------------------------------------------------------------------------

const myColor = colorFor(tabId);
let cursorSentAt = -Infinity;
let cursorTimer;
let cursorNext;

/** Sends our pointer position, at most every CURSOR_EVERY_MS; the latest position always goes out. */
function sendCursor(point) {
  cursorNext = point;
  if (cursorTimer) return;
  const wait = Math.max(0, cursorSentAt + CURSOR_EVERY_MS - performance.now());
  cursorTimer = setTimeout(() => {
    cursorTimer = undefined;
    cursorSentAt = performance.now();
    const uuid = client.session?.client;
    if (!uuid) return; // offline: stale positions are not worth queueing
    const [x, y] = cursorNext ?? [null, null];
    report(channel.publish('cursor', { uuid, name, color: myColor, x, y }), 'Cursor position not sent');
  }, wait);
}

const cursors = new Map(); // uuid → {element, label, seenAt}

function showCursor({ uuid, name: who, color, x, y }) {
  if (typeof uuid !== 'string' || uuid === client.session?.client) return;
  if (x === null || typeof x !== 'number' || typeof y !== 'number') {
    removeCursor(uuid);
    return;
  }
  let cursor = cursors.get(uuid);
  if (!cursor) {
    const element = document.createElement('div');
    element.className = 'cursor';
    element.dataset.testid = 'cursor';
    const label = document.createElement('span');
    label.className = 'cursor-label';
    element.append(label);
    ui.cursors.append(element);
    cursor = { element, label };
    cursors.set(uuid, cursor);
  }
  cursor.seenAt = performance.now();
  cursor.element.style.setProperty('--cursor-color', typeof color === 'string' ? color : '#555');
  cursor.element.style.left = `${(x / WIDTH) * 100}%`;
  cursor.element.style.top = `${(y / HEIGHT) * 100}%`;
  cursor.label.textContent = typeof who === 'string' ? who : 'someone';
}

function removeCursor(uuid) {
  cursors.get(uuid)?.element.remove();
  cursors.delete(uuid);
}

setInterval(() => {
  for (const [uuid, cursor] of cursors) if (performance.now() - cursor.seenAt > CURSOR_TTL_MS) removeCursor(uuid);
}, 1000);

// ---- Late joiners: snapshots ----------------------------------------------------------------

/** Asks the others, one after the other, for the drawing, until one of them hands it over. */
async function loadDrawing() {
  synced = false;
  updateInfo();
  try {
    const { members: present } = await channel.presence();
    const me = client.session?.client;
    // The longest-present members first: they are the most likely to have everything.
    for (const member of present) {
      if (member.uuid === me) continue;
      if (await askForSnapshot(member.uuid)) break;
    }
  } catch (error) {
    toastFailure(toast, 'Could not load the drawing')(error);
  }
  synced = true;
  updateInfo();
}

function askForSnapshot(target) {
  return new Promise((resolve) => {
    const requestId = randomId();
    const done = (ok) => {
      clearTimeout(syncWait?.timer);
      syncWait = undefined;
      resolve(ok);
    };
    syncWait = { requestId, received: 0, done, timer: setTimeout(() => done(false), SYNC_TIMEOUT_MS) };
    channel.publish('sync-request', { requestId, from: client.session?.client, to: target }).catch(() => done(false));
  });
}

function receiveSnapshot(data) {
  if (!syncWait || data?.requestId !== syncWait.requestId) return; // for someone else
  if (data.unavailable) return syncWait.done(false);
  clearTimeout(syncWait.timer);
  syncWait.timer = setTimeout(() => syncWait?.done(false), SYNC_TIMEOUT_MS);
  if (Number.isInteger(data.gen) && data.gen > generation) clearBoard(data.gen);
  for (const piece of Array.isArray(data.pieces) ? data.pieces : []) addPiece(piece);
  syncWait.received += 1;
  updateInfo();
  if (syncWait.received >= data.parts) syncWait.done(true);
}

async function answerSyncRequest(data) {
  if (data?.to !== client.session?.client) return;
  const { requestId } = data;
  if (!synced) {
    report(channel.publish('snapshot', { requestId, to: data.from, unavailable: true }), 'Could not answer a newcomer');
    return;
  }
  // Split into parts that stay well under the server's 64 KiB message limit.
  const parts = [[]];
  let chars = 0;
  for (const piece of pieces.values()) {
    const length = JSON.stringify(piece).length;
    if (chars + length > SNAPSHOT_PART_CHARS && parts.at(-1).length > 0) {
      parts.push([]);
      chars = 0;
    }
    parts.at(-1).push(piece);
    chars += length;
  }
  try {
    // One part at a time: each publish waits for the server's ack, which paces a big drawing.
    for (const [part, partPieces] of parts.entries()) {
      await channel.publish('snapshot', { requestId, to: data.from, gen: generation, part, parts: parts.length, pieces: partPieces });
    }
  } catch (error) {
    toastFailure(toast, 'Could not send the drawing to a newcomer')(error);
  }
}

// ---- The channel ----------------------------------------------------------------------------

channel.on('draw', (piece) => {
  if (addPiece(piece)) updateInfo();
});
channel.on('clear', (data) => {
  if (Number.isInteger(data?.gen) && data.gen > generation) clearBoard(data.gen);
});
channel.on('cursor', showCursor);
channel.on('sync-request', answerSyncRequest);
channel.on('snapshot', receiveSnapshot);
channel.on('join', (member) => {
  members.set(member.uuid, member);
  updateInfo();
});
channel.on('leave', (member) => {
  members.delete(member.uuid);
  removeCursor(member.uuid);
  updateInfo();
});
channel.on('subscribed', ({ resubscribed }) => {
  // join/leave events were missed while disconnected: refresh the roster.
  channel
    .presence()
    .then(({ members: present }) => {
      members.clear();
      for (const member of present) members.set(member.uuid, member);
      updateInfo();
    })
    .catch(() => undefined);
  if (!resubscribed) loadDrawing();
});
// Disconnected for too long: the strokes drawn meanwhile are gone from the server's history.
channel.on('recovery-failed', () => loadDrawing());
channel.on('error', (error) => toast(describeError(error), { kind: 'error', title: 'Whiteboard' }));
channel.subscribe().catch(toastFailure(toast, 'Could not open the board'));
updateInfo();

function report(promise, title) {
  promise.catch(toastFailure(toast, title));
}
