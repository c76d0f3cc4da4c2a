/**
 * pusher-js for tests, typed. Its Node build is CommonJS with `module.exports = Pusher`, while its
 * .d.ts says `export default`: under NodeNext TypeScript then sees the default import as the
 * module, not the class. Node hands the class itself to a default import, which this re-exports.
 */
import PusherModule from 'pusher-js';
import type * as OptionTypes from 'pusher-js/types/src/core/options.js';
import type * as PusherTypes from 'pusher-js/types/src/core/pusher.js';

export type PusherClient = PusherTypes.default;
export type PusherOptions = OptionTypes.Options;
export const Pusher = PusherModule as unknown as new (key: string, options: PusherOptions) => PusherClient;
