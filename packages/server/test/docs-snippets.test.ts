/**
 * The JavaScript snippets of README.md and docs/*.md that open a `new WebSocket`: none may send
 * before the socket is open (`send()` on a CONNECTING socket throws "Still in CONNECTING state" in
 * a browser, the mistake PieSocket tutorials copy). Two independent checks, so neither a clever
 * snippet nor a lenient parser lets one through:
 *  - statically, every `.send(` must sit inside an 'open' or 'message' listener of a socket (or
 *    `onopen`/`onmessage`), after an `await` of open, or under a `readyState === OPEN` guard;
 *  - for real, each snippet runs in headless Chromium against a server on port 0 (its URL's host
 *    and api_key swapped for the test server's), with `WebSocket` wrapped to record the
 *    readyState of every send; a send on a socket that is not open, a page error, a socket that
 *    never opens or a message the server did not relay fails the snippet.
 * Self-checks keep the test from passing vacuously: the extractor must find the known snippets,
 * and both checks must flag `const s = new WebSocket(u); s.send('x')`.
 * It also proves what docs/raw-channels.md says about a PieSocket URL that keeps `wss://`.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import ts from 'typescript';
import type { ChorusServer } from '../src/index.ts';
import { launchChromium } from './browser.ts';
import { TEST_APP, TestClient, rawUrl, startTestServer } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WAIT_MS = 5_000;
const TEST_TIMEOUT_MS = 20_000;

interface Snippet {
  /** Path relative to the repository root, and the 1-based line of the opening fence. */
  where: string;
  code: string;
  module: boolean;
}

// ---------------------------------------------------------------------------------------------
// Extraction

const FENCE = /^( *)```\s*([A-Za-z]*)\s*$/;
const JS_LANGS = new Set(['js', 'javascript', 'mjs']);

/** Every ```js / ```javascript / ```html block of one Markdown file that opens a `new WebSocket`. */
function extractSnippets(markdown: string, file: string): Snippet[] {
  const lines = markdown.split('\n');
  const snippets: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] ?? '');
    if (!open) continue;
    const indent = open[1] ?? '';
    const lang = (open[2] ?? '').toLowerCase();
    const start = i;
    const body: string[] = [];
    // Fences inside list items are indented; their closing fence carries the same indent.
    while (++i < lines.length && (lines[i] ?? '').trim() !== '```') body.push((lines[i] ?? '').slice(indent.length));
    const code = body.join('\n');
    if (!code.includes('new WebSocket')) continue;
    const where = `${file}:${start + 1}`;
    if (JS_LANGS.has(lang)) snippets.push({ where, code, module: /^\s*(import|export)\s/m.test(code) || /^\s*await\s/m.test(code) });
    else if (lang === 'html') {
      for (const script of code.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)) {
        if ((script[2] ?? '').includes('new WebSocket')) snippets.push({ where, code: script[2] ?? '', module: /type=["']module["']/.test(script[1] ?? '') });
      }
    }
  }
  return snippets;
}

function docSnippets(): Snippet[] {
  const files = ['README.md', ...readdirSync(`${ROOT}docs`).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)];
  return files.flatMap((file) => extractSnippets(readFileSync(`${ROOT}${file}`, 'utf8'), file));
}

// ---------------------------------------------------------------------------------------------
// The static check

const LISTENER_EVENTS = new Set(['open', 'message']);
const HANDLER_PROPERTIES = new Set(['onopen', 'onmessage']);
const OPEN_GUARD = /readyState\s*===?\s*(?:[\w.]*\.OPEN|1)\b/;

