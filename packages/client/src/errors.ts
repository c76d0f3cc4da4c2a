/**
 * Coded errors. Every promise the SDK rejects for a protocol reason rejects with a ChorusError:
 * server refusals keep the reply's `code`/`name`; the SDK's own (201–204) come from ErrorCodes.
 */
import type { ReplyError, ReplyErrorInfo } from '@chorus/protocol';

export class ChorusError extends Error {
  /** Numeric code: 100–199 from the server's reply, 200–299 raised by the SDK (see docs/codes.md). */
  readonly code: number;
  /** Machine name of the code, e.g. `permission_denied`, `queue_full`. */
  readonly codeName: string;
  /** For 204 terminal_disconnect: the WebSocket close code and reason the server sent. */
  readonly closeCode: number | undefined;
  readonly closeReason: string | undefined;

  constructor(code: number, codeName: string, message: string, options: { cause?: unknown; closeCode?: number; closeReason?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ChorusError';
    this.code = code;
    this.codeName = codeName;
    this.closeCode = options.closeCode;
    this.closeReason = options.closeReason;
  }

  /** An error from a reply frame (`{"ok": false, "error": {code, name, message}}`). */
  static fromReply(error: ReplyError): ChorusError {
    return new ChorusError(error.code, error.name, error.message);
  }

  /** An SDK-side error from the ErrorCodes registry. */
  static of(info: ReplyErrorInfo, message: string = info.description, options?: { cause?: unknown; closeCode?: number; closeReason?: string }): ChorusError {
    return new ChorusError(info.code, info.name, message, options);
  }
}
