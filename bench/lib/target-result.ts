/** A target's verdict, and the two comparisons every target is made of. */
export type TargetStatus = 'PASS' | 'MISS' | 'n/a';

export interface TargetResult {
  name: string;
  status: TargetStatus;
  detail: string;
}

export function compare(name: string, ours: number | undefined, theirs: number | undefined, factor: number, detail: (ours: number, theirs: number) => string): TargetResult {
  if (ours === undefined || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs)) return { name, status: 'n/a', detail: 'not measured in this run' };
  return { name, status: ours >= factor * theirs ? 'PASS' : 'MISS', detail: detail(ours, theirs) };
}

export function compareAtMost(name: string, ours: number | undefined, theirs: number | undefined, factor: number, detail: (ours: number, theirs: number) => string): TargetResult {
  if (ours === undefined || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs)) return { name, status: 'n/a', detail: 'not measured in this run' };
  return { name, status: ours <= factor * theirs ? 'PASS' : 'MISS', detail: detail(ours, theirs) };
}
