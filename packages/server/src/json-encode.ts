/**
 * JSON.stringify for values a client sent. JSON.parse takes any depth, but JSON.stringify
 * recurses and throws (RangeError) on a value nested a few thousand levels deep, which fits in a
 * 20 KB frame of brackets: fuzzing found that a 500, a failed command and a broken fan-out.
 */
export function encodeJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/** What a refusal says about such a value. */
export const TOO_DEEP = 'is nested too deeply to be re-encoded as JSON';
