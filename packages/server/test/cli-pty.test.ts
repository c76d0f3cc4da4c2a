/**
 * The CLI as a person at a terminal sees it, on a pseudo-terminal (python3's pty module; see
 * runPty): the interactive client, `chorus connect`, typing lines at the "> " prompt, Ctrl-D and
 * Ctrl-C; and `chorus serve`'s start banner and logs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_APP, TestClient, closeAfterwards, rawUrl } from './helpers.ts';
import { runPty, screen, tempDir } from './cli-helpers.ts';

const { serverWith, track } = closeAfterwards();
const server = await serverWith();

describe('chorus connect on a terminal', () => {
  it('shows a "> " prompt, sends typed lines, prints incoming frames above the prompt; Ctrl-D closes with exit 0', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'tty-chat')));
    const r = runPty(['connect', rawUrl(server, 'tty-chat'), '--json']);
    await r.waitFor(/connected to ws:\/\/\S+ \(Ctrl-D or Ctrl-C to close\)\n> /);
    r.write('hello from the terminal\r');
    assert.equal((await peer.messages(1))[0]?.text, 'hello from the terminal');
    peer.ws.send('from the peer');
    await r.waitFor(/^< from the peer\n> $/m);
    peer.ws.send('{"event":"x","data":{"n":1}}');
    await r.waitFor(/^< \{\n {4}"event": "x",\n {4}"data": \{\n {6}"n": 1\n {4}\}\n {2}\}\n> /m);
    r.write('\x04'); // Ctrl-D
    assert.equal(await r.exited(), 0, screen(r.stdout()));
    assert.match(screen(r.stdout()), /closed 1000 \(normal closure\)/);
    assert.equal(peer.closeCode, undefined, 'the peer stays connected');
  });

  it('a frame arriving while a line is half typed keeps what was typed', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'tty-half')));
    const r = runPty(['connect', rawUrl(server, 'tty-half')]);
    await r.waitFor(/\n> /);
    r.write('half ');
    await r.waitFor(/> half $/);
    peer.ws.send('interruption');
    await r.waitFor(/< interruption\n> half /);
    r.write('done\r');
    assert.equal((await peer.messages(1))[0]?.text, 'half done');
    r.write('\x03'); // Ctrl-C
    assert.equal(await r.exited(), 0);
  });

  it('Ctrl-C closes cleanly: the peer sees the close, exit 0', async () => {
    const peer = track(await TestClient.open(`${rawUrl(server, 'tty-ctrl-c')}&presence=1`));
    const r = runPty(['connect', `${rawUrl(server, 'tty-ctrl-c')}&presence=1&user=terminal`]);
    await r.waitFor(/\n> /);
    await peer.until(() => peer.events('system:member_joined').length === 1, 'the CLI joining');
    r.write('\x03');
    assert.equal(await r.exited(), 0, screen(r.stdout()));
    assert.match(screen(r.stdout()), /closed 1000 \(normal closure\)/);
    await peer.until(() => peer.events('system:member_left').length === 1, 'the CLI leaving');
  });

  it('the server closing the connection ends the session with its code: exit 1', async () => {
    const r = runPty(['connect', rawUrl(server, 'tty-bad', 'api_key=wrong-key')]);
    assert.equal(await r.exited(), 1);
    const out = screen(r.stdout());
    assert.match(out, /< \{"error":"Unknown api key"\}/);
    assert.match(out, /closed 4001 Unknown api key \(the api_key query parameter matches no app\)/);
  });

  it('--send then the prompt: initial messages go first, then typed lines', async () => {
    const peer = track(await TestClient.open(rawUrl(server, 'tty-send')));
    const r = runPty(['connect', 'tty-send', '--url', `http://127.0.0.1:${server.port}`, '--key', TEST_APP.key, '--send', 'first']);
    await r.waitFor(/\n> /);
    r.write('second\r');
    assert.deepEqual(
      (await peer.messages(2)).map((m) => m.text),
      ['first', 'second'],
    );
    r.write('\x04');
    assert.equal(await r.exited(), 0);
  });
});

describe('chorus serve on a terminal', () => {
  it('starts with short, coloured log lines and the banner, no JSON; Ctrl-C logs "stopped" before it exits 0', async () => {
    const r = runPty(['serve', '--port', '0'], { cwd: tempDir });
    await r.waitFor(/Chorus is running on http:\/\/localhost:\d+[\s\S]*Example pages: /);
    r.write('\x03');
    assert.equal(await r.exited(), 0, screen(r.stdout()));
    const shown = screen(r.stdout());
    assert.doesNotMatch(shown, /\{"level"/, `no JSON log lines:\n${shown}`);
    const lines = shown.split('\n').filter((line) => line.trim() !== '');
    assert.match(lines[0] ?? '', /^\[\d\d:\d\d:\d\d\] INFO: listening \{"port":\d+/, 'the first line is short and human');
    assert.match(lines[1] ?? '', /^Chorus is running on /);
    assert.match(lines.at(-1) ?? '', /^\[\d\d:\d\d:\d\d\] INFO: stopped$/, 'the last log line is not lost at exit');
    // eslint-disable-next-line no-control-regex
    assert.match(r.stdout(), /\x1b\[32mINFO\x1b\[39m/, 'the level is coloured on a colour terminal');
  });

  it('NO_COLOR keeps the pretty lines uncoloured; CHORUS_LOG_FORMAT=json (or --log-format json) logs JSON on a terminal too', async () => {
    const plain = runPty(['serve', '--port', '0'], { cwd: tempDir, env: { NO_COLOR: '1' } });
    await plain.waitFor(/Chorus is running/);
    plain.write('\x03');
    assert.equal(await plain.exited(), 0);
    assert.match(plain.stdout(), /INFO: listening/);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(plain.stdout(), /\x1b\[/);

    const variants: Array<{ args: string[]; env: Record<string, string> }> = [
      { args: [], env: { CHORUS_LOG_FORMAT: 'json' } },
      { args: ['--log-format', 'json'], env: {} },
    ];
    for (const options of variants) {
      const json = runPty(['serve', '--port', '0', ...options.args], { cwd: tempDir, env: options.env });
      await json.waitFor(/Chorus is running/);
      json.write('\x03');
      assert.equal(await json.exited(), 0);
      // The terminal echoes Ctrl-C as "^C" where the cursor is: at the start of the next line.
      const logs = screen(json.stdout()).split('\n').map((line) => line.replace(/^\^C/, '')).filter((line) => line.startsWith('{'));
      assert.deepEqual(
        logs.map((line) => (JSON.parse(line) as { msg: string }).msg),
        ['listening', 'shutting down', 'stopped'],
      );
    }
  });
});
