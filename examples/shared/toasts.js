// Toasts: short messages stacked in a corner of the page. Errors stay until dismissed; other
// kinds fade after a few seconds. The same text shown again while its toast is still up bumps a
// counter instead of stacking a copy, so a burst of identical errors stays readable.

const DEFAULT_TIMEOUT_MS = 6000;

/**
 * Returns `show(text, options)` for the toast area `container` (an element with
 * `aria-live="polite"`). Options: `kind` ('error' | 'info' | 'success', default 'info'), `title`,
 * `timeoutMs` (0 keeps it until closed; errors default to 0).
 */
export function createToasts(container) {
  const open = new Map(); // "kind|title|text" → {element, count}

  return function show(text, { kind = 'info', title = '', timeoutMs = kind === 'error' ? 0 : DEFAULT_TIMEOUT_MS } = {}) {
    const key = `${kind}|${title}|${text}`;
    const existing = open.get(key);
    if (existing) {
      existing.count += 1;
      existing.counter.textContent = `×${existing.count}`;
      existing.counter.hidden = false;
      return existing.element;
    }

    const element = document.createElement('div');
    element.className = 'toast';
    element.dataset.kind = kind;
    element.dataset.testid = 'toast';
    element.setAttribute('role', kind === 'error' ? 'alert' : 'status');

    const body = document.createElement('div');
    body.className = 'toast-body';
    if (title) {
      const heading = document.createElement('strong');
      heading.className = 'toast-title';
      heading.textContent = title;
      body.append(heading);
    }
    const message = document.createElement('span');
    message.className = 'toast-text';
    message.textContent = text;
    const counter = document.createElement('span');
    counter.className = 'toast-count';
    counter.hidden = true;
    body.append(message, counter);

    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast-close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';

    const entry = { element, counter, count: 1 };
    const dismiss = () => {
      open.delete(key);
      element.remove();
    };
    close.addEventListener('click', dismiss);
    element.append(body, close);
    container.append(element);
    open.set(key, entry);
    if (timeoutMs > 0) setTimeout(dismiss, timeoutMs);
    return element;
  };
}

/** A readable one-liner for any error: ChorusErrors carry a code and its name. */
export function describeError(error) {
  if (error && typeof error === 'object' && 'code' in error && 'codeName' in error) {
    return `${error.message} (${error.code} ${error.codeName})`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * A `.catch` handler that toasts an operation's failure under `title`, except the failures that
 * only echo the connection's fate (203 client_closed, 204 terminal_disconnect): the connection
 * error toast already says why.
 */
export function toastFailure(toast, title) {
  return (error) => {
    if (error?.code === 203 || error?.code === 204) return;
    toast(describeError(error), { kind: 'error', title });
  };
}