/** Each `.send(` call that is not provably after open, as "line N: text". Empty: all safe. */
function sendsBeforeOpen(code: string): string[] {
  const source = ts.createSourceFile('snippet.mjs', code, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const text = (node: ts.Node): string => node.getText(source);
  const sockets = new Set<string>();
  const sends: ts.CallExpression[] = [];
  const listenerNames = new Set<string>();

  const isWebSocketNew = (node: ts.Node): node is ts.NewExpression =>
    ts.isNewExpression(node) && /(^|\.)WebSocket$/.test(text(node.expression));
  const collect = (node: ts.Node): void => {
    if (isWebSocketNew(node)) {
      const parent = node.parent;
      if (ts.isVariableDeclaration(parent) && parent.initializer === node) sockets.add(text(parent.name));
      else if (ts.isBinaryExpression(parent) && parent.operatorToken.kind === ts.SyntaxKind.EqualsToken && parent.right === node) sockets.add(text(parent.left));
    }
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === 'send') sends.push(node);
    ts.forEachChild(node, collect);
  };
  collect(source);

  /** `socket.addEventListener('open', fn)`: the call, when `fn` is its listener argument. */
  const listenerCall = (fn: ts.Node): boolean => {
    const call = fn.parent;
    if (!call || !ts.isCallExpression(call) || call.arguments[1] !== fn) return false;
    const callee = call.expression;
    const event = call.arguments[0];
    return (
      ts.isPropertyAccessExpression(callee) &&
      ['addEventListener', 'on', 'once'].includes(callee.name.text) &&
      sockets.has(text(callee.expression)) &&
      event !== undefined &&
      ts.isStringLiteralLike(event) &&
      LISTENER_EVENTS.has(event.text)
    );
  };
  /** `socket.onopen = fn`. */
  const handlerAssignment = (fn: ts.Node): boolean => {
    const assignment = fn.parent;
    if (!assignment || !ts.isBinaryExpression(assignment) || assignment.right !== fn || assignment.operatorToken.kind !== ts.SyntaxKind.EqualsToken) return false;
    const target = assignment.left;
    return ts.isPropertyAccessExpression(target) && HANDLER_PROPERTIES.has(target.name.text) && sockets.has(text(target.expression));
  };
  // A named function is a listener when its name is what was registered.
  const collectListenerNames = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && (listenerCall(node) || handlerAssignment(node))) listenerNames.add(node.text);
    ts.forEachChild(node, collectListenerNames);
  };
  collectListenerNames(source);

  const isListener = (fn: ts.Node): boolean =>
    listenerCall(fn) || handlerAssignment(fn) || (ts.isFunctionDeclaration(fn) && fn.name !== undefined && listenerNames.has(fn.name.text));
  const awaitsOpen = (statement: ts.Node): boolean => {
    let found = false;
    const visit = (node: ts.Node): void => {
      if (ts.isAwaitExpression(node) && /['"`]open['"`]|\bonopen\b/.test(text(node))) found = true;
      if (!found) ts.forEachChild(node, visit);
    };
    visit(statement);
    return found;
  };
  const safe = (send: ts.CallExpression): boolean => {
    let child: ts.Node = send;
    for (let node = send.parent; node !== undefined; child = node, node = node.parent) {
      if (ts.isFunctionLike(node) && isListener(node)) return true;
      if ((ts.isBlock(node) || ts.isSourceFile(node)) && ts.isStatement(child)) {
        const before = node.statements.slice(0, node.statements.indexOf(child));
        if (before.some(awaitsOpen)) return true;
      }
      if (ts.isIfStatement(node) && node.thenStatement === child && OPEN_GUARD.test(text(node.expression))) return true;
      if (ts.isConditionalExpression(node) && node.whenTrue === child && OPEN_GUARD.test(text(node.condition))) return true;
      if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.AmpersandAmpersandToken && node.right === child && OPEN_GUARD.test(text(node.left))) return true;
    }
    return false;
  };

  return sends
    .filter((send) => !safe(send))
    .map((send) => `line ${source.getLineAndCharacterOfPosition(send.getStart(source)).line + 1}: ${text(send)}`);
}

// ---------------------------------------------------------------------------------------------
// Running a snippet in Chromium

/**
 * Installed before a snippet: records every socket's URL, open and close, and the readyState at
 * every send, then lets the native WebSocket do the rest (so a bad send still throws). A string,
 * not a function: tsx would wrap a function's inner helpers in a __name() the page lacks.
 */
const RECORDER = `
(() => {
  const Native = window.WebSocket;
  const record = { sockets: [], sends: [] };
  window.__snippet = record;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const entry = { url: String(url), opened: false, errored: false, closeCode: null, closeReason: null };
      record.sockets.push(entry);
      this.addEventListener('open', () => { entry.opened = true; });
      this.addEventListener('error', () => { entry.errored = true; });
      this.addEventListener('close', (event) => { entry.closeCode = event.code; entry.closeReason = event.reason; });
    }
    send(data) {
      record.sends.push({ readyState: this.readyState, data: typeof data === 'string' ? data : null });
      return super.send(data);
    }
  };
})();
`;

interface Recorded {
  sockets: Array<{ url: string; opened: boolean; errored: boolean; closeCode: number | null; closeReason: string | null }>;
  sends: Array<{ readyState: number; data: string | null }>;
}

interface RunResult extends Recorded {
  /** Page errors and console errors. */
  problems: string[];
  /** Every text frame the server relayed to a listener on the snippet's channels. */
  relayed: string[];
  /** The snippet as run, with the test server's host and key. */
  code: string;
}

