/**
 * The development app `chorus serve` runs when the config names no apps. It is kept in
 * `.chorus/dev-app.json` of the working directory, so that a restart keeps its key: example
 * pages left open reconnect instead of ending in "Not authorized", and a key pasted into a page
 * or a script keeps working. Only a missing file makes a new one.
 *
 * Why the working directory and not ~/.config: each project gets its own key, the banner can
 * point at a file next to the project, and deleting it is the obvious way to get a new key.
 * The folder holds a `.gitignore` of `*`, so the secret stays out of whatever repository the
 * server was started in (this repository's .gitignore lists `.chorus/` as well).
 *
 * A file that exists but cannot be read or is not a valid app stops the server (exit 2) rather
 * than being replaced: pages and scripts hold its key, and a silent new one would break them
 * just as a restart used to. The one line names the file and says to delete it.
 */
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AppConfigInput } from '../config.js';

export const DEV_APP_DIR = '.chorus';
export const DEV_APP_FILE = 'dev-app.json';

export interface DevApp {
  app: AppConfigInput;
  /** Absolute path of the file. */
  path: string;
  /** 'loaded': read from the file; 'created': generated and saved now; 'unsaved': generated, but the file could not be written. */
  origin: 'loaded' | 'created' | 'unsaved';
  /** Why it could not be saved (origin 'unsaved'), e.g. "EROFS". */
  problem?: string;
}

export async function loadDevApp(cwd = process.cwd()): Promise<DevApp> {
  const dir = resolve(cwd, DEV_APP_DIR);
  const path = join(dir, DEV_APP_FILE);
  const existing = await read(path);
  if (existing) return { app: existing, path, origin: 'loaded' };

  const { generateDevelopmentApp } = await import('../config.js');
  const app = generateDevelopmentApp();
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, '.gitignore'), '# Written by chorus serve: the development app\'s secret stays out of git.\n*\n', { flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
    // Written aside and linked into place: link() fails if the file exists, so of two servers
    // starting at once in the same folder one wins and the other reads its app, whole.
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, `${JSON.stringify(app, null, 2)}\n`, { mode: 0o600 });
    try {
      await link(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const theirs = await read(path);
      return theirs ? { app: theirs, path, origin: 'loaded' } : { app, path, origin: 'unsaved', problem: 'removed while being written' };
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  } catch (error) {
    // A read-only folder must not stop a development server: it runs, with a key for this run only.
    return { app, path, origin: 'unsaved', problem: (error as NodeJS.ErrnoException).code ?? String(error) };
  }
  return { app, path, origin: 'created' };
}

/** The app in the file; undefined when there is no file. Throws ConfigError for one that cannot be used. */
async function read(path: string): Promise<AppConfigInput | undefined> {
  const { ConfigError, validateAppInput } = await import('../config.js');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new ConfigError(`${path}: cannot read (${code ?? String(error)}); fix its permissions, or delete it to get a new development key`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message.split('\n')[0]}); delete it to get a new development key`);
  }
  return validateAppInput(parsed, path);
}
