/**
 * Diffs two V8 heap snapshots (.heapsnapshot, from v8.writeHeapSnapshot or DevTools) by
 * constructor: which kinds of objects grew between them, in count and self size. The retainer
 * of a leak is usually the top row, or what holds it (open the later snapshot in Chrome DevTools,
 * Comparison view, to follow the retainers).
 *
 *   node --import tsx bench/tools/heapsnapshot-diff.ts before.heapsnapshot after.heapsnapshot [rows]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SnapshotDiffRow {
  /** `Constructor` for objects, `(closure) name`, `(string)`, `(array)`… */
  name: string;
  countDelta: number;
  sizeDelta: number;
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Objects per constructor in one snapshot: name → [count, self size]. */
function census(path: string): Map<string, [number, number]> {
  const heap = JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshot;
  const fields = heap.snapshot.meta.node_fields;
  const typeNames = heap.snapshot.meta.node_types[0];
  const stride = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map<string, [number, number]>();
  for (let i = 0; i < heap.nodes.length; i += stride) {
    const type = typeNames[heap.nodes[i + typeAt]!] ?? '?';
    const name = type === 'object' || type === 'native' ? heap.strings[heap.nodes[i + nameAt]!]! : type === 'closure' ? `(closure) ${heap.strings[heap.nodes[i + nameAt]!]}` : `(${type})`;
    const entry = out.get(name) ?? [0, 0];
    entry[0]++;
    entry[1] += heap.nodes[i + sizeAt]!;
    out.set(name, entry);
  }
  return out;
}

/** Constructors whose objects grew from `before` to `after`, largest growth in size first. */
export function diffHeapSnapshots(before: string, after: string): SnapshotDiffRow[] {
  const a = census(before);
  const b = census(after);
  const rows: SnapshotDiffRow[] = [];
  for (const [name, [count, size]] of b) {
    const [countBefore, sizeBefore] = a.get(name) ?? [0, 0];
    if (size > sizeBefore || count > countBefore) rows.push({ name, countDelta: count - countBefore, sizeDelta: size - sizeBefore });
  }
  return rows.sort((x, y) => y.sizeDelta - x.sizeDelta);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [before, after, rows = '25'] = process.argv.slice(2);
  if (!before || !after) {
    console.error('Usage: node --import tsx bench/tools/heapsnapshot-diff.ts before.heapsnapshot after.heapsnapshot [rows]');
    process.exit(2);
  }
  for (const row of diffHeapSnapshots(before, after).slice(0, Number(rows))) {
    console.log(`${String(row.countDelta).padStart(9)} objects  ${(row.sizeDelta / 1024).toFixed(1).padStart(10)} KiB  ${row.name}`);
  }
}
