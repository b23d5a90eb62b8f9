// The case list: the regulator's work queue, most recently changed first.

import { api } from "../api.js";
import { enumValues, label, ruleNames, ruleTitles, t } from "../i18n.js";
import {
  caseBadge, errorBox, h, input, link, pager, ruleCell, select, severityBadge, stationLink,
  table, time,
} from "../dom.js";

const PAGE = 50;

function filterForm(ctx, f) {
  const form = h("form", { class: "filters", role: "search", "aria-label": t("common.filters") },
    select("state", t("f.state"), enumValues("caseState").map((s) => [s, label("caseState", s)]), f.state),
    select("resolution", t("f.resolution"), enumValues("resolution").map((r) => [r, label("resolution", r)]), f.resolution),
    select("severity", t("f.severity"), enumValues("severity").map((s) => [s, label("severity", s)]), f.severity),
    select("rule", t("f.rule"), ruleNames().map((r) => [r, ruleTitles(r).main]), f.rule),
    select("city", t("f.city"), enumValues("city").map((c) => [c, label("city", c)]), f.city, { disabled: Boolean(ctx.who.city) }),
    input("station_id", t("f.stationId"), f.station_id, { size: 16 }),
    input("assignee", t("f.assignee"), f.assignee, { size: 16 }),
    h("div", { class: "field check" },
      h("input", { type: "checkbox", id: "f-mine", name: "mine", checked: f.assignee === ctx.who.label }),
      h("label", { for: "f-mine" }, t("cases.mine"))),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, t("common.filter")),
      h("button", { type: "button", onclick: () => ctx.go("cases", {}) }, t("common.reset"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    ctx.go("cases", {
      state: data.get("state"), resolution: data.get("resolution"), severity: data.get("severity"),
      rule: data.get("rule"), city: ctx.who.city ? null : data.get("city"),
      station_id: String(data.get("station_id") || "").trim(),
      assignee: data.get("mine") ? ctx.who.label : String(data.get("assignee") || "").trim(),
    });
  });
  return form;
}

export async function list(ctx) {
  const p = ctx.params;
  const f = Object.fromEntries(["state", "resolution", "severity", "rule", "city", "station_id", "assignee"]
    .map((k) => [k, p.get(k) || ""]));
  if (ctx.who.city) f.city = ctx.who.city;
  const offset = Number(p.get("offset") || 0);
  const head = [h("h1", { tabindex: "-1" }, t("cases.title")), h("p", { class: "intro" }, t("cases.intro")),
    filterForm(ctx, f)];
  let page;
  try {
    page = await api("/cases", { params: { ...f, limit: PAGE, offset } });
  } catch (error) {
    return h("div", {}, head, errorBox(error));
  }
  const moveTo = (o) => ctx.go("cases", { ...Object.fromEntries(p.entries()), offset: o || null });
  return h("div", {}, head, pager(page, moveTo), table({
    caption: t("case.list"),
    className: "cases",
    rows: page.items,
    rowAttrs: (c) => ({ "data-case-id": c.case_id }),
    columns: [
      { label: t("case.no"), cell: (c) => link(`#/cases/${c.case_id}`, `#${c.case_id}`) },
      { label: t("f.state"), cell: (c) => caseBadge(c.state) },
      { label: t("f.severity"), cell: (c) => severityBadge(c.severity) },
      { label: t("f.rule"), cell: (c) => ruleCell(c.rule) },
      { label: t("f.station"), cell: (c) => h("span", {}, stationLink(c.station_id),
        c.city ? h("span", { class: "other-lang" }, label("city", c.city)) : null) },
      { label: t("f.assignee"), cell: (c) => c.assignee || "–" },
      { label: t("f.resolution"), cell: (c) => (c.resolution ? label("resolution", c.resolution) : "–") },
      { label: t("f.updated"), cell: (c) => time(c.updated_at) },
      { label: t("f.summary"), cell: (c) => h("span", { class: "summary", lang: "en", title: c.summary }, c.summary) },
    ],
  }), page.total > PAGE ? pager(page, moveTo) : null);
}
