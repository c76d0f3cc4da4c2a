// What every example page does first: read the app's public key from /examples/config.json,
// create one SDK client for the page, and wire the connection badge and the error toasts.
//
// The key is public (it only says which app to talk to). The app's secret never reaches a
// browser: anything that needs it (REST publish, minting tokens) belongs in a backend.
import { createClient } from '/client.js';
import { showConnectionStatus } from './status.js';
import { createToasts, describeError } from './toasts.js';

/**
 * Returns `{client, toast, key}`. Expects the page to have `#status` (the badge) and `#toasts` (the
 * toast area). `?key=OTHER_KEY` in the page's URL connects with another app's key instead.
 */
export async function startChorus() {
  const toast = createToasts(document.getElementById('toasts'));
  const status = document.getElementById('status');
  let key;
  try {
    key = await loadKey();
  } catch (error) {
    status.dataset.state = 'offline';
    status.textContent = 'No key';
    toast(describeError(error), { kind: 'error', title: 'Cannot start' });
    throw error;
  }

  const client = createClient(location.origin, { key });
  // Listeners added right after createClient see every event: it connects in a microtask.
  showConnectionStatus(client, status);
  client.on('error', (error) => toast(describeError(error), { kind: 'error', title: 'Connection error' }));
  window.chorus = client; // for experiments in the browser console
  return { client, toast, key };
}

async function loadKey() {
  const fromUrl = new URLSearchParams(location.search).get('key');
  if (fromUrl) return fromUrl;
  const response = await fetch('/examples/config.json');
  if (!response.ok) throw new Error(`Could not load /examples/config.json (HTTP ${response.status})`);
  const { apiKey } = await response.json();
  if (!apiKey) throw new Error('This server has no app configured, so there is no key to connect with.');
  return apiKey;
}
