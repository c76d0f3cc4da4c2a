/** docs/codes.md must list exactly the codes the code defines, with the same fields. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { CloseCodes, ErrorCodes, HttpErrors, PusherCloseCodes } from '@chorus/protocol';

const doc = readFileSync(new URL('../../../docs/codes.md', import.meta.url), 'utf8');

/** Rows of the table whose header row starts with `| firstHeader | secondHeader |`. */
function tableRows(firstHeader: string, secondHeader: string): string[][] {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`| ${firstHeader} | ${secondHeader} |`));
  assert.ok(start >= 0, `docs/codes.md has a table starting with "| ${firstHeader} | ${secondHeader} |"`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((cell) => cell.trim()));
  }
  return rows;
}

it('close codes in docs/codes.md equal CloseCodes', () => {
  const documented = tableRows('code', 'reason (close frame)').map(([code, reason, reconnect, meaning]) => ({ code: Number(code), reason, reconnect, meaning }));
  const defined = Object.values(CloseCodes).map((c) => ({
    code: c.code,
    reason: c.reason === '' ? '(empty)' : c.reason,
    reconnect: c.reconnect ? 'yes' : 'no',
    meaning: c.description,
  }));
  assert.deepEqual(documented, defined);
});

it('Pusher close codes in docs/codes.md equal PusherCloseCodes', () => {
  const documented = tableRows('pusher code', 'reason (close frame)').map(([code, reason, reconnect, meaning]) => ({ code: Number(code), reason, reconnect, meaning }));
  const defined = Object.values(PusherCloseCodes).map((c) => ({ code: c.code, reason: c.reason, reconnect: c.reconnect ? 'yes' : 'no', meaning: c.description }));
  assert.deepEqual(documented, defined);
});

it('Pusher close codes sit in the range pusher-js acts on (4000–4099 final, 4100–4299 reconnect)', () => {
  for (const c of Object.values(PusherCloseCodes)) {
    if (c.code < 4100 || c.code >= 4300) assert.equal(c.reconnect, false, `${c.code}: pusher-js does not reconnect`);
    else assert.equal(c.reconnect, true, `${c.code}: pusher-js reconnects`);
  }
});

it('HTTP errors in docs/codes.md equal HttpErrors', () => {
  const documented = tableRows('status', 'code').map(([status, code, meaning]) => ({ status: Number(status), code, meaning }));
  const defined = Object.values(HttpErrors).map((e) => ({ status: e.status, code: e.code, meaning: e.message }));
  assert.deepEqual(documented, defined);
});

it('v1 reply errors in docs/codes.md equal ErrorCodes', () => {
  const documented = tableRows('code', 'name').map(([code, name, meaning]) => ({ code: Number(code), name, meaning }));
  const defined = Object.values(ErrorCodes).map((e) => ({ code: e.code, name: e.name, meaning: e.description }));
  assert.deepEqual(documented, defined);
});

it('close codes sit in the range that matches their reconnect advice', () => {
  for (const c of Object.values(CloseCodes)) {
    if (c.code >= 4000 && c.code < 4500) assert.equal(c.reconnect, false, `${c.code} is terminal`);
    if (c.code >= 4500) assert.equal(c.reconnect, true, `${c.code} is transient`);
  }
});
