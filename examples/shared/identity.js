// Small helpers for who you are on a page (a nickname) and where you are (a room in the URL's
// hash, so a link like /examples/chat/#lunch opens the same room in another window).

const NICKNAME_KEY = 'chorus-examples:nickname';

/**
 * This tab's nickname. sessionStorage, not localStorage: it survives reloads, but two windows
 * of the same browser get different names, which is what you want when trying an example with
 * yourself.
 */
export function getNickname() {
  let name = sessionStorage.getItem(NICKNAME_KEY);
  if (!name) {
    name = `Guest ${Math.floor(100 + Math.random() * 900)}`;
    sessionStorage.setItem(NICKNAME_KEY, name);
  }
  return name;
}

/** Stores and returns a cleaned-up nickname (trimmed, at most 24 characters), or the old one if empty. */
export function setNickname(name) {
  const clean = String(name).trim().replace(/\s+/g, ' ').slice(0, 24);
  if (clean) sessionStorage.setItem(NICKNAME_KEY, clean);
  return getNickname();
}

/** A stable, readable colour for a name or id. */
export function colorFor(text) {
  let hash = 0;
  for (const char of String(text)) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 65% 45%)`;
}

/** A random id, e.g. to tell this tab's messages apart from the others'. */
export function randomId() {
  return Math.random().toString(36).slice(2, 10);
}

/**
 * Channel names are 1–200 characters of [A-Za-z0-9_-=@,.;]. Rooms are user input, so they are turned
 * into a short slug that fits ("Lunch plans!" → "lunch-plans").
 */
export function slug(text, maxLength = 40) {
  return String(text).toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, maxLength);
}

/** The room named in the URL's hash (`#lunch`), or `fallback`. */
export function roomFromHash(fallback) {
  return slug(decodeURIComponent(location.hash.slice(1))) || fallback;
}
