// A tank's daily reconciliation as an inline SVG, drawn here (no chart library): on top the
// book stock and the measured stock at 20 °C per day, below the variance (measured − book)
// as bars against the shaded tolerance band; days out of tolerance in red.

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { litres, num } from "./format.js";

const W = 760;
const LEFT = 78;
const RIGHT = 14;
const STOCK = { top: 30, bottom: 180 };
const VAR = { top: 222, bottom: 300 };
const HEIGHT = 330;

const s = (tag, attrs, ...children) => h(tag, { svg: true, ...attrs }, ...children);

/** A round step (1, 2, 2.5 or 5 × 10ⁿ) of at least `raw`. */
export function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw * (1 - 1e-9)) || raw;
}

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo, hi, count = 4) {
  if (!(hi > lo)) return [lo];
  const step = niceStep((hi - lo) / count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

function scale(lo, hi, top, bottom) {
  return (v) => bottom - ((v - lo) / (hi - lo || 1)) * (bottom - top);
}

function line(points, cls) {
  // Break the line where a day has no value.
  let d = "";
  let pen = false;
  for (const p of points) {
    if (p === null) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
    pen = true;
  }
  return d ? s("path", { d, class: cls, fill: "none" }) : null;
}

function signed(v) {
  return `${v > 0 ? "+" : ""}${litres(v)}`;
}

/** The chart of one tank's reconciliation answer (GET …/tanks/{tank}/reconciliation). */
export function tankChart(recon) {
  const days = recon.days || [];
  const n = Math.max(days.length, 1);
  const band = (W - LEFT - RIGHT) / n;
  const xc = (i) => LEFT + band * (i + 0.5);
  const stock = days.flatMap((d) => [d.book_20_l, d.closing_20_l]).filter((v) => v !== null && v !== undefined);
  const judged = days.filter((d) => d.variance_20_l !== null && d.variance_20_l !== undefined);
  const fails = days.filter((d) => d.result === "fail");
  const titleId = `chart-${recon.tank_id}-title`;
  const descId = `chart-${recon.tank_id}-desc`;
  const worst = judged.reduce((a, d) => (!a || Math.abs(d.variance_20_l) > Math.abs(a.variance_20_l) ? d : a), null);
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${HEIGHT}`, class: "tank-chart", role: "img",
    "aria-labelledby": `${titleId} ${descId}`, "data-tank": recon.tank_id,
  },
  s("title", { id: titleId }, t("chart.title", { tank: recon.tank_id })),
  s("desc", { id: descId }, t("chart.desc", {
    n: days.length, f: fails.length, v: worst ? signed(worst.variance_20_l) : "–", d: worst ? worst.date : "–",
  })));

  // Stock panel.
  let lo = Math.min(...stock);
  let hi = Math.max(...stock);
  if (!stock.length) {
    lo = 0;
    hi = 1;
  }
  const pad = Math.max((hi - lo) * 0.08, 50);
  const step = niceStep((hi - lo + 2 * pad) / 4);
  lo = Math.max(0, Math.floor((lo - pad) / step) * step);
  hi = Math.ceil((hi + pad) / step) * step;
  const ys = scale(lo, hi, STOCK.top, STOCK.bottom);
  const grid = s("g", { class: "grid" });
  for (const v of ticks(lo, hi, 4)) {
    grid.append(s("line", { x1: LEFT, x2: W - RIGHT, y1: ys(v), y2: ys(v) }),
      s("text", { x: LEFT - 6, y: ys(v) + 4, class: "tick", "text-anchor": "end" }, num(v, 0)));
  }
  svg.append(grid, s("text", { x: 4, y: STOCK.top - 16, class: "axis-label" }, t("chart.stock")));

  // Variance panel: symmetric around zero, at least as tall as the tolerance.
  const vtick = niceStep(Math.max(1, ...judged.map((d) => Math.abs(d.variance_20_l)),
    ...days.map((d) => d.tolerance_20_l || 0)));
  const vmax = vtick * 1.15;
  const yv = scale(-vmax, vmax, VAR.top, VAR.bottom);
  const vgrid = s("g", { class: "grid" });
  for (const v of [-vtick, 0, vtick]) {
    vgrid.append(s("line", { x1: LEFT, x2: W - RIGHT, y1: yv(v), y2: yv(v), class: v === 0 ? "zero" : null }),
      s("text", { x: LEFT - 6, y: yv(v) + 4, class: "tick", "text-anchor": "end" }, `${v > 0 ? "+" : ""}${num(v, 0)}`));
  }
  svg.append(vgrid, s("text", { x: 4, y: VAR.top - 16, class: "axis-label" }, t("chart.varianceAxis")));

  const bars = s("g", { class: "bars" });
  const markers = s("g", { class: "markers" });
  const labelEvery = Math.ceil(n / 10);
  days.forEach((d, i) => {
    const x = xc(i);
    if (d.tolerance_20_l) {
      bars.append(s("rect", {
        class: "tolerance", x: x - band / 2, width: band, y: yv(d.tolerance_20_l),
        height: yv(-d.tolerance_20_l) - yv(d.tolerance_20_l),
      }));
    }
    if (d.variance_20_l !== null && d.variance_20_l !== undefined) {
      const v = d.variance_20_l;
      const top = Math.min(yv(v), yv(0));
      const bar = s("rect", {
        class: `variance ${d.result === "fail" ? "fail" : "pass"}`, "data-date": d.date,
        x: x - Math.min(band * 0.3, 14), width: Math.min(band * 0.6, 28), y: top,
        height: Math.max(Math.abs(yv(v) - yv(0)), 1),
      });
      bar.append(s("title", {}, `${d.date}: ${t("chart.variance")} ${signed(v)} ` +
        `(${t("chart.tolerance")} ±${litres(d.tolerance_20_l)})${d.result === "fail" ? ` — ${t("chart.fail")}` : ""}`));
      bars.append(bar);
    }
    for (const [key, cls] of [["book_20_l", "book"], ["closing_20_l", "measured"]]) {
      if (d[key] === null || d[key] === undefined) continue;
      const dot = cls === "book"
        ? s("rect", { class: `dot ${cls}`, x: x - 3.5, y: ys(d[key]) - 3.5, width: 7, height: 7 })
        : s("circle", { class: `dot ${cls}`, cx: x, cy: ys(d[key]), r: 3.5 });
      dot.append(s("title", {}, `${d.date}: ${t(cls === "book" ? "chart.book" : "chart.measured")} ${litres(d[key], "L20")}`));
      markers.append(dot);
    }
    if (i % labelEvery === 0) {
      svg.append(s("text", { x, y: HEIGHT - 8, class: "tick", "text-anchor": "middle" }, d.date.slice(5)));
    }
  });
  svg.append(bars,
    line(days.map((d, i) => (d.book_20_l == null ? null : [xc(i), ys(d.book_20_l)])), "line book"),
    line(days.map((d, i) => (d.closing_20_l == null ? null : [xc(i), ys(d.closing_20_l)])), "line measured"),
    markers);
  return svg;
}

/** The legend under a chart (HTML, so it wraps and translates). */
export function chartLegend() {
  const item = (cls, text) => h("li", {}, h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), text);
  return h("ul", { class: "legend" },
    item("measured", t("chart.measured")), item("book", t("chart.book")),
    item("pass", t("chart.variance")), item("fail", `${t("chart.variance")}: ${t("chart.fail")}`),
    item("tolerance", t("chart.tolerance")));
}
