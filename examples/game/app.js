// Multiplayer Pong on the @chorus/client SDK: one channel per room, `pong-ROOM`, with presence.
//
// Who does what comes from presence, which lists members in the order they joined: the first
// member is the host (it runs the simulation and plays the left paddle), the second plays the
// right paddle, everyone else watches. Every window sees the same roster, so they all agree
// without any negotiation; when the host leaves, the next one takes over from the last state.
//
//   state   host → everyone, every 20 ms (50 a second): {seq, ball: [x, y, vx, vy], paddles,
//           score, waiting, players}
//   input   right player → host, at most every 33 ms and only when it moved: {uuid, y}
//
// The server's default limit is 100 messages a second per connection (bursts of 200), so 50
// states a second leave room to spare. States are only sent while connected: a queued backlog of
// stale states would be worse than useless.
//
// Smoothness: the screen is redrawn on every animation frame (60 a second or more), between two
// states. The ball is drawn where its last state and velocity say it is now, and your own paddle
// where your input puts it, so neither waits for the network.
import { startChorus } from '../shared/chorus.js';
import { describeError, toastFailure } from '../shared/toasts.js';
import { roomFromHash } from '../shared/identity.js';

const W = 800;
const H = 500;
const PADDLE_W = 12;
const PADDLE_H = 90;
const PADDLE_MARGIN = 24;
const BALL = 12;
const STATE_EVERY_MS = 20;
const INPUT_EVERY_MS = 33;
const KEY_SPEED = 600; // px per second
const START_SPEED = 380;
const SPEED_UP = 1.06;
const MAX_SPEED = 950;
const SERVE_PAUSE_S = 0.8;

const $ = (id) => document.getElementById(id);
const ui = {
  canvas: $('canvas'),
  role: $('role'),
  players: $('players'),
  score: $('score'),
  upsLabel: $('ups-label'),
  ups: $('ups'),
  fps: $('fps'),
  stats: $('stats'),
};
const ctx = ui.canvas.getContext('2d');

const { client, toast } = await startChorus();
const channel = client.channel(`pong-${roomFromHash('arena')}`, { presence: true });

/** Presence uuids in join order. */
let roster = [];
/** 'host' (runs the game, left paddle) | 'right' | 'spectator' | 'offline' */
let role = 'offline';
/** The host's simulation (host only). */
let game;
let hostTimer;
let lastTick = 0;
/** The latest state, sent (host) or received (others), and when: what the screen shows. */
let latest = { state: initialState(), at: performance.now() };
/** Where this window's own paddle is (from the mouse, touch or keys). */
let myY = H / 2;
let inputSentY;
let inputSentAt = -Infinity;
/** The right player's paddle, as its input last said (host only). */
let rightY = H / 2;
/** Timestamps of the states received (or sent) in the last second, and of the frames drawn. */
const updateTimes = [];
const frameTimes = [];

// ---- Roles from presence --------------------------------------------------------------------

channel.on('subscribed', () => {
  channel
    .presence()
    .then(({ members }) => {
      roster = members.map((member) => member.uuid);
      updateRole();
    })
    .catch(toastFailure(toast, 'Could not load the players'));
});
channel.on('join', ({ uuid }) => {
  if (!roster.includes(uuid)) roster.push(uuid);
  updateRole();
});
channel.on('leave', ({ uuid }) => {
  roster = roster.filter((other) => other !== uuid);
  updateRole();
});
client.on('disconnected', () => {
  roster = []; // rebuilt from presence after the reconnect
  updateRole();
});

function updateRole() {
  const me = client.session?.client;
  const index = me ? roster.indexOf(me) : -1;
  const next = index === 0 ? 'host' : index === 1 ? 'right' : index > 1 ? 'spectator' : 'offline';
  if (next !== role) {
    role = next;
    if (role === 'host') startHosting();
    else stopHosting();
  }
  ui.role.textContent = { host: 'Left paddle (host)', right: 'Right paddle', spectator: 'Watching', offline: 'Not in the game' }[role];
  ui.players.textContent = String(Math.min(roster.length, 2)) + (roster.length > 2 ? ` + ${roster.length - 2} watching` : '');
  ui.upsLabel.textContent = role === 'host' ? 'Updates/s sent' : 'Updates/s received';
  ui.stats.dataset.role = role;
}

// ---- The host: simulation ---------------------------------------------------------------------

function initialState() {
  return { seq: 0, ball: [W / 2, H / 2, 0, 0], paddles: [H / 2, H / 2], score: [0, 0], waiting: true, players: [] };
}

function startHosting() {
  // Carry on from the last state seen: a new host takes over the game where it was.
  const last = latest.state;
  game = {
    seq: last.seq,
    ball: { x: last.ball[0], y: last.ball[1], vx: last.ball[2], vy: last.ball[3] },
    paddles: [...last.paddles],
    score: [...last.score],
    waiting: true,
    pause: SERVE_PAUSE_S,
  };
  rightY = last.paddles[1];
  lastTick = performance.now();
  hostTimer = setInterval(hostTick, STATE_EVERY_MS);
}

