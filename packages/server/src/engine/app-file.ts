/**
 * The memory engine's AppStore: apps managed through the admin API, kept in a JSON file (written
 * aside, then renamed into place, mode 0600: it holds secrets), or in this process only when no
 * file is configured.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppStore, StoredApp } from './types.js';

export class FileAppStore implements AppStore {
  readonly #path: string | undefined;
  #apps: Map<string, StoredApp> | undefined;
  /** Writes one after the other: two quick changes must not land out of order. */
  #writing: Promise<void> = Promise.resolve();

  constructor(path: string | undefined) {
    this.#path = path;
  }

  async load(): Promise<StoredApp[]> {
    return [...(await this.#read()).values()];
  }

  async save(app: StoredApp): Promise<void> {
    const apps = await this.#read();
    apps.set(app.id, app);
    const path = this.#path;
    if (path === undefined) return;
    const text = `${JSON.stringify({ apps: [...apps.values()] }, null, 2)}\n`;
    this.#writing = this.#writing.then(async () => {
      await mkdir(dirname(path), { recursive: true });
      const temp = `${path}.${process.pid}.tmp`;
      await writeFile(temp, text, { mode: 0o600 });
      await rename(temp, path);
    });
    await this.#writing;
  }

  async #read(): Promise<Map<string, StoredApp>> {
    if (this.#apps) return this.#apps;
    const apps = new Map<string, StoredApp>();
    if (this.#path !== undefined) {
      let text: string | undefined;
      try {
        text = await readFile(this.#path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      if (text !== undefined) for (const app of (JSON.parse(text) as { apps: StoredApp[] }).apps) apps.set(app.id, app);
    }
    this.#apps = apps;
    return apps;
  }
}
