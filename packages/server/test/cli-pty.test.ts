/**
 * The interactive client as a person uses it: `chorus connect` on a pseudo-terminal (python3's
 * pty module; see runPty), typing lines at the "> " prompt, Ctrl-D and Ctrl-C.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_APP, TestClient, closeAfterwards, rawUrl } from './helpers.ts';
import { runPty, screen } from './cli-helpers.ts';

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
