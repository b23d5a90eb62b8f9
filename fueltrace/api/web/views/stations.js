// Stations: the registry list, and one station — registry, licences (expiry highlighted),
// tanks, a chart per tank of book against measured stock, nozzles, recent findings.

import { api } from "../api.js";
import { enumValues, label, t } from "../i18n.js";
import {
  errorBox, facts, h, input, link, pager, section, select, severityBadge, table, time,
} from "../dom.js";
import { daysBetween, litres, num, quantity, todayBeijing } from "../format.js";
import { chartLegend, tankChart } from "../chart.js";
import { anomalyColumns } from "./anomalies.js";

const PAGE = 50;

export async function list(ctx) {
  const p = ctx.params;
  const city = ctx.who.city || p.get("city") || "";
  const offset = Number(p.get("offset") || 0);
  const form = h("form", { class: "filters", role: "search", "aria-label": t("common.filters") },
    select("city", t("f.city"), enumValues("city").map((c) => [c, label("city", c)]), city, { disabled: Boolean(ctx.who.city) }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("common.filter"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go("stations", { city: ctx.who.city ? null : new FormData(form).get("city") });
  });
  const open = h("form", { class: "filters", "aria-label": t("stations.go") },
    input("open-station", t("f.stationId"), "", { hint: t("f.station.hint"), required: true, size: 18 }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("stations.go"))));
  open.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = String(new FormData(open).get("open-station") || "").trim();
    if (id) location.hash = `#/stations/${encodeURIComponent(id)}`;
  });
  const head = [h("h1", { tabindex: "-1" }, t("stations.title")), h("p", { class: "intro" }, t("stations.intro")),
    h("div", { class: "toolbar" }, form, open)];
  let page;
  try {
    page = await api("/stations", { params: { city, limit: PAGE, offset } });
  } catch (error) {
    return h("div", {}, head, errorBox(error));
  }
  const moveTo = (o) => ctx.go("stations", { city: ctx.who.city ? null : city, offset: o || null });
  return h("div", {}, head, pager(page, moveTo), table({
    caption: t("stations.title"),
    rows: page.items,
    rowAttrs: (s) => ({ "data-station-id": s.station_id }),
    columns: [
      { label: t("f.stationId"), cell: (s) => link(`#/stations/${encodeURIComponent(s.station_id)}`, s.station_id) },
      { label: t("f.name"), cell: (s) => s.name },
      { label: t("f.city"), cell: (s) => label("city", s.city) },
      { label: t("f.operator"), cell: (s) => s.operator },
      { label: t("f.activeAnomalies"), num: true, cell: (s) => (s.active_anomalies
        ? link(`#/anomalies?station_id=${encodeURIComponent(s.station_id)}`, String(s.active_anomalies)) : "0") },
      { label: t("f.updatedAt"), cell: (s) => time(s.updated_at) },
    ],
  }), page.total > PAGE ? pager(page, moveTo) : null);
}

function licenceTable(licences) {
  const today = todayBeijing();
  const remark = (l) => {
    if (l.standing === "expiring") return t("station.licence.daysLeft", { n: daysBetween(today, l.valid_until) });
    if (l.standing === "expired") return t("station.licence.daysAgo", { n: daysBetween(l.valid_until, today) });
    return "";
  };
  return table({
    caption: null,
    className: "licences",
    empty: t("station.licence.none"),
    rows: licences,
    rowAttrs: (l) => ({ class: `standing-row-${l.standing}`, "data-standing": l.standing }),
    columns: [
      { label: t("station.licence.kind"), header: true, cell: (l) => label("licenceKind", l.kind) },
      { label: t("station.licence.number"), cell: (l) => l.number },
      { label: t("station.licence.from"), cell: (l) => l.valid_from },
      { label: t("station.licence.until"), cell: (l) => h("span", {}, l.valid_until,
        remark(l) ? h("span", { class: "other-lang" }, remark(l)) : null) },
      { label: t("station.licence.status"), cell: (l) => label("licenceStatus", l.status) },
      { label: t("station.licence.standing"), cell: (l) => h("span", { class: `badge standing-${l.standing}` }, label("standing", l.standing)) },
    ],
  });
}

function fillBar(pct) {
  if (pct === null || pct === undefined) return "–";
  const clamped = Math.max(0, Math.min(100, pct));
  return h("span", { class: "fill" },
    h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: `width:${clamped}%` })),
    `${num(pct, 1)} %`);
}

/** A link to a heading of this page (the hash is the router's, so scroll instead). */
function jump(id, text) {
  return h("a", { href: `#${id}`, onclick: (event) => {
    event.preventDefault();
    const target = document.getElementById(id);
    target?.scrollIntoView();
    target?.focus();
  } }, text);
}

function tankTable(tanks) {
  return table({
    caption: null,
    rows: tanks,
    rowAttrs: (k) => ({ "data-tank-id": k.tank_id }),
    columns: [
      { label: t("station.tank"), header: true, cell: (k) => jump(`tank-${k.tank_id}`, k.tank_id) },
      { label: t("station.product"), cell: (k) => label("product", k.product) },
      { label: t("station.capacity"), num: true, cell: (k) => litres(k.capacity_l) },
      { label: t("station.lastRead"), cell: (k) => time(k.last_read_at) },
      { label: t("station.volume"), num: true, cell: (k) => litres(k.last_volume_l) },
      { label: t("station.volume20"), num: true, cell: (k) => litres(k.last_volume_20_l) },
      { label: t("station.temperature"), num: true, cell: (k) => quantity(k.last_temperature_c, "°C") },
      { label: t("station.water"), num: true, cell: (k) => quantity(k.last_water_mm, "mm") },
      { label: t("station.fill"), cell: (k) => fillBar(k.fill_pct) },
    ],
  });
}

