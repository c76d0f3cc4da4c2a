// A connection-status badge driven by the SDK's client events. It shows one of:
//
//   connecting            a connection attempt is under way
//   live                  connected: publications flow
//   reconnecting in Ns    the connection dropped; the SDK retries after a backoff (a countdown)
//   offline               the browser says it has no network (navigator.onLine is false), or
//                         the client is disconnected with no retry scheduled
//   not authorized        the server refused us: a 101/103 error, or a terminal close 4001
//                         (unknown key) / 4003 (bad credentials)
//
// The element gets `data-state` (connecting | live | reconnecting | offline | unauthorized) for
// styling and tests, and a human label as its text.

/** Close codes and reply errors that mean "these credentials will not do". */
const UNAUTHORIZED_CLOSE_CODES = new Set([4001, 4003]);
const UNAUTHORIZED_ERROR_CODES = new Set([101, 103]);

/**
 * Keeps `element` in sync with `client` (a ChorusClient). Returns a function that reports the
 * current state, `{state, label}`, handy in the console.
 */
export function showConnectionStatus(client, element) {
  /** Set by a refusal; cleared only by a successful connect. */
  let unauthorized = false;
  /** When the next reconnect attempt is due (performance.now() time), while waiting for it. */
  let retryAt;
  let countdown;

  const labels = {
    connecting: 'Connecting…',
    live: 'Live',
    offline: 'Offline',
    unauthorized: 'Not authorized',
  };

  function render() {
    let state;
    let label;
    if (unauthorized) state = 'unauthorized';
    else if (!navigator.onLine) state = 'offline';
    else if (client.state === 'connected') state = 'live';
    else if (client.state === 'connecting') state = 'connecting';
    else if (retryAt !== undefined) state = 'reconnecting';
    else state = 'offline'; // disconnected with nothing scheduled, or closed
    if (state === 'reconnecting') {
      const seconds = Math.max(0, Math.ceil((retryAt - performance.now()) / 1000));
      label = seconds > 0 ? `Reconnecting in ${seconds}s` : 'Reconnecting…';
    } else {
      label = labels[state];
    }
    element.dataset.state = state;
    if (element.textContent !== label) element.textContent = label;
    element.title = state === 'unauthorized' ? 'The server refused this key or token; reloading will not help until that is fixed.' : '';
  }

  function stopCountdown() {
    retryAt = undefined;
    clearInterval(countdown);
    countdown = undefined;
  }

  client.on('connecting', () => {
    stopCountdown();
    render();
  });
  client.on('connected', () => {
    unauthorized = false;
    stopCountdown();
    render();
  });
  client.on('disconnected', () => render());
  client.on('reconnecting', ({ delayMs }) => {
    stopCountdown();
    retryAt = performance.now() + delayMs;
    countdown = setInterval(render, 250);
    render();
  });
  client.on('closed', ({ code, error }) => {
    stopCountdown();
    // A refused connect ends as a terminal close whose 204 error carries the 101 as its cause.
    if (UNAUTHORIZED_CLOSE_CODES.has(code) || UNAUTHORIZED_ERROR_CODES.has(error?.cause?.code)) unauthorized = true;
    render();
  });
  client.on('error', (error) => {
    if (UNAUTHORIZED_ERROR_CODES.has(error.code)) unauthorized = true;
    render();
  });

  // The browser knows about lost networks before any socket times out. When it comes back, do not
  // wait for the backoff: connect() during a backoff wait reconnects at once.
  window.addEventListener('offline', render);
  window.addEventListener('online', () => {
    render();
    if (!unauthorized && client.state !== 'closed') client.connect().catch(() => undefined);
  });

  render();
  return () => ({ state: element.dataset.state, label: element.textContent });
}
