// Chat on the @chorus/client SDK.
//
// Each room uses two channels:
//
//   chat-ROOM        the messages. Only messages go here, so the server's history of the room
//                    (its last 100 publications, for 5 minutes) is 100 real messages: what a
//                    newcomer is shown, and what a window that lost its connection catches up on.
//   chat-ROOM-live   presence (who is online) and the chatter that should not crowd the history
//                    out: `hello` (nicknames) and `typing`.
//
// Nicknames without a login: presence lists members as {user, uuid}, and anonymous connections
// all have user "" with no info (names in presence come from connection tokens, minted by a
// backend this example does not have). So every window announces itself with a `hello`
// {uuid, nick, from} on the live channel each time it (re)subscribes, asking the others to answer
// with theirs (`ask: true`). `uuid` is the window's presence id (the SDK's client id, which
// changes on every reconnect); `from` is a random id for the browser tab, which does not, so a
// window that reconnected and briefly appears twice in presence is listed once.
//
// Nothing lost across a reconnect: the SDK resubscribes with the last position it saw, and the
// server replays what was published meanwhile; messages written while offline wait in the SDK's
// queue and are sent once, in order, after the reconnect. The page only has to show each
// message once (by its offset) and in order.
import { startChorus } from '../shared/chorus.js';
import { describeError, toastFailure } from '../shared/toasts.js';
import { colorFor, getNickname, randomId, roomFromHash, setNickname, slug } from '../shared/identity.js';

const DEFAULT_ROOM = 'general';
const HISTORY_ON_JOIN = 50;
/** While typing, announce it at most this often… */
const TYPING_SEND_EVERY_MS = 2000;
/** …and show someone as typing for this long after their last announcement. */
const TYPING_SHOWN_FOR_MS = 3500;

const $ = (id) => document.getElementById(id);
const ui = {
  nickForm: $('nick-form'),
  nick: $('nick'),
  roomForm: $('room-form'),
  room: $('room'),
  roomTitle: $('room-title'),
  scroller: $('scroller'),
  messages: $('messages'),
  pending: $('pending'),
  typing: $('typing'),
  compose: $('compose'),
  text: $('text'),
  members: $('members'),
  onlineCount: $('online-count'),
};

const { client, toast } = await startChorus();
/** This tab, across reconnects (the presence uuid changes on each one). */
const tabId = randomId();
let nickname = getNickname();
/** The room being shown: its channels, listeners and what is on screen. */
let room;

ui.nick.value = nickname;
ui.nickForm.addEventListener('submit', (event) => {
  event.preventDefault();
  nickname = setNickname(ui.nick.value);
  ui.nick.value = nickname;
  if (room) sayHello(room, false); // tell the others the new name
  renderMembers();
});

ui.roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = slug(ui.room.value);
  if (name) location.hash = name; // → hashchange → joinRoom
});
window.addEventListener('hashchange', () => joinRoom(roomFromHash(DEFAULT_ROOM)));

ui.compose.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text || !room) return;
  ui.text.value = '';
  send(room, text);
});

ui.text.addEventListener('input', () => {
  if (!room || ui.text.value.trim() === '') return;
  const now = performance.now();
  if (now - room.typingSentAt < TYPING_SEND_EVERY_MS) return;
  room.typingSentAt = now;
  report(room.live.publish('typing', { from: tabId, nick: nickname }), 'Could not send the typing indicator');
});

setInterval(renderTyping, 500); // typing indicators expire on their own

joinRoom(roomFromHash(DEFAULT_ROOM));

