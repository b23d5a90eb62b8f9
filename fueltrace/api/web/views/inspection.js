// The annual inspection list: the stations that fail, each with its reasons; CSV download.

import { REPORT_TIMEOUT_S, api } from "../api.js";
import { enumValues, label, t } from "../i18n.js";
import { downloadButton, errorBox, h, link, pager, select, stationLink, table } from "../dom.js";
import { todayBeijing } from "../format.js";

const PAGE = 50;
const FIRST_YEAR = 2020;

function reasonItem(r) {
  const ids = Array.isArray(r.anomaly_ids) ? r.anomaly_ids : [];
  return h("li", { "data-reason": r.code },
    h("strong", {}, label("reason", r.code)), ": ", h("span", { lang: "en" }, r.text),
    ids.length ? h("span", { class: "ids" }, " (", ids.map((id, i) => [i ? ", " : "",
      link(`#/anomalies/${encodeURIComponent(id)}`, id)]), ")") : null);
}

export async function view(ctx) {
  const thisYear = Number(todayBeijing().slice(0, 4));
  const year = Number(ctx.id || thisYear);
  const city = ctx.who.city || ctx.params.get("city") || "";
  const offset = Number(ctx.params.get("offset") || 0);
  const years = [];
  for (let y = thisYear; y >= FIRST_YEAR; y -= 1) years.push([String(y), String(y)]);
  const form = h("form", { class: "filters", role: "search", "aria-label": t("common.filters") },
    select("year", t("f.year"), years, String(year), { all: false }),
    select("city", t("f.city"), enumValues("city").map((c) => [c, label("city", c)]), city, { disabled: Boolean(ctx.who.city) }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("common.show"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    ctx.go(`inspection/${data.get("year")}`, { city: ctx.who.city ? null : data.get("city") });
  });
  const head = [h("h1", { tabindex: "-1" }, `${t("inspection.title")} ${year}`),
    h("p", { class: "intro" }, t("inspection.intro")), form];
  let r;
  try {
    r = await api(`/inspections/${year}`, {
      params: { city, limit: PAGE, offset }, timeoutS: REPORT_TIMEOUT_S,
    });
  } catch (error) {
    return h("div", {}, head, errorBox(error));
  }
  const moveTo = (o) => ctx.go(`inspection/${year}`, { city: ctx.who.city ? null : city, offset: o || null });
  return h("div", { class: "inspection" }, head,
    h("p", { class: "summary-line" }, t("inspection.summary", { asOf: r.as_of, n: r.stations_inspected, f: r.stations_failing })),
    h("p", { class: "toolbar no-print" },
      downloadButton(t("common.csv"), `/inspections/${year}`, { city, format: "csv" }, `inspection-${year}.csv`),
      h("button", { type: "button", onclick: () => window.print() }, t("common.print"))),
    pager({ total: r.total, limit: r.limit, offset: r.offset }, moveTo),
    table({
      caption: t("inspection.caption"), className: "inspection-list", rows: r.stations,
      rowAttrs: (s) => ({ "data-station-id": s.station_id }),
      columns: [
        { label: t("f.stationId"), header: true, cell: (s) => stationLink(s.station_id) },
        { label: t("f.name"), cell: (s) => s.name },
        { label: t("f.city"), cell: (s) => label("city", s.city) },
        { label: t("f.operator"), cell: (s) => s.operator },
        { label: t("inspection.reasons"), cell: (s) => h("ul", { class: "reasons" }, s.reasons.map(reasonItem)) },
      ],
    }),
    r.total > PAGE ? pager({ total: r.total, limit: r.limit, offset: r.offset }, moveTo) : null);
}
