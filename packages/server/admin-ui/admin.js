// The Chorus admin dashboard: polls /admin/api/ for counts, draws two SVG charts, and streams the
// selected app's activity (Server-Sent Events) into the debug console. The browser sends the
// admin credentials it was asked for when the page opened (HTTP Basic), so fetch needs none.

const API = '/admin/api';
const HISTORY_POINTS = 120; // two minutes at one sample a second
const MAX_LOG_LINES = 500;

const $ = (id) => document.getElementById(id);
const samples = { connections: [], rate: [] };
let lastPublications;
let selectedApp;
let activity;
let paused = false;

async function api(path, options) {
  const response = await fetch(`${API}${path}`, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
  return body;
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.append(td);
  return td;
}

function draw(svg, values) {
  const max = Math.max(1, ...values);
  const step = 240 / (HISTORY_POINTS - 1);
  const offset = HISTORY_POINTS - values.length;
  const points = values.map((v, i) => `${((offset + i) * step).toFixed(1)},${(58 - (v / max) * 54).toFixed(1)}`).join(' ');
  svg.innerHTML = `<polyline fill="none" stroke="currentColor" stroke-width="1.5" vector-effect="non-scaling-stroke" points="${points}"></polyline>`
    + `<text x="2" y="10" font-size="9">${max}</text>`;
}

function push(series, value) {
  series.push(value);
  if (series.length > HISTORY_POINTS) series.shift();
}

async function refreshStats() {
  const stats = await api('/stats');
  const { node } = stats;
  const rate = lastPublications === undefined ? 0 : Math.max(0, node.publications - lastPublications);
  lastPublications = node.publications;
  push(samples.connections, node.connections);
  push(samples.rate, rate);
  $('connections-now').textContent = String(node.connections);
  $('rate-now').textContent = String(rate);
  draw($('connections-chart'), samples.connections);
  draw($('rate-chart'), samples.rate);
  $('node').textContent = `${stats.engine} engine · ${node.connections} connections · ${node.channels} channels · up ${node.uptimeSeconds} s · RSS ${(node.rssBytes / 1048576).toFixed(0)} MiB · webhooks ${stats.webhooks.delivered} delivered, ${stats.webhooks.queued} queued, ${stats.webhooks.dropped} dropped`;
}

async function refreshApps() {
  const { apps } = await api('/apps');
  const body = $('apps');
  body.replaceChildren();
  for (const app of apps) {
    const row = document.createElement('tr');
    cell(row, app.id);
    cell(row, app.key);
    cell(row, app.enabled ? 'yes' : 'no');
    cell(row, String(app.connectionsOnThisNode));
    cell(row, app.channels === null ? 'engine unavailable' : String(app.channels));
    cell(row, app.subscriptions === null ? '–' : String(app.subscriptions));
    cell(row, String(app.webhooks));
    body.append(row);
  }
  const select = $('app-select');
  if (select.options.length !== apps.length) {
    select.replaceChildren(...apps.map((app) => new Option(app.id, app.id)));
    if (!selectedApp && apps[0]) selectApp(apps[0].id);
  }
}

async function refreshChannels() {
  if (!selectedApp) return;
  const prefix = $('prefix').value;
  const { channels } = await api(`/apps/${encodeURIComponent(selectedApp)}/channels?prefix=${encodeURIComponent(prefix)}`);
  const body = $('channels');
  body.replaceChildren();
  for (const channel of channels.slice(0, 200)) {
    const row = document.createElement('tr');
    cell(row, channel.name);
    cell(row, String(channel.subscriptions));
    body.append(row);
  }
  if (channels.length === 0) cell(body.appendChild(document.createElement('tr')), prefix ? 'No channel with subscribers starts with that.' : 'No channel has subscribers.').colSpan = 2;
}

function describe(item) {
  switch (item.type) {
    case 'connected': return `connected ${item.connection} (${item.dialect}, ${item.ip})`;
    case 'disconnected': return `disconnected ${item.connection} (close ${item.code})`;
    case 'refused': return `refused ${item.dialect} connection from ${item.ip}: ${item.code} ${item.reason}`;
    case 'subscribed': return `${item.connection} subscribed to ${item.channel}`;
    case 'unsubscribed': return `${item.connection} left ${item.channel}`;
    case 'publication': return `publication on ${item.channel}${item.event ? ` event ${item.event}` : ''} #${item.offset}${item.origin ? ` from ${item.origin}` : ''} (${item.bytes} bytes): ${item.preview}`;
    case 'presence': return `${item.user} ${item.action} ${item.channel}`;
    case 'webhook': return `webhook to ${item.url} ${item.ok ? 'delivered' : 'failed'}: ${item.events.join(', ')}`;
    case 'skipped': return `${item.count} more items of that second not shown (at most 200 a second per node)`;
    default: return JSON.stringify(item);
  }
}

function matchesFilter(li) {
  const filter = $('filter').value.trim().toLowerCase();
  return filter === '' || li.textContent.toLowerCase().includes(filter);
}

function addLine(item) {
  if (paused) return;
  const li = document.createElement('li');
  li.dataset.type = item.type;
  const time = document.createElement('time');
  time.dateTime = new Date(item.at).toISOString();
  time.textContent = new Date(item.at).toLocaleTimeString();
  const node = document.createElement('span');
  node.className = 'node';
  node.textContent = ` ${item.node} `;
  node.title = 'the node it happened on';
  li.append(time, node, describe(item));
  li.hidden = !matchesFilter(li);
  const log = $('log');
  log.prepend(li);
  while (log.children.length > MAX_LOG_LINES) log.lastElementChild.remove();
}

function selectApp(id) {
  selectedApp = id;
  $('app-select').value = id;
  activity?.close();
  activity = new EventSource(`${API}/apps/${encodeURIComponent(id)}/activity`);
  activity.onopen = () => ($('console-state').textContent = `streaming ${id} (every node)`);
  activity.onerror = () => ($('console-state').textContent = 'stream interrupted; retrying…');
  activity.onmessage = (event) => addLine(JSON.parse(event.data));
  void refreshChannels().catch(showError);
}

function showError(error) {
  $('node').textContent = `error: ${error.message}`;
}

$('app-select').addEventListener('change', (event) => selectApp(event.target.value));
$('prefix').addEventListener('input', () => void refreshChannels().catch(showError));
$('filter').addEventListener('input', () => {
  for (const li of $('log').children) li.hidden = !matchesFilter(li);
});
$('pause').addEventListener('click', (event) => {
  paused = !paused;
  event.target.textContent = paused ? 'Resume' : 'Pause';
  event.target.setAttribute('aria-pressed', String(paused));
});
$('clear').addEventListener('click', () => $('log').replaceChildren());

$('send').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const text = String(form.get('data') ?? '');
  let data = text;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON: sent as the text itself
  }
  const event_ = String(form.get('event') ?? '').trim();
  try {
    const result = await api(`/apps/${encodeURIComponent(selectedApp)}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: form.get('channel'), ...(event_ ? { event: event_ } : {}), data }),
    });
    $('send-result').textContent = `sent: offset ${result.offset}`;
  } catch (error) {
    $('send-result').textContent = `not sent: ${error.message}`;
  }
});

$('kick').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const kind = String(form.get('kind'));
  const target = String(form.get('target')).trim();
  try {
    await api(`/apps/${encodeURIComponent(selectedApp)}/${kind}/${encodeURIComponent(target)}/disconnect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: Number(form.get('code')) }),
    });
    $('kick-result').textContent = `asked every node to disconnect ${kind === 'users' ? 'user' : 'connection'} ${target}`;
  } catch (error) {
    $('kick-result').textContent = `refused: ${error.message}`;
  }
});

async function tick() {
  try {
    await Promise.all([refreshStats(), refreshApps()]);
    await refreshChannels();
  } catch (error) {
    showError(error);
  }
}

void tick();
setInterval(() => void tick(), 1000);