function joinRoom(name) {
  if (room?.name === name) return;
  leaveRoom();
  const state = {
    name,
    messagesChannel: client.channel(`chat-${name}`),
    live: client.channel(`chat-${name}-live`, { presence: true }),
    /** "epoch:offset" of every message on screen, so none is shown twice. */
    shown: new Set(),
    /** Our own messages not confirmed yet, by their client id (`cid`). */
    pending: new Map(),
    /** Presence: uuid → member. */
    members: new Map(),
    /** From `hello`s: uuid → {from, nick}. */
    people: new Map(),
    /** Tab id → {nick, until}. */
    typists: new Map(),
    /** Tab id → server time of their latest message, to ignore older `typing`s replayed after a reconnect. */
    spokeAt: new Map(),
    typingSentAt: -Infinity,
    /** Functions that remove this room's listeners. */
    off: [],
  };
  room = state;
  ui.room.value = name;
  ui.roomTitle.textContent = `#${name}`;
  ui.messages.replaceChildren();
  ui.pending.replaceChildren();
  renderMembers();
  renderTyping();

  const { messagesChannel, live } = state;
  state.off.push(
    messagesChannel.on('message', (data, publication) => showMessage(state, publication)),
    messagesChannel.on('subscribed', ({ resubscribed, recovered, replayed }) => {
      if (resubscribed && recovered) toast(replayed ? `Back online: ${replayed} missed message${replayed === 1 ? '' : 's'} recovered.` : 'Back online: nothing missed.', { kind: 'success' });
    }),
    // The gap was too old (or the server restarted): reload what the server still has.
    messagesChannel.on('recovery-failed', () => {
      toast('Some messages may be missing: the server no longer had all of them.', { kind: 'info' });
      loadHistory(state);
    }),
    messagesChannel.on('error', (error) => toast(describeError(error), { kind: 'error', title: `#${name}` })),

    live.on('subscribed', () => {
      sayHello(state, true);
      refreshPresence(state); // join/leave events were missed while disconnected
    }),
    live.on('join', (member) => {
      state.members.set(member.uuid, member);
      renderMembers();
    }),
    live.on('leave', (member) => {
      state.members.delete(member.uuid);
      state.people.delete(member.uuid);
      renderMembers();
    }),
    live.on('hello', (data) => {
      if (!isHello(data)) return;
      state.people.set(data.uuid, { from: data.from, nick: data.nick });
      if (data.ask && data.from !== tabId) sayHello(state, false);
      renderMembers();
    }),
    live.on('typing', (data, publication) => {
      if (data?.from === tabId || typeof data?.nick !== 'string') return;
      if (publication.ts <= (state.spokeAt.get(data.from) ?? 0)) return; // they have sent that message since
      state.typists.set(data.from, { nick: data.nick, until: performance.now() + TYPING_SHOWN_FOR_MS });
      renderTyping();
    }),
    live.on('error', (error) => toast(describeError(error), { kind: 'error', title: `#${name}` })),
  );

  messagesChannel
    .subscribe()
    .then(() => loadHistory(state))
    .catch(toastFailure(toast, `Could not join #${name}`));
  live.subscribe().catch(toastFailure(toast, `Could not join #${name}`));
}

function leaveRoom() {
  if (!room) return;
  for (const off of room.off) off();
  room.messagesChannel.unsubscribe().catch(() => undefined);
  room.live.unsubscribe().catch(() => undefined);
  room = undefined;
}

/** The recent messages the server keeps; the ones already on screen are skipped. */
function loadHistory(state) {
  state.messagesChannel
    .history({ limit: HISTORY_ON_JOIN })
    .then(({ publications }) => {
      for (const publication of publications) if (publication.event === 'message') showMessage(state, publication);
    })
    .catch(toastFailure(toast, 'Could not load the recent messages'));
}

function refreshPresence(state) {
  state.live
    .presence()
    .then(({ members }) => {
      if (room !== state) return;
      state.members = new Map(members.map((member) => [member.uuid, member]));
      renderMembers();
    })
    .catch(toastFailure(toast, 'Could not load who is online'));
}

function sayHello(state, ask) {
  const uuid = client.session?.client;
  if (!uuid) return; // not connected: the next `subscribed` says hello anyway
  report(state.live.publish('hello', { uuid, from: tabId, nick: nickname, ask }), 'Could not announce your nickname');
}

function isHello(data) {
  return typeof data?.uuid === 'string' && typeof data.from === 'string' && typeof data.nick === 'string';
}

/**
 * Shows our message at once (greyed, "sending…"), and replaces it with the real one when the
 * server delivers it back: v1 subscribers receive their own publications, with their offset.
 */
