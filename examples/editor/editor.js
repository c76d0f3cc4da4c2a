// The collaborative editor: a Y.Doc shared through the unchanged y-websocket provider, shown in
// CodeMirror 6 with y-codemirror.next, which draws every other user's cursor and selection from
// the awareness states. The room is the URL's hash; the app key comes from /examples/config.json.
// Bundled by scripts/build-examples.mjs (esbuild) into dist/editor.js.
import { basicSetup, EditorView } from 'codemirror';
import { yCollab } from 'y-codemirror.next';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { colorFor, getNickname, roomFromHash, setNickname } from '../shared/identity.js';

const status = document.getElementById('status');
const editorElement = document.getElementById('editor');
const offlineButton = document.getElementById('offline');
const people = document.getElementById('people');
const nameInput = document.getElementById('name');

async function loadKey() {
  const fromUrl = new URLSearchParams(location.search).get('key');
  if (fromUrl) return fromUrl;
  const response = await fetch('/examples/config.json');
  if (!response.ok) throw new Error(`Could not load /examples/config.json (HTTP ${response.status})`);
  return (await response.json()).apiKey;
}

const key = await loadKey();
const room = roomFromHash('welcome');
const doc = new Y.Doc();
const text = doc.getText('text');
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/yjs`;
// disableBc: two windows of one browser sync through the server, as two people would.
const provider = new WebsocketProvider(wsBase, room, doc, { params: { key }, disableBc: true });

function showMe(name) {
  provider.awareness.setLocalStateField('user', { name, color: colorFor(name), colorLight: colorFor(name).replace(')', ' / 0.25)') });
  nameInput.value = name;
}
showMe(getNickname());
document.getElementById('name-form').addEventListener('submit', (event) => {
  event.preventDefault();
  showMe(setNickname(nameInput.value));
});

const showStatus = () => {
  const offline = offlineButton.getAttribute('aria-pressed') === 'true';
  const state = offline ? 'offline' : provider.wsconnected ? (provider.synced ? 'live' : 'connecting') : 'reconnecting';
  status.dataset.state = state;
  status.textContent = { offline: 'Offline', live: 'Live', connecting: 'Syncing…', reconnecting: 'Reconnecting…' }[state];
};
provider.on('status', showStatus);
provider.on('sync', (synced) => {
  editorElement.dataset.synced = String(synced);
  showStatus();
});

offlineButton.addEventListener('click', () => {
  const goOffline = offlineButton.getAttribute('aria-pressed') !== 'true';
  offlineButton.setAttribute('aria-pressed', String(goOffline));
  offlineButton.textContent = goOffline ? 'Go online' : 'Go offline';
  if (goOffline) provider.disconnect();
  else provider.connect();
  showStatus();
});

provider.awareness.on('change', () => {
  people.replaceChildren(
    ...[...provider.awareness.getStates().values()]
      .filter((state) => state.user)
      .map((state) => {
        const item = document.createElement('li');
        item.textContent = state.user.name;
        item.style.background = state.user.color;
        return item;
      }),
  );
});

const view = new EditorView({
  doc: text.toString(),
  extensions: [basicSetup, EditorView.lineWrapping, yCollab(text, provider.awareness)],
  parent: editorElement,
});

// For the browser console and the tests.
window.collab = { doc, text, provider, view };
