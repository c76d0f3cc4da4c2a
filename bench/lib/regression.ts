/**
 * Ordinary least squares for the slopes the soak and scale benchmarks state: y ≈ b0 + b1·x1 + …
 * (normal equations, solved by Gaussian elimination; a handful of regressors at most).
 */

/** Coefficients [b0 (intercept), b1, …] of the least-squares fit of `ys` on the columns of `xs` (xs[i] = the regressors of sample i); NaN when underdetermined. */
export function leastSquares(xs: readonly (readonly number[])[], ys: readonly number[]): number[] {
  const k = (xs[0]?.length ?? 0) + 1;
  if (ys.length < k + 1) return Array<number>(k).fill(NaN);
  // A = XᵀX (k×k) augmented with Xᵀy.
  const a = Array.from({ length: k }, () => Array<number>(k + 1).fill(0));
  ys.forEach((y, i) => {
    const row = [1, ...xs[i]!];
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < k; c++) a[r]![c]! += row[r]! * row[c]!;
      a[r]![k]! += row[r]! * y;
    }
  });
  for (let col = 0; col < k; col++) {
    let pivot = col;
    for (let r = col + 1; r < k; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    const p = a[col]![col]!;
    if (Math.abs(p) < 1e-12) return Array<number>(k).fill(NaN);
    for (let r = 0; r < k; r++) {
      if (r === col) continue;
      const factor = a[r]![col]! / p;
      for (let c = col; c <= k; c++) a[r]![c]! -= factor * a[col]![c]!;
    }
  }
  return a.map((row, r) => row[k]! / row[r]!);
}
