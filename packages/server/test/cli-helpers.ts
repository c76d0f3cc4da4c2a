/**
 * Running the real `chorus` binary (node_modules/.bin/chorus, built by `tsc -b`) from tests:
 * piped, or under a pseudo-terminal through a small python3 `pty` bridge (no native modules).
 * Every wait has a deadline, and every process started here is killed in the file's `after`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const chorusBin = join(repoRoot, 'node_modules/.bin/chorus');
export const tempDir = mkdtempSync(join(tmpdir(), 'chorus-cli-'));

const running = new Set<ChildProcess>();
after(() => {
  for (const child of running) child.kill('SIGKILL');
});

export interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code; rejects after `timeoutMs` (default 15 s). */
  exited: (timeoutMs?: number) => Promise<number | null>;
  /** Resolves once `pattern` matches stdout, stderr, both, or (for PTYs) the terminal's screen. */
  waitFor: (pattern: RegExp, where?: 'stdout' | 'stderr', timeoutMs?: number) => Promise<RegExpExecArray>;
  write: (text: string) => void;
  end: () => void;
}

export interface RunOptions {
  env?: Record<string, string>;
  /** 'ignore' (default: stdin is /dev/null) or 'pipe' (write to it with run.write/end). */
  stdin?: 'ignore' | 'pipe';
  /** Working directory (default: the test's); `serve` keeps its development app in CWD/.chorus/. */
  cwd?: string;
}

/** The environment without the caller's CHORUS_* and BENCH_* settings, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^(CHORUS|BENCH)_/.test(name)) env[name] = value;
  return { ...env, ...extra };
}

export function run(args: string[], options: RunOptions = {}): Run {
  return track(spawn(chorusBin, args, { cwd: options.cwd, env: cleanEnv(options.env), stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'] }), false);
}

/**
 * What a terminal shows after `raw` output: carriage returns, cursor moves to a column and line
 * erases applied (what readline uses to redraw its prompt), other escape sequences dropped.
 */
export function screen(raw: string): string {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  for (let i = 0; i < raw.length; i++) {
    const line = lines[row] as string[];
    // eslint-disable-next-line no-control-regex
    const escape = /^\x1b\[([0-9;?]*)([A-Za-z])/.exec(raw.slice(i, i + 16));
    if (escape) {
      i += escape[0].length - 1;
      const n = Number(escape[1] || '0');
      if (escape[2] === 'G') col = Math.max(0, (n || 1) - 1);
      else if (escape[2] === 'C') col += n || 1;
      else if (escape[2] === 'D') col = Math.max(0, col - (n || 1));
      else if (escape[2] === 'K') line.length = n === 2 ? 0 : Math.min(line.length, col);
      else if (escape[2] === 'J') {
        line.length = Math.min(line.length, col);
        lines.length = row + 1;
      }
      continue;
    }
    const ch = raw[i] as string;
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      lines[row] ??= [];
      col = 0;
    } else {
      while (line.length < col) line.push(' ');
      line[col++] = ch;
    }
  }
  return lines.map((line) => line.join('')).join('\n');
}

/**
 * Runs the CLI with stdin, stdout and stderr on a pseudo-terminal (a real TTY: readline's
 * prompt, raw mode, Ctrl-C and Ctrl-D as keys). `write` types into it; the terminal's output is
 * `stdout()` (stdout and stderr interleaved, as a user sees them). The bridge exits with the
 * CLI's exit code and kills it after 30 s.
 */
export function runPty(args: string[], options: { env?: Record<string, string>; columns?: number; cwd?: string } = {}): Run {
  return track(
    spawn('python3', ['-c', PTY_BRIDGE, String(options.columns ?? 120), chorusBin, ...args], {
      cwd: options.cwd,
      env: cleanEnv({ TERM: 'xterm-256color', ...options.env }),
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
    true,
  );
}

function track(child: ChildProcess, terminal: boolean): Run {
  running.add(child);
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const listener of [...listeners]) listener();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const listener of [...listeners]) listener();
  });
  const exit = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited: (timeoutMs = 15_000) =>
      new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`chorus did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`)), timeoutMs);
        void exit.then((code) => {
          clearTimeout(timer);
          resolve(code);
        });
      }),
    waitFor: (pattern, where, timeoutMs = 10_000) =>
      new Promise<RegExpExecArray>((resolve, reject) => {
        const shown = (): string => (terminal ? screen(stdout) : where === 'stderr' ? stderr : where === 'stdout' ? stdout : `${stdout}\n${stderr}`);
        const stop = (error?: Error, match?: RegExpExecArray): void => {
          listeners.delete(check);
          clearTimeout(timer);
          if (match) resolve(match);
          else reject(error ?? new Error('no match'));
        };
        const check = (): void => {
          const match = pattern.exec(shown());
          if (match) stop(undefined, match);
        };
        const timer = setTimeout(() => stop(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}\n${terminal ? `screen:\n${shown()}` : `stdout: ${stdout}\nstderr: ${stderr}`}`)), timeoutMs);
        listeners.add(check);
        void exit.then(() => {
          check();
          if (listeners.has(check)) stop(new Error(`exited before ${pattern}\n${terminal ? `screen:\n${shown()}` : `stdout: ${stdout}\nstderr: ${stderr}`}`));
        });
        check();
      }),
    write: (text) => child.stdin?.write(text),
    end: () => child.stdin?.end(),
  };
}

export function writeTemp(name: string, content: unknown): string {
  const path = join(tempDir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** A port nothing listens on (bound, read, released). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** argv: columns, command, args…  Relays our stdin to the terminal and the terminal to our stdout. */
const PTY_BRIDGE = `
import fcntl, os, pty, select, signal, struct, sys, termios, time
columns, argv = int(sys.argv[1]), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 24, columns, 0, 0))
deadline, stdin_open, status = time.time() + 30, True, None
def relay():
    try:
        data = os.read(fd, 65536)
    except OSError:
        return False
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return bool(data)
while status is None and time.time() < deadline:
    ready, _, _ = select.select([fd] + ([0] if stdin_open else []), [], [], 0.05)
    if 0 in ready:
        data = os.read(0, 4096)
        if data:
            os.write(fd, data)
        else:
            stdin_open = False
    if fd in ready:
        relay()
    done, code = os.waitpid(pid, os.WNOHANG)
    if done:
        status = code
if status is None:
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
while select.select([fd], [], [], 0.05)[0] and relay():
    pass
sys.exit(os.waitstatus_to_exitcode(status))
`;
