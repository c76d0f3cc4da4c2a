// The seed's demo: one `new WebSocket(url)` and the four listeners every PieSocket tutorial uses
// (open, message, error, close). The rest of this file is page chrome: it pre-fills the URL,
// enables the buttons that make sense in each state and writes every event to the page's log as
// well as to the console.

const MAX_LOG_ENTRIES = 500;
/** Binary frames keep their bytes (hex) on the log entry, up to this many, for inspection. */
const MAX_RECORDED_BYTES = 4096;

const $ = (id) => document.getElementById(id);
const ui = {
  connectForm: $('connect-form'),
  url: $('url'),
  connect: $('connect'),
  status: $('status'),
  error: $('error'),
  sendForm: $('send-form'),
  message: $('message'),
  send: $('send'),
  closeForm: $('close-form'),
  closeCode: $('close-code'),
  closeReason: $('close-reason'),
  close: $('close'),
  log: $('log'),
  clearLog: $('clear-log'),
};

/** The socket the buttons act on; also `window.socket`, for experiments in the console. */
let current = null;

ui.connectForm.addEventListener('submit', (event) => {
  event.preventDefault();
  connect(ui.url.value.trim());
});

ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const socket = current;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const text = ui.message.value;
  socket.send(text);
  report('sent', text, () => console.log('Sent:', text));
  ui.message.select();
});

ui.closeForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const socket = current;
  if (!socket) return;
  const code = ui.closeCode.value.trim();
  const reason = ui.closeReason.value;
  try {
    if (code === '' && reason === '') {
      socket.close();
      report('info', 'Closing: socket.close()');
    } else {
      // Without a code the browser sends 1000 with the reason.
      socket.close(code === '' ? undefined : Number(code), reason);
      report('info', `Closing: socket.close(${code === '' ? 'undefined' : code}, ${JSON.stringify(reason)})`);
    }
    setState(socket, 'closing');
  } catch (error) {
    // InvalidAccessError for a code outside 1000 / 3000–4999, SyntaxError for a reason over 123 bytes.
    showError(`close() refused: ${error.message}`);
    report('error', `close() refused: ${error.message}`, () => console.error('close() refused:', error));
  }
});

ui.clearLog.addEventListener('click', () => ui.log.replaceChildren());

function connect(url) {
  hideError();
  report('info', `Connecting to ${url}`);
  let socket;
  try {
    socket = new WebSocket(url);
  } catch (error) {
    // SyntaxError: not a ws:// or wss:// URL.
    showError(`Cannot connect: ${error.message}`);
    report('error', `Cannot connect: ${error.message}`, () => console.error('Cannot connect:', error));
    return;
  }
  current = socket;
  window.socket = socket;
  setState(socket, 'connecting');

  socket.addEventListener('open', () => {
    setState(socket, 'open');
    report('open', 'WebSocket connection established', () => console.log('WebSocket connection established'));
    ui.message.focus();
  });

  socket.addEventListener('message', (event) => {
    if (typeof event.data !== 'string') {
      const entry = report('received', `<binary ${byteLength(event.data)} bytes>`, () => console.log('Message from server:', event.data));
      recordBytes(entry, event.data).catch((error) => console.error('Could not read the binary message:', error));
      return;
    }
    // Chorus, like PieSocket, explains a refusal with a {"error": "…"} frame before closing.
    const serverError = errorFrameText(event.data);
    if (serverError !== undefined) {
      showError(`Server error: ${serverError}`);
      report('error', `Server error: ${serverError}`, () => console.error('Server error:', serverError));
      return;
    }
    report('received', event.data, () => console.log('Message from server:', event.data));
  });

  socket.addEventListener('error', (event) => {
    // Browsers never say why a WebSocket failed; the close event that follows carries the code.
    console.error('WebSocket error:', event);
    if (socket === current && ui.error.hidden) showError('WebSocket error: the connection failed or broke (details in the browser console).');
    report('error', 'WebSocket error (details in the browser console)');
  });

  socket.addEventListener('close', (event) => {
    setState(socket, 'closed');
    const text = event.wasClean ? `Connection closed cleanly, code=${event.code} reason=${event.reason}` : 'Connection abruptly closed';
    const entry = report('close', text, () => console.log(text));
    entry.dataset.code = String(event.code);
    entry.dataset.reason = event.reason;
    entry.dataset.wasClean = String(event.wasClean);
    if (!event.wasClean) entry.append(detail(`code=${event.code}`));
  });
}

/** Returns the message of a `{"error": "…"}` frame, or undefined for any other text. */
function errorFrameText(text) {
  if (!text.startsWith('{')) return undefined;
  try {
    const parsed = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && typeof parsed.error === 'string' ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

function byteLength(data) {
  return data instanceof Blob ? data.size : data.byteLength;
}

async function recordBytes(entry, data) {
  const buffer = data instanceof Blob ? await data.arrayBuffer() : data;
  const bytes = new Uint8Array(buffer, 0, Math.min(buffer.byteLength, MAX_RECORDED_BYTES));
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join(' ');
  entry.dataset.bytes = hex;
  entry.querySelector('.log-text').append(detail(hex.length > 95 ? `${hex.slice(0, 95)} …` : hex));
}

function setState(socket, state) {
  if (socket !== current) return;
  const labels = { connecting: 'Connecting…', open: 'Open', closing: 'Closing…', closed: 'Closed' };
  ui.status.dataset.state = state;
  ui.status.textContent = labels[state];
  const active = state === 'connecting' || state === 'open' || state === 'closing';
  ui.connect.disabled = active;
  ui.url.readOnly = active;
  ui.send.disabled = state !== 'open';
  ui.close.disabled = !(state === 'connecting' || state === 'open');
}

/** Appends a log entry and mirrors it to the console (`toConsole`, or console.log by default). */
function report(kind, text, toConsole = () => console.log(text)) {
  toConsole();
  const entry = document.createElement('li');
  entry.className = 'log-entry';
  entry.dataset.kind = kind;
  entry.dataset.testid = 'log-entry';
  const time = document.createElement('time');
  time.className = 'log-time';
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString(undefined, { hour12: false }) + `.${String(now.getMilliseconds()).padStart(3, '0')}`;
  const label = document.createElement('span');
  label.className = 'log-kind';
  label.textContent = kind;
  const body = document.createElement('span');
  body.className = 'log-text';
  body.dataset.testid = 'log-text';
  body.textContent = text;
  entry.append(time, label, body);
  ui.log.append(entry);
  while (ui.log.childElementCount > MAX_LOG_ENTRIES) ui.log.firstElementChild.remove();
  ui.log.scrollTop = ui.log.scrollHeight;
  return entry;
}

function detail(text) {
  const span = document.createElement('span');
  span.className = 'log-detail';
  span.textContent = text;
  return span;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

async function prefillUrl() {
  try {
    const response = await fetch('/examples/config.json');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { apiKey, channel } = await response.json();
    if (!apiKey) {
      showError('This server has no app configured, so there is no API key to connect with.');
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // Keep whatever the visitor may already have typed.
    if (ui.url.value === '') ui.url.value = `${scheme}://${location.host}/v4/${channel}?api_key=${apiKey}&notify_self`;
  } catch (error) {
    report('error', `Could not load /examples/config.json (${error.message}): type the URL yourself.`, () => console.error(error));
  } finally {
    document.body.dataset.ready = 'true';
  }
}

prefillUrl();
