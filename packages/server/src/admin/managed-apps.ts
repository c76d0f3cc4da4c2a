/**
 * Apps managed without a restart (docs/admin.md): the admin API adds apps, disables and enables
 * them, and rotates their secrets. Each change is saved in engine.apps (a file next to the
 * config on one node, Redis on a cluster), applied here, and announced to every node, which
 * reloads that app from the store; a starting node applies every stored app over its config.
 *
 * Changes apply in place to the App object every session holds, so a rotated secret is the only
 * one accepted from then on, and a disabled app refuses new connections and API calls (its open
 * connections stay until they close).
 */
import { randomBytes } from 'node:crypto';
import type { App } from '../apps.js';
import { ConfigError, resolveAppConfig, validateAppInput } from '../config.js';
import type { ServerContext } from '../context.js';
import type { StoredApp } from '../engine/types.js';

/** A change the admin API cannot make, with why (the API answers 400). */
export class AppChangeError extends Error {}

/** The stored apps over the config's: at start, before the server listens. */
export async function applyStoredApps(ctx: ServerContext): Promise<void> {
  for (const stored of await ctx.engine.apps.load()) apply(ctx, stored);
}

/** Another node (or this one) changed an app: take its stored state. */
export async function reloadApp(ctx: ServerContext, appId: string): Promise<void> {
  const stored = (await ctx.engine.apps.load()).find((app) => app.id === appId);
  if (stored) apply(ctx, stored);
}

export async function createApp(ctx: ServerContext, input: { id?: unknown; key?: unknown; secret?: unknown }): Promise<StoredApp> {
  const candidate = {
    id: input.id,
    key: input.key ?? randomBytes(15).toString('base64url'),
    secret: input.secret ?? randomBytes(24).toString('base64url'),
  };
  let valid;
  try {
    valid = validateAppInput(candidate, 'app');
  } catch (error) {
    if (error instanceof ConfigError) throw new AppChangeError(error.message);
    throw error;
  }
  if (ctx.apps.byId(valid.id)) throw new AppChangeError(`app.id "${valid.id}" is used by another app`);
  if (ctx.apps.byKey(valid.key)) throw new AppChangeError('app.key is used by another app');
  return store(ctx, { id: valid.id, key: valid.key, secret: valid.secret, enabled: true });
}

export function setAppEnabled(ctx: ServerContext, app: App, enabled: boolean): Promise<StoredApp> {
  return store(ctx, { ...storedOf(app), enabled });
}

export function rotateAppSecret(ctx: ServerContext, app: App, secret: unknown): Promise<StoredApp> {
  const next = secret ?? randomBytes(24).toString('base64url');
  try {
    validateAppInput({ id: app.id, key: app.key, secret: next }, 'app');
  } catch (error) {
    if (error instanceof ConfigError) throw new AppChangeError(error.message);
    throw error;
  }
  return store(ctx, { ...storedOf(app), secret: next as string });
}

async function store(ctx: ServerContext, app: StoredApp): Promise<StoredApp> {
  await ctx.engine.apps.save(app);
  apply(ctx, app);
  await ctx.engine.broadcast({ kind: 'app-changed', appId: app.id });
  return app;
}

function storedOf(app: App): StoredApp {
  return { id: app.id, key: app.key, secret: app.credentials.secret, enabled: app.enabled };
}

function apply(ctx: ServerContext, stored: StoredApp): void {
  const app = ctx.apps.byId(stored.id);
  if (!app) {
    const added = ctx.apps.add(resolveAppConfig({ id: stored.id, key: stored.key, secret: stored.secret, enabled: stored.enabled }, ctx.config.appDefaults));
    if (!added) ctx.log.warn({ app: stored.id }, 'stored app not added: its key is used by another app of the config');
    return;
  }
  if (app.key !== stored.key) {
    ctx.log.warn({ app: stored.id }, 'stored app ignored: its key differs from the config\'s app of that id (keys cannot change; add a new app)');
    return;
  }
  if (app.credentials.secret !== stored.secret) app.rotateSecret(stored.secret);
  app.enabled = stored.enabled;
}
