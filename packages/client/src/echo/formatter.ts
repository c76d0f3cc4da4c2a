/**
 * Laravel Echo's event names, as its EventFormatter makes them: `listen('OrderShipped')` is the
 * event `App\Events\OrderShipped` (the namespace, dots turned into backslashes), while a leading
 * `.` or `\` means "exactly this name" (`listen('.order.shipped')` is `order.shipped`). The same
 * rules, so code written for Echo's Pusher connector listens to the same names here.
 */
export const DEFAULT_NAMESPACE = 'App.Events';

export class EventFormatter {
  #namespace: string | false;

  constructor(namespace: string | false) {
    this.#namespace = namespace;
  }

  format(event: string): string {
    const first = event.charAt(0);
    if (first === '.' || first === '\\') return event.substring(1);
    const named = this.#namespace ? `${this.#namespace}.${event}` : event;
    return named.replace(/\./g, '\\');
  }

  /** The name `listenToAll` callbacks get: relative to the namespace, else with a leading dot. */
  unformat(event: string): string {
    const prefix = this.#namespace ? `${this.#namespace.replace(/\./g, '\\')}\\` : undefined;
    return prefix !== undefined && event.startsWith(prefix) ? event.substring(prefix.length) : `.${event}`;
  }

  setNamespace(namespace: string | false): void {
    this.#namespace = namespace;
  }
}
