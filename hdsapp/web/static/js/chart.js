// Accesses per day, drawn as an inline SVG (no library): stacked bars of allowed accesses,
// denied or failed attempts, and break-the-glass accesses. Colours come from app.css classes
// (no style attribute); a data table beside it gives the same numbers to screen readers.

import { h, s, uid } from "./dom.js";
import { formatNumber, lang, t } from "./i18n.js";

const HEIGHT = 220;
const PAD = { top: 12, right: 8, bottom: 28, left: 36 };
export const SERIES = ["allowed", "denied", "breakGlass"];

export function isBreakGlass(entry) {
  const purposes = (entry.event && entry.event.purposeOfEvent) || [];
  return (
    entry.kind === "break-glass" ||
    purposes.some((p) => (p.coding || []).some((c) => c.code === "ETREAT" || c.code === "BTG"))
  );
}

export function isDenied(entry) {
  return Number(entry.outcome) !== 0;
}

function dayKey(date) {
  const y = date.getFullYear();
  const m = String(date.getMonth() + 1).padStart(2, "0");
  const d = String(date.getDate()).padStart(2, "0");
  return `${y}-${m}-${d}`;
}

/** Per local day between since and until (Date), counts of each series. */
export function perDay(entries, since, until) {
  const days = new Map();
  const cursor = new Date(since.getFullYear(), since.getMonth(), since.getDate());
  for (let i = 0; cursor <= until && i < 400; i += 1) {
    days.set(dayKey(cursor), { day: new Date(cursor), allowed: 0, denied: 0, breakGlass: 0 });
    cursor.setDate(cursor.getDate() + 1);
  }
  for (const entry of entries) {
    const bucket = days.get(dayKey(new Date(entry.recorded)));
    if (!bucket) continue;
    if (isBreakGlass(entry)) bucket.breakGlass += 1;
    else if (isDenied(entry)) bucket.denied += 1;
    else bucket.allowed += 1;
  }
  return [...days.values()];
}

/** A step of 1, 2 or 5 x 10^k so that 4 steps cover value: whole numbers on the axis. */
function niceStep(value) {
  const rough = Math.max(1, Math.ceil(value / 4));
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  for (const factor of [1, 2, 5, 10]) {
    if (factor * magnitude >= rough) return factor * magnitude;
  }
  return 10 * magnitude;
}

function shortDay(date) {
  return new Intl.DateTimeFormat(lang() === "fr" ? "fr-FR" : "en-GB", {
    day: "numeric",
    month: "short",
  }).format(date);
}

export function accessChart(days) {
  // Narrower drawing on a phone, so its text stays readable once scaled to the screen.
  const WIDTH = window.innerWidth < 600 ? 360 : window.innerWidth < 1100 ? 640 : 920;
  const titleId = uid("chart-title");
  const descId = uid("chart-desc");
  const totals = days.map((d) => d.allowed + d.denied + d.breakGlass);
  const step = niceStep(Math.max(0, ...totals));
  const max = step * 4;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(days.length, 1);
  const bar = Math.max(2, Math.min(28, slot * 0.7));
  const y = (value) => PAD.top + plotH - (value / max) * plotH;
  const sum = (key) => days.reduce((n, d) => n + d[key], 0);

  const grid = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = step * i;
    grid.push(
      s("line", { class: "chart-grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }),
      s("text", { class: "chart-axis", x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, formatNumber(value)),
    );
  }
  const labelEvery = Math.ceil(days.length / (WIDTH < 600 ? 4 : 8));
  const bars = days.map((d, i) => {
    const x = PAD.left + i * slot + (slot - bar) / 2;
    let base = 0;
    const parts = [];
    for (const key of SERIES) {
      if (!d[key]) continue;
      parts.push(
        s("rect", {
          class: `chart-${key}`,
          x: x.toFixed(1),
          width: bar.toFixed(1),
          y: y(base + d[key]).toFixed(1),
          height: (y(base) - y(base + d[key])).toFixed(1),
        }),
      );
      base += d[key];
    }
    const label =
      i % labelEvery === 0
        ? s("text", { class: "chart-axis", x: (x + bar / 2).toFixed(1), y: HEIGHT - 8, "text-anchor": "middle" }, shortDay(d.day))
        : null;
    return s("g", null, parts, label);
  });
  const svg = s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": `${titleId} ${descId}`,
      preserveAspectRatio: "xMidYMid meet",
    },
    s("title", { id: titleId }, t("audit.chart.title")),
    s(
      "desc",
      { id: descId },
      t("audit.chart.desc", {
        days: days.length,
        allowed: sum("allowed"),
        denied: sum("denied"),
        breakGlass: sum("breakGlass"),
      }),
    ),
    grid,
    bars,
  );
  const legend = h(
    "ul",
    { class: "legend" },
    SERIES.map((key) =>
      h(
        "li",
        null,
        h("span", { class: `legend-swatch swatch-${key}`, "aria-hidden": "true" }),
        `${t(`audit.series.${key}`)} (${formatNumber(sum(key))})`,
      ),
    ),
  );
  const table = h(
    "details",
    { class: "chart-data" },
    h("summary", null, t("audit.chart.data")),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "table table-compact" },
        h("caption", { class: "sr-only" }, t("audit.chart.title")),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { scope: "col" }, t("audit.col.day")),
            SERIES.map((key) => h("th", { scope: "col" }, t(`audit.series.${key}`))),
          ),
        ),
        h(
          "tbody",
          null,
          days.map((d) =>
            h(
              "tr",
              null,
              h("th", { scope: "row" }, shortDay(d.day)),
              SERIES.map((key) => h("td", null, formatNumber(d[key]))),
            ),
          ),
        ),
      ),
    ),
  );
  return h("figure", { class: "chart-figure" }, svg, legend, table);
}
