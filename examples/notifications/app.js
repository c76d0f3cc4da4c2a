// Live notifications on the @chorus/client SDK.
//
// Each user has a channel, `notify-USER`. A page subscribes to it; a backend publishes to it
// with the REST API (POST /api/publish with the app's key and secret), which browsers never do
// because they must never hold the secret.
//
// A REST publish is delivered like a message from a raw (PieSocket-style) client: a "message"
// that is a JSON object with a string `event`, e.g. {"event": "notification", "data": {…}},
// arrives as that event with that data; anything else arrives as event "message" with the text.
//
// On a real site the user would come from your login, and the channel would be
// `private-notify-USER` with a channel token from your backend, so that nobody can listen to
// someone else's notifications. This example lets you pick any user to keep it self-contained.
import { startChorus } from '../shared/chorus.js';
import { describeError, toastFailure } from '../shared/toasts.js';
import { slug } from '../shared/identity.js';

const USER_KEY = 'chorus-examples:notify-user';
const DEFAULT_USER = 'alice';
/** How many of the retained notifications to show when the page opens. */
const HISTORY_ON_OPEN = 20;

const $ = (id) => document.getElementById(id);
const ui = {
  userForm: $('user-form'),
  user: $('user'),
  channelName: $('channel-name'),
  bell: $('bell'),
  unread: $('unread'),
  curl: $('curl'),
  copy: $('copy'),
  inbox: $('inbox'),
};

const { client, toast, key } = await startChorus();
const pageTitle = document.title;
/** The subscription being shown: {user, channel, shown, off}. */
let current;
let unread = 0;

ui.userForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const user = slug(ui.user.value);
  if (!user) return;
  localStorage.setItem(USER_KEY, user);
  listen(user);
});

ui.bell.addEventListener('click', markAllRead);

ui.copy.addEventListener('click', () => {
  navigator.clipboard
    .writeText(ui.curl.textContent)
    .then(() => toast('Copied. Replace SECRET before running it.', { kind: 'success', timeoutMs: 2500 }))
    .catch((error) => toast(`Could not copy: ${describeError(error)}`, { kind: 'error' }));
});

listen(localStorage.getItem(USER_KEY) || DEFAULT_USER);

function listen(user) {
  if (current?.user === user) return;
  if (current) {
    for (const off of current.off) off();
    current.channel.unsubscribe().catch(() => undefined);
  }
  const channel = client.channel(`notify-${user}`);
  const state = { user, channel, shown: new Set(), off: [] };
  current = state;
  ui.user.value = user;
  ui.channelName.textContent = channel.name;
  ui.inbox.replaceChildren();
  setUnread(0);
  renderCurl(channel.name);

  state.off.push(
    // '*': every publication, whatever its event name.
    channel.on('*', (data, publication) => receive(state, publication, { live: true })),
    channel.on('error', (error) => toast(describeError(error), { kind: 'error', title: channel.name })),
  );
  channel
    .subscribe()
    // What arrived before this page opened: listed, but neither toasted nor counted as unread.
    .then(() => channel.history({ limit: HISTORY_ON_OPEN }))
    .then(({ publications }) => {
      for (const publication of publications) receive(state, publication, { live: false });
    })
    .catch(toastFailure(toast, `Could not listen on ${channel.name}`));
}

function receive(state, publication, { live }) {
  if (current !== state) return;
  const key = `${publication.epoch}:${publication.offset}`;
  if (state.shown.has(key)) return; // a live one the history also returned
  state.shown.add(key);

  const { title, body, level } = describe(publication);
  const item = document.createElement('li');
  item.className = live ? 'inbox-item is-unread' : 'inbox-item';
  item.dataset.testid = 'inbox-item';
  item.dataset.epoch = publication.epoch;
  item.dataset.offset = String(publication.offset);
  const heading = document.createElement('strong');
  heading.textContent = title;
  const text = document.createElement('p');
  text.textContent = body;
  const meta = document.createElement('time');
  meta.className = 'inbox-meta';
  meta.dateTime = new Date(publication.ts).toISOString();
  meta.textContent = `${new Date(publication.ts).toLocaleTimeString()} · ${publication.event}`;
  item.append(heading, text, meta);

  // Newest first, by offset: history answers may come after newer live ones.
  const older = [...ui.inbox.children].find((other) => other.dataset.epoch === publication.epoch && Number(other.dataset.offset) < publication.offset);
  ui.inbox.insertBefore(item, older ?? null);

  if (live) {
    setUnread(unread + 1);
    toast(body, { title, kind: level === 'error' ? 'error' : 'info', timeoutMs: 6000 });
  }
}

/** Turns any publication into a title and a text: {title, body} objects, plain text, or other JSON. */
function describe({ event, data }) {
  const text = (value) => (typeof value === 'string' ? value : undefined);
  if (data !== null && typeof data === 'object' && !Array.isArray(data) && !(data instanceof Uint8Array)) {
    return {
      title: text(data.title) ?? (event === 'message' ? 'Notification' : event),
      body: text(data.body) ?? text(data.text) ?? text(data.message) ?? JSON.stringify(data),
      level: text(data.level),
    };
  }
  const body = typeof data === 'string' ? data : data instanceof Uint8Array ? `<${data.length} bytes>` : JSON.stringify(data);
  return { title: event === 'message' ? 'Notification' : event, body, level: undefined };
}

function markAllRead() {
  setUnread(0);
  for (const item of ui.inbox.querySelectorAll('.is-unread')) item.classList.remove('is-unread');
}

function setUnread(count) {
  unread = count;
  ui.unread.textContent = String(count);
  ui.unread.hidden = count === 0;
  document.title = count === 0 ? pageTitle : `(${count}) ${pageTitle}`;
}

function renderCurl(channelName) {
  const body = JSON.stringify({
    key,
    secret: 'SECRET',
    channelId: channelName,
    message: { event: 'notification', data: { title: 'Order shipped', body: 'Your order #1234 is on its way.' } },
  });
  ui.curl.textContent = `curl -X POST ${location.origin}/api/publish -H 'content-type: application/json' \\\n  -d '${body}'`;
}