/** Points every ws(s):// URL of a snippet at the test server and every api_key at its key. */
function localize(code: string, server: ChorusServer): string {
  return code
    .replace(/\bwss?:\/\/[A-Za-z0-9.-]+(?::\d+)?(?=\/)/g, `ws://127.0.0.1:${server.port}`)
    .replace(/api_key=[^&"'`\s]+/g, `api_key=${TEST_APP.key}`);
}

async function runSnippet(browser: Browser, server: ChorusServer, snippet: Snippet, rewrite = true): Promise<RunResult> {
  const code = rewrite ? localize(snippet.code, server) : snippet.code;
  // A listener on each channel the snippet joins sees what the server relays from it.
  const channels = new Set([...code.matchAll(/\/v[34]\/([A-Za-z0-9_-]+)/g)].map((match) => match[1] ?? ''));
  const listeners = await Promise.all([...channels].map((channel) => TestClient.open(rawUrl(server, channel))));
  const context = await browser.newContext();
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  try {
    await page.goto(`http://127.0.0.1:${server.port}/examples/`);
    await page.addScriptTag({ content: RECORDER });
    await page.addScriptTag({ content: code, ...(snippet.module ? { type: 'module' } : {}) }).catch((error: unknown) => {
      problems.push(`script failed: ${String(error)}`);
    });
    const relayed = (): string[] => listeners.flatMap((listener) => listener.received.filter((r) => !r.binary).map((r) => r.text));
    const sendsSomething = /\.send\(/.test(code);
    const deadline = Date.now() + WAIT_MS;
    let recorded = await read(page);
    // Settled: every socket opened or closed, an open one has sent (when the snippet sends), and
    // each text sent while open has been relayed.
    while (
      !(
        recorded.sockets.length > 0 &&
        recorded.sockets.every((socket) => socket.opened || socket.closeCode !== null) &&
        (!sendsSomething || recorded.sends.length > 0 || recorded.sockets.every((socket) => !socket.opened)) &&
        recorded.sends.every((send) => send.readyState !== 1 || send.data === null || relayed().includes(send.data))
      ) &&
      Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      recorded = await read(page);
    }
    return { ...recorded, problems, relayed: relayed(), code };
  } finally {
    await context.close();
    for (const listener of listeners) listener.ws.terminate();
  }
}

function read(page: Page): Promise<Recorded> {
  return page.evaluate(() => JSON.parse(JSON.stringify((globalThis as unknown as { __snippet: Recorded }).__snippet)) as Recorded);
}

/** What is wrong with a run, one line each. Empty: the snippet works. */
function runFailures(result: RunResult, server: ChorusServer): string[] {
  const failures = [...result.problems];
  if (result.sockets.length === 0) failures.push('opened no WebSocket');
  for (const socket of result.sockets) {
    if (!socket.url.startsWith(`ws://127.0.0.1:${server.port}/`)) failures.push(`socket URL ${socket.url} does not point at the test server`);
    if (!socket.opened) failures.push(`socket ${socket.url} never opened (close ${socket.closeCode ?? 'none'})`);
  }
  if (/\.send\(/.test(result.code) && result.sends.length === 0) failures.push('sent nothing, though the snippet calls send()');
  for (const send of result.sends) {
    if (send.readyState !== 1) failures.push(`send(${JSON.stringify(send.data)}) on a socket in readyState ${send.readyState}, not OPEN`);
    else if (send.data !== null && !result.relayed.includes(send.data)) failures.push(`send(${JSON.stringify(send.data)}) never reached the server's other clients`);
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------

const KNOWN_BAD = "const s = new WebSocket(u); s.send('x')";
const snippets = docSnippets();

describe('doc snippets never send before open', () => {
  it('the extractor finds the WebSocket snippets of README.md and docs/raw-channels.md', () => {
    const files = new Set(snippets.map((snippet) => snippet.where.replace(/:\d+$/, '')));
    assert.ok(files.has('README.md'), `README.md's snippet found; got ${[...files].join(', ')}`);
    assert.ok(files.has('docs/raw-channels.md'), `docs/raw-channels.md's snippets found; got ${[...files].join(', ')}`);
    const fenced = extractSnippets('text\n  ```html\n  <script type="module">\n  const w = new WebSocket(u);\n  </script>\n  ```\n```sh\nnew WebSocket\n```\n', 'x.md');
    assert.deepEqual(fenced, [{ where: 'x.md:2', code: '\nconst w = new WebSocket(u);\n', module: true }], 'an indented html block is found; a sh block is not');
  });

  it('the static check flags sends before open and passes sends after it', () => {
    assert.deepEqual(sendsBeforeOpen(KNOWN_BAD), [`line 1: s.send('x')`]);
    const bad = [
      "const socket = new WebSocket(u);\nsocket.addEventListener('message', (e) => console.log(e.data));\nsocket.send('Hello, server!');",
      "const ws = new WebSocket(u); ws.addEventListener('close', () => ws.send('x'));",
      "const ws = new WebSocket(u); function hello() { ws.send('x'); } hello();",
      "const ws = new WebSocket(u); other.addEventListener('open', () => ws.send('x'));",
      "new WebSocket(u).send('x');",
      "let ws; ws = new WebSocket(u); ws.onclose = () => ws.send('x');",
    ];
    for (const code of bad) assert.equal(sendsBeforeOpen(code).length, 1, `flagged: ${code}`);
    const good = [
      "const socket = new WebSocket(u);\nsocket.addEventListener('open', () => socket.send('Hello, server!'));",
      "const ws = new WebSocket(u); ws.onopen = () => { setTimeout(() => ws.send('x'), 10); };",
      "const ws = new WebSocket(u); ws.addEventListener('message', () => ws.send('pong'));",
      "const ws = new WebSocket(u); function hello() { ws.send('x'); } ws.addEventListener('open', hello);",
      "const ws = new WebSocket(u); await new Promise((resolve) => ws.addEventListener('open', resolve)); ws.send('x');",
      "const ws = new WebSocket(u); button.onclick = () => { if (ws.readyState === WebSocket.OPEN) ws.send('x'); };",
    ];
    for (const code of good) assert.deepEqual(sendsBeforeOpen(code), [], `passed: ${code}`);
  });

  for (const snippet of snippets) {
    it(`${snippet.where}: every send is after open`, () => {
      assert.deepEqual(sendsBeforeOpen(snippet.code), [], `${snippet.where} sends before open:\n${snippet.code}`);
    });
  }
});

describe('doc snippets in headless Chromium', { timeout: 90_000 }, () => {
  let server: ChorusServer;
  let browser: Browser;

  before(async () => {
    server = await startTestServer();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
  });

  it('the runner catches a send before open', { timeout: TEST_TIMEOUT_MS }, async () => {
    const url = `ws://localhost:8080/v4/channel_123?api_key=KEY`;
    const result = await runSnippet(browser, server, { where: 'self-check', code: KNOWN_BAD.replace('(u)', `(${JSON.stringify(url)})`), module: false });
    const failures = runFailures(result, server);
    assert.ok(failures.some((line) => line.includes('Still in CONNECTING state')), `the page error is reported: ${failures.join('; ')}`);
    assert.ok(failures.includes('send("x") on a socket in readyState 0, not OPEN'), `the CONNECTING send is reported: ${failures.join('; ')}`);
    assert.deepEqual(result.sockets.map((socket) => socket.opened), [true], 'the socket itself did open, on the test server');
  });

  for (const snippet of snippets) {
    it(`${snippet.where} runs without sending before open`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const result = await runSnippet(browser, server, snippet);
      assert.deepEqual(runFailures(result, server), [], `${snippet.where} as run:\n${result.code}`);
    });
  }

  // docs/raw-channels.md, "Moving from PieSocket": what a PieSocket URL that keeps wss:// does.
  it('a wss:// URL against the plain port never opens: ERR_SSL_PROTOCOL_ERROR or ERR_CONNECTION_CLOSED, close 1006', { timeout: TEST_TIMEOUT_MS }, async () => {
    const url = `wss://127.0.0.1:${server.port}/v3/channel_123?api_key=${TEST_APP.key}&notify_self`;
    const code = `const socket = new WebSocket(${JSON.stringify(url)});\nsocket.addEventListener('open', () => socket.send('Hello, server!'));`;
    const result = await runSnippet(browser, server, { where: 'wss-on-plain-port', code, module: false }, false);
    assert.deepEqual(result.sockets, [{ url, opened: false, errored: true, closeCode: 1006, closeReason: '' }]);
    assert.deepEqual(result.sends, []);
    // The server closes a ClientHello on its plain port (and logs the fix), so Chromium reports
    // the closed connection; before that it reported the protocol error.
    assert.ok(result.problems.some((line) => /ERR_SSL_PROTOCOL_ERROR|ERR_CONNECTION_CLOSED/.test(line)), `the console names the failed TLS connection: ${result.problems.join('; ')}`);
  });
});