function send(state, text) {
  const cid = randomId();
  const element = messageElement({ nick: nickname, text, mine: true, time: new Date() });
  element.classList.add('is-pending');
  element.querySelector('.message-time').textContent = navigator.onLine && client.state === 'connected' ? 'sending…' : 'queued';
  ui.pending.append(element);
  state.pending.set(cid, element);
  scrollToEnd();
  state.messagesChannel.publish('message', { text, nick: nickname, from: tabId, cid }).catch((error) => {
    element.classList.add('is-failed');
    element.querySelector('.message-time').textContent = 'not sent';
    toast(describeError(error), { kind: 'error', title: 'Message not sent' });
  });
  state.typingSentAt = -Infinity;
}

function showMessage(state, publication) {
  if (room !== state) return;
  const { data, epoch, offset, ts } = publication;
  const key = `${epoch}:${offset}`;
  if (state.shown.has(key)) return;
  state.shown.add(key);

  // Messages from other kinds of publishers (a raw WebSocket, REST) may be plain text.
  const text = typeof data === 'string' ? data : typeof data?.text === 'string' ? data.text : JSON.stringify(data);
  const nick = typeof data?.nick === 'string' ? data.nick : 'someone';
  const from = typeof data?.from === 'string' ? data.from : undefined;
  const element = messageElement({ nick, text, mine: from === tabId, time: new Date(ts) });
  element.dataset.epoch = epoch;
  element.dataset.offset = String(offset);

  // Keep the server's order: history can arrive after newer live messages.
  const later = [...ui.messages.children].find((other) => other.dataset.epoch === epoch && Number(other.dataset.offset) > offset);
  ui.messages.insertBefore(element, later ?? null);

  if (typeof data?.cid === 'string' && state.pending.has(data.cid)) {
    state.pending.get(data.cid).remove();
    state.pending.delete(data.cid);
  }
  if (from) {
    state.spokeAt.set(from, Math.max(ts, state.spokeAt.get(from) ?? 0));
    state.typists.delete(from);
    renderTyping();
  }
  scrollToEnd();
}

function messageElement({ nick, text, mine, time }) {
  const item = document.createElement('li');
  item.className = mine ? 'message mine' : 'message';
  item.dataset.testid = 'message';
  const author = document.createElement('span');
  author.className = 'message-author';
  author.style.color = colorFor(nick);
  author.textContent = nick;
  const stamp = document.createElement('time');
  stamp.className = 'message-time';
  stamp.dateTime = time.toISOString();
  stamp.textContent = time.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const body = document.createElement('p');
  body.className = 'message-text';
  body.dataset.testid = 'message-text';
  body.textContent = text;
  item.append(author, stamp, body);
  return item;
}

function renderMembers() {
  if (!room) {
    ui.members.replaceChildren();
    ui.onlineCount.textContent = '0';
    return;
  }
  const myUuid = client.session?.client;
  // One entry per tab: a window that reconnected may still be listed under its old uuid for a moment.
  const tabs = new Map();
  for (const uuid of room.members.keys()) {
    const person = room.people.get(uuid);
    const isMe = uuid === myUuid || person?.from === tabId;
    const key = isMe ? tabId : (person?.from ?? uuid);
    if (!tabs.has(key) || person) tabs.set(key, { nick: isMe ? nickname : (person?.nick ?? 'Someone (joining…)'), isMe });
  }
  const entries = [...tabs.values()].sort((a, b) => Number(b.isMe) - Number(a.isMe) || a.nick.localeCompare(b.nick));
  ui.members.replaceChildren(
    ...entries.map(({ nick, isMe }) => {
      const item = document.createElement('li');
      item.className = 'member';
      item.dataset.testid = 'member';
      const dot = document.createElement('span');
      dot.className = 'member-dot';
      dot.style.background = colorFor(nick);
      item.append(dot, `${nick}${isMe ? ' (you)' : ''}`);
      return item;
    }),
  );
  ui.onlineCount.textContent = String(entries.length);
}

function renderTyping() {
  const now = performance.now();
  const names = [];
  if (room) {
    for (const [from, { nick, until }] of room.typists) {
      if (until < now) room.typists.delete(from);
      else names.push(nick);
    }
  }
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  if (ui.typing.textContent !== text) ui.typing.textContent = text;
}

function scrollToEnd() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

/** Publishes whose failure is worth a toast but nothing more. */
function report(promise, title) {
  promise.catch(toastFailure(toast, title));
}
