// Medians, spreads and the printed tables.

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** {median, min, max, spreadPct}: spread is (max - min) / median. */
export function summarize(values) {
  const v = values.filter((x) => Number.isFinite(x));
  const med = median(v);
  const min = v.length ? Math.min(...v) : NaN;
  const max = v.length ? Math.max(...v) : NaN;
  return { median: med, min, max, spreadPct: med ? ((max - min) / med) * 100 : NaN, n: v.length, values };
}

export function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}

export function fmtRatio(r) {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : '–';
}

/** A plain-text table (also valid Markdown). */
export function table(headers, rows) {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c)));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(cells[0]), sep, ...cells.slice(1).map(line)].join('\n');
}
