/**
 * Line charts as hand-written SVG (like docs/benchmarks.svg's bars in docs.ts, no charting
 * library): a row of panels, each with its own y axis and a few series over a shared kind of x
 * (time, connections). Used by bench:soak (docs/benchmarks-soak.svg) and bench:scale
 * (docs/benchmarks-scale.svg).
 */
import { escapeXml } from './docs.ts';

export interface Series {
  label: string;
  color: string;
  points: { x: number; y: number }[];
  /** Dashed: a fitted line, a bound. */
  dashed?: boolean;
}

export interface LinePanel {
  title: string;
  /** Axis captions, units included. */
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Formats tick values. */
  formatX?: (value: number) => string;
  formatY?: (value: number) => string;
}

const PANEL_WIDTH = 340;
const PANEL_HEIGHT = 250;
const PLOT = { left: 56, right: 12, top: 40, bottom: 64 };

/** A chart of `panels` side by side (at most `columns` a row) under a title and a subtitle. */
export function renderLineChart(title: string, subtitle: string, panels: readonly LinePanel[], columns = 3): string {
  const rows = Math.ceil(panels.length / columns);
  const width = Math.min(columns, panels.length) * PANEL_WIDTH + 20;
  const height = 48 + rows * (PANEL_HEIGHT + 12);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11">`);
  parts.push('<rect width="100%" height="100%" fill="#ffffff"/>');
  parts.push(`<text x="10" y="22" font-size="15" font-weight="600" fill="#111827">${escapeXml(title)}</text>`);
  parts.push(`<text x="10" y="38" fill="#6b7280">${escapeXml(subtitle)}</text>`);
  panels.forEach((panel, index) => {
    const x0 = 10 + (index % columns) * PANEL_WIDTH;
    const y0 = 48 + Math.floor(index / columns) * (PANEL_HEIGHT + 12);
    parts.push(`<g transform="translate(${x0},${y0})">`);
    parts.push(...renderPanel(panel));
    parts.push('</g>');
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function renderPanel(panel: LinePanel): string[] {
  const out: string[] = [];
  const width = PANEL_WIDTH - 10;
  const plotWidth = width - PLOT.left - PLOT.right;
  const plotHeight = PANEL_HEIGHT - PLOT.top - PLOT.bottom;
  const points = panel.series.flatMap((series) => series.points).filter((point) => Number.isFinite(point.x) && Number.isFinite(point.y));
  const xs = points.map((point) => point.x);
  const ys = points.map((point) => point.y);
  const [xMin, xMax] = niceRange(Math.min(0, ...xs), Math.max(1e-9, ...xs));
  const [yMin, yMax] = niceRange(Math.min(0, ...ys), Math.max(1e-9, ...ys));
  const fx = (x: number): number => PLOT.left + ((x - xMin) / (xMax - xMin)) * plotWidth;
  const fy = (y: number): number => PLOT.top + plotHeight - ((y - yMin) / (yMax - yMin)) * plotHeight;
  const formatX = panel.formatX ?? compact;
  const formatY = panel.formatY ?? compact;

  out.push(`<rect x="0" y="0" width="${width}" height="${PANEL_HEIGHT}" rx="6" fill="#f9fafb" stroke="#e5e7eb"/>`);
  out.push(`<text x="10" y="18" font-weight="600" fill="#111827">${escapeXml(panel.title)}</text>`);
  out.push(`<text x="10" y="32" fill="#6b7280">${escapeXml(panel.yLabel)}</text>`);
  for (let k = 0; k <= 4; k++) {
    const y = yMin + ((yMax - yMin) * k) / 4;
    const x = xMin + ((xMax - xMin) * k) / 4;
    out.push(`<line x1="${PLOT.left}" x2="${PLOT.left + plotWidth}" y1="${fy(y).toFixed(1)}" y2="${fy(y).toFixed(1)}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${PLOT.left - 4}" y="${(fy(y) + 4).toFixed(1)}" text-anchor="end" fill="#6b7280">${escapeXml(formatY(y))}</text>`);
    out.push(`<text x="${fx(x).toFixed(1)}" y="${PLOT.top + plotHeight + 14}" text-anchor="middle" fill="#6b7280">${escapeXml(formatX(x))}</text>`);
  }
  out.push(`<text x="${PLOT.left + plotWidth / 2}" y="${PLOT.top + plotHeight + 28}" text-anchor="middle" fill="#374151">${escapeXml(panel.xLabel)}</text>`);
  for (const series of panel.series) {
    const path = series.points
      .filter((point) => Number.isFinite(point.x) && Number.isFinite(point.y))
      .map((point, i) => `${i === 0 ? 'M' : 'L'}${fx(point.x).toFixed(1)},${fy(point.y).toFixed(1)}`)
      .join(' ');
    if (path) out.push(`<path d="${path}" fill="none" stroke="${series.color}" stroke-width="1.8"${series.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
  }
  // Legend under the axis caption, two entries a line.
  panel.series.forEach((series, i) => {
    const x = 10 + (i % 2) * (width / 2);
    const y = PLOT.top + plotHeight + 42 + Math.floor(i / 2) * 13;
    out.push(`<line x1="${x}" x2="${x + 14}" y1="${y - 4}" y2="${y - 4}" stroke="${series.color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="4,2"' : ''}/>`);
    out.push(`<text x="${x + 18}" y="${y}" fill="#374151">${escapeXml(series.label)}</text>`);
  });
  return out;
}

/** Rounds a range outwards to a multiple of a 1-2-5 step so that 4 ticks are round numbers. */
function niceRange(min: number, max: number): [number, number] {
  const span = max - min || Math.abs(max) || 1;
  const magnitude = 10 ** Math.floor(Math.log10(span / 4));
  for (const multiple of [1, 2, 2.5, 5, 10, 20, 25, 50]) {
    const step = multiple * magnitude;
    const low = Math.floor(min / step) * step;
    if (low + 4 * step >= max) return [low, low + 4 * step];
  }
  return [min, max];
}

/** 1234 → "1.2k", 2500000 → "2.5M". */
function compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toFixed(abs < 10 ? 2 : 0)}`;
}