function reconTable(recon) {
  const L = (v) => litres(v);
  return table({
    caption: null,
    className: "recon",
    rows: recon.days,
    rowAttrs: (d) => ({ class: d.result === "fail" ? "fail-row" : null }),
    columns: [
      { label: t("recon.date"), header: true, cell: (d) => d.date },
      { label: t("recon.opening"), num: true, cell: (d) => L(d.opening_20_l) },
      { label: t("recon.deliveries"), num: true, cell: (d) => L(d.deliveries_20_l) },
      { label: t("recon.sales"), num: true, cell: (d) => L(d.sales_20_l) },
      { label: t("recon.book"), num: true, cell: (d) => L(d.book_20_l) },
      { label: t("recon.measured"), num: true, cell: (d) => L(d.closing_20_l) },
      { label: t("recon.variance"), num: true, cell: (d) => L(d.variance_20_l) },
      { label: t("recon.tolerance"), num: true, cell: (d) => (d.tolerance_20_l ? `±${L(d.tolerance_20_l)}` : "–") },
      { label: t("recon.result"), cell: (d) => h("span", { class: `result-${d.result}` }, label("result", d.result)) },
    ],
  });
}

function tankSection(tank, recon) {
  const heading = h("h3", { id: `tank-${tank.tank_id}`, tabindex: "-1" }, `${t("station.tank")} ${tank.tank_id} · ${label("product", tank.product)}`);
  if (recon instanceof Error) return h("div", { class: "tank-recon" }, heading, errorBox(recon));
  const judged = recon.days.filter((d) => d.result !== "inconclusive");
  const fails = recon.days.filter((d) => d.result === "fail");
  if (!recon.days.some((d) => d.closing_20_l !== null || d.opening_20_l !== null)) {
    return h("div", { class: "tank-recon" }, heading, h("p", { class: "muted" }, t("station.recon.none")));
  }
  return h("div", { class: "tank-recon", "data-tank-id": tank.tank_id },
    heading,
    h("p", { class: fails.length ? "fails" : "muted" }, t("station.recon.fails", { n: judged.length, f: fails.length })),
    h("figure", {}, tankChart(recon), h("figcaption", {}, chartLegend())),
    h("details", {}, h("summary", {}, t("common.dataTable")), reconTable(recon)));
}

function rangeForm(ctx, from, to) {
  const form = h("form", { class: "filters compact", "aria-label": t("station.recon.range") },
    input("from", t("station.recon.from"), from, { type: "date" }),
    input("to", t("station.recon.to"), to, { type: "date" }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("common.show"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    ctx.go(`stations/${encodeURIComponent(ctx.id)}`, { from: data.get("from"), to: data.get("to") });
  });
  return form;
}

export async function detail(ctx) {
  const from = ctx.params.get("from") || "";
  const to = ctx.params.get("to") || "";
  const s = await api(`/stations/${encodeURIComponent(ctx.id)}`);
  const recons = await Promise.all(s.tanks.map((k) => api(
    `/stations/${encodeURIComponent(s.station_id)}/tanks/${encodeURIComponent(k.tank_id)}/reconciliation`,
    { params: { from, to } }).catch((error) => error)));
  const counts = s.active_anomalies || {};
  const bad = s.licences.filter((l) => ["expired", "revoked", "suspended", "not_yet_valid"].includes(l.standing));
  return h("article", { class: "station", "data-station-id": s.station_id },
    h("p", { class: "crumbs" }, link("#/stations", t("nav.stations")), " › ", s.station_id),
    h("h1", { tabindex: "-1" }, s.name),
    h("p", { class: "badges" },
      ["critical", "high", "medium", "low"].filter((k) => counts[k]).map((k) => [severityBadge(k), ` ${counts[k]} `]),
      bad.length ? h("span", { class: "badge standing-expired" }, `${t("station.licences")}: ${bad.length}`) : null),
    section(t("station.registry"), facts([
      [t("f.stationId"), h("code", {}, s.station_id)],
      [t("f.name"), s.name],
      [t("f.city"), label("city", s.city)],
      [t("f.operator"), s.operator],
      [t("f.updatedAt"), time(s.updated_at)],
      [t("f.activeAnomalies"), link(`#/anomalies?station_id=${encodeURIComponent(s.station_id)}`,
        String(Object.values(counts).reduce((a, b) => a + b, 0)))],
      [t("f.openCases"), link(`#/cases?station_id=${encodeURIComponent(s.station_id)}`, String(s.open_cases))],
    ])),
    section(t("station.licences"), licenceTable(s.licences)),
    section(t("station.tanks"), tankTable(s.tanks)),
    section(t("station.recon"), h("p", { class: "intro" }, t("station.recon.intro")),
      rangeForm(ctx, from || (recons.find((r) => !(r instanceof Error))?.from ?? ""),
        to || (recons.find((r) => !(r instanceof Error))?.to ?? "")),
      h("div", { class: "tank-grid" }, s.tanks.map((k, i) => tankSection(k, recons[i])))),
    section(t("station.recent"), table({
      caption: null, className: "anomalies", columns: anomalyColumns({ station: false, withCase: false }),
      rows: s.recent_anomalies, rowAttrs: (a) => ({ "data-anomaly-id": a.anomaly_id }),
    })),
    section(t("station.nozzles"), h("details", {}, h("summary", {}, `${t("station.nozzles")} (${s.nozzles.length})`),
      table({
        caption: null, rows: s.nozzles,
        columns: [
          { label: t("station.nozzle"), header: true, cell: (z) => z.nozzle_id },
          { label: t("station.dispenser"), cell: (z) => z.dispenser_id },
          { label: t("station.tank"), cell: (z) => z.tank_id },
        ],
      }))));
}
