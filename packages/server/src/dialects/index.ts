/**
 * The dialect table: every wire dialect the server speaks, each an adapter on the one admission
 * pipeline (admission.ts). Order matters only if two could claim a path; none do.
 */
import type { Dialect } from '../admission.js';
import { pusherDialect } from './pusher/index.js';
import { rawDialect } from './raw.js';
import { v1Dialect } from './v1/index.js';
import { yjsDialect } from './yjs/index.js';

export const DIALECTS: readonly Dialect[] = [rawDialect, v1Dialect, pusherDialect, yjsDialect];