function stopHosting() {
  clearInterval(hostTimer);
  hostTimer = undefined;
  game = undefined;
}

function hostTick() {
  const now = performance.now();
  const dt = Math.min(0.05, (now - lastTick) / 1000);
  lastTick = now;
  game.paddles = [myY, rightY];
  const waiting = roster.length < 2;
  if (waiting) {
    Object.assign(game.ball, { x: W / 2, y: H / 2, vx: 0, vy: 0 });
    game.pause = SERVE_PAUSE_S;
  } else if (game.waiting) {
    game.score = [0, 0]; // a new opponent: a new match
    serve(Math.random() < 0.5 ? -1 : 1);
  } else {
    step(dt);
  }
  game.waiting = waiting;
  game.seq += 1;

  const { ball } = game;
  const paused = game.pause > 0;
  const state = {
    seq: game.seq,
    ball: [round(ball.x), round(ball.y), paused ? 0 : round(ball.vx), paused ? 0 : round(ball.vy)],
    paddles: game.paddles.map(round),
    score: game.score,
    waiting,
    players: roster.slice(0, 2),
  };
  latest = { state, at: now };
  if (client.state !== 'connected' || roster.length < 2) return; // nobody to send it to
  countUpdate(now);
  channel.publish('state', state).catch(toastFailure(toast, 'Game state not sent'));
}

function step(dt) {
  if (game.pause > 0) {
    game.pause -= dt;
    return;
  }
  const { ball } = game;
  const r = BALL / 2;
  const prevX = ball.x;
  ball.x += ball.vx * dt;
  ball.y += ball.vy * dt;
  if (ball.y < r) {
    ball.y = r;
    ball.vy = Math.abs(ball.vy);
  } else if (ball.y > H - r) {
    ball.y = H - r;
    ball.vy = -Math.abs(ball.vy);
  }
  // A paddle hit: the ball crossed the paddle's face this tick, within its height.
  const leftFace = PADDLE_MARGIN + PADDLE_W;
  const rightFace = W - PADDLE_MARGIN - PADDLE_W;
  if (ball.vx < 0 && prevX - r >= leftFace && ball.x - r < leftFace && hits(0)) bounce(1, leftFace + r, 0);
  else if (ball.vx > 0 && prevX + r <= rightFace && ball.x + r > rightFace && hits(1)) bounce(-1, rightFace - r, 1);
  // A miss: a point for the other side, who then receives the serve.
  if (ball.x < -BALL) {
    game.score[1] += 1;
    serve(-1);
  } else if (ball.x > W + BALL) {
    game.score[0] += 1;
    serve(1);
  }
}

function hits(side) {
  return Math.abs(game.ball.y - game.paddles[side]) <= PADDLE_H / 2 + BALL / 2;
}

/** Sends the ball back, steeper the further from the paddle's middle it hit. */
function bounce(direction, x, side) {
  const { ball } = game;
  const offset = Math.max(-1, Math.min(1, (ball.y - game.paddles[side]) / (PADDLE_H / 2)));
  const angle = offset * (Math.PI / 3);
  const speed = Math.min(MAX_SPEED, Math.hypot(ball.vx, ball.vy) * SPEED_UP);
  ball.x = x;
  ball.vx = direction * speed * Math.cos(angle);
  ball.vy = speed * Math.sin(angle);
}

function serve(direction) {
  const angle = (Math.random() - 0.5) * (Math.PI / 3);
  Object.assign(game.ball, { x: W / 2, y: H / 2, vx: direction * START_SPEED * Math.cos(angle), vy: START_SPEED * Math.sin(angle) });
  game.pause = SERVE_PAUSE_S;
}

function round(n) {
  return Math.round(n * 10) / 10;
}

// ---- Everyone: network --------------------------------------------------------------------

channel.on('state', (state) => {
  if (role === 'host' || !isState(state)) return;
  const now = performance.now();
  latest = { state, at: now };
  countUpdate(now);
});

channel.on('input', (data) => {
  if (role === 'host' && data?.uuid === roster[1] && typeof data.y === 'number') rightY = clampPaddle(data.y);
});

channel.on('error', (error) => toast(describeError(error), { kind: 'error', title: 'Game' }));
channel.subscribe().catch(toastFailure(toast, 'Could not join the game'));

function isState(state) {
  return Array.isArray(state?.ball) && state.ball.length === 4 && Array.isArray(state.paddles) && Array.isArray(state.score) && Array.isArray(state.players);
}

