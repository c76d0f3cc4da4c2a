/**
 * Channel and event names, one rule for every dialect: Pusher's, the widest the field uses, so a
 * Laravel channel like `private-App.Models.User.1` and an Echo event like
 * `App\Events\OrderShipped` are the same names on raw, v1 and Pusher connections.
 */

/** Pusher's SDKs allow 200 (its docs say 164; the servers in the field take 200). PieSocket documents 30. */
export const MAX_CHANNEL_NAME_LENGTH = 200;
export const CHANNEL_NAME = /^[A-Za-z0-9_\-=@,.;]+$/;
/** For error messages and help texts. */
export const CHANNEL_NAME_RULE = '[A-Za-z0-9_-=@,.;], 1 to 200 characters';

export const PRIVATE_CHANNEL_PREFIX = 'private-';
export const PRESENCE_CHANNEL_PREFIX = 'presence-';

export function isValidChannelName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_CHANNEL_NAME_LENGTH && CHANNEL_NAME.test(name);
}

/** Event names: any characters (Echo's namespaced `App\Events\X` included), 1 to 200 of them. */
export const MAX_EVENT_NAME_LENGTH = 200;