/** The right player tells the host where its paddle is: at most every INPUT_EVERY_MS, only when it moved. */
function sendInput(now) {
  if (role !== 'right' || client.state !== 'connected') return;
  if (myY === inputSentY || now - inputSentAt < INPUT_EVERY_MS) return;
  inputSentY = myY;
  inputSentAt = now;
  channel.publish('input', { uuid: client.session.client, y: round(myY) }).catch(toastFailure(toast, 'Paddle move not sent'));
}

function countUpdate(now) {
  updateTimes.push(now);
}

// ---- Everyone: input ------------------------------------------------------------------------

const keys = new Set();
window.addEventListener('keydown', (event) => {
  if (['ArrowUp', 'ArrowDown', 'w', 's', 'W', 'S'].includes(event.key)) {
    keys.add(event.key.toLowerCase());
    event.preventDefault();
  }
});
window.addEventListener('keyup', (event) => keys.delete(event.key.toLowerCase()));
window.addEventListener('blur', () => keys.clear());

ui.canvas.addEventListener('pointermove', (event) => {
  const rect = ui.canvas.getBoundingClientRect();
  myY = clampPaddle(((event.clientY - rect.top) / rect.height) * H);
});
ui.canvas.addEventListener('pointerdown', (event) => {
  ui.canvas.setPointerCapture(event.pointerId); // keep following a finger that leaves the field
});

function clampPaddle(y) {
  return Math.max(PADDLE_H / 2, Math.min(H - PADDLE_H / 2, y));
}

// ---- Everyone: drawing ----------------------------------------------------------------------

let lastFrame = performance.now();

function frame(now) {
  const dt = Math.min(0.1, (now - lastFrame) / 1000);
  lastFrame = now;
  const up = keys.has('arrowup') || keys.has('w');
  const down = keys.has('arrowdown') || keys.has('s');
  if (up !== down) myY = clampPaddle(myY + (up ? -1 : 1) * KEY_SPEED * dt);
  sendInput(now);

  frameTimes.push(now);
  draw(now);
  updateStats(now);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

function draw(now) {
  const { state, at } = latest;
  // Where the ball is now: its last state moved along by its velocity (at most 100 ms ahead).
  const ahead = Math.min(0.1, (now - at) / 1000);
  const r = BALL / 2;
  const ballX = state.ball[0] + state.ball[2] * ahead;
  const ballY = Math.max(r, Math.min(H - r, state.ball[1] + state.ball[3] * ahead));
  // Your own paddle follows your input at once.
  const left = role === 'host' ? myY : state.paddles[0];
  const right = role === 'right' ? myY : state.paddles[1];

  ctx.fillStyle = '#0f1420';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = 'rgb(255 255 255 / 0.25)';
  ctx.setLineDash([10, 14]);
  ctx.lineWidth = 4;
  ctx.beginPath();
  ctx.moveTo(W / 2, 0);
  ctx.lineTo(W / 2, H);
  ctx.stroke();
  ctx.setLineDash([]);

  ctx.fillStyle = 'rgb(255 255 255 / 0.8)';
  ctx.font = '600 48px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.fillText(String(state.score[0]), W / 2 - 80, 64);
  ctx.fillText(String(state.score[1]), W / 2 + 80, 64);

  ctx.fillStyle = role === 'host' ? '#6d94ff' : '#e6e9ef';
  ctx.fillRect(PADDLE_MARGIN, left - PADDLE_H / 2, PADDLE_W, PADDLE_H);
  ctx.fillStyle = role === 'right' ? '#6d94ff' : '#e6e9ef';
  ctx.fillRect(W - PADDLE_MARGIN - PADDLE_W, right - PADDLE_H / 2, PADDLE_W, PADDLE_H);

  if (state.waiting) {
    ctx.font = '500 22px system-ui, sans-serif';
    ctx.fillText(role === 'offline' ? 'Connecting…' : 'Waiting for a second player: open this page in another window', W / 2, H / 2 + 60);
  }
  ctx.fillStyle = '#ffd166';
  ctx.fillRect(ballX - r, ballY - r, BALL, BALL);
}

/** How many of `times` fall in the last second (older ones are dropped). */
function perSecond(times, now = performance.now()) {
  while (times.length && times[0] < now - 1000) times.shift();
  return times.length;
}

function updateStats(now) {
  const ups = String(perSecond(updateTimes, now));
  const fps = String(perSecond(frameTimes, now));
  if (ui.ups.textContent !== ups) ui.ups.textContent = ups;
  if (ui.fps.textContent !== fps) ui.fps.textContent = fps;
  const score = `${latest.state.score[0]} : ${latest.state.score[1]}`;
  if (ui.score.textContent !== score) ui.score.textContent = score;
  ui.stats.dataset.ups = ups;
}

/** For the console (and tests): the game as this window sees it. */
window.pong = {
  get role() {
    return role;
  },
  get roster() {
    return [...roster];
  },
  get state() {
    return latest.state;
  },
  get updatesPerSecond() {
    return perSecond(updateTimes);
  },
  get framesPerSecond() {
    return perSecond(frameTimes);
  },
};
