// The anomaly list with its filters, and one finding: evidence, history, its case.

import { api } from "../api.js";
import { enumValues, label, ruleNames, ruleTitles, t } from "../i18n.js";
import {
  caseBadge, errorBox, facts, h, input, link, pager, ruleCell, section, select,
  severityBadge, stationLink, subjectText, table, time,
} from "../dom.js";
import { beijingMidnight } from "../format.js";
import { evidenceTable } from "../evidence.js";
import { casePanel } from "./case.js";

const PAGE = 50;

function cityOptions() {
  return enumValues("city").map((c) => [c, label("city", c)]);
}

/** The filter form; submitting moves to the filtered route. */
function filterForm(ctx, f) {
  const form = h("form", { class: "filters", role: "search", "aria-label": t("common.filters") },
    select("city", t("f.city"), cityOptions(), f.city, { disabled: Boolean(ctx.who.city) }),
    select("rule", t("f.rule"), ruleNames().map((r) => [r, ruleTitles(r).main]), f.rule),
    select("severity", t("f.severity"), enumValues("severity").map((s) => [s, label("severity", s)]), f.severity),
    input("station_id", t("f.stationId"), f.station_id, { hint: t("f.station.hint"), size: 16 }),
    input("since", t("f.since"), f.since, { type: "date" }),
    input("until", t("f.until"), f.until, { type: "date" }),
    h("div", { class: "field check" },
      h("input", { type: "checkbox", id: "f-include_resolved", name: "include_resolved", checked: f.include_resolved }),
      h("label", { for: "f-include_resolved" }, t("f.includeResolved"))),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, t("common.filter")),
      h("button", { type: "button", onclick: () => ctx.go("anomalies", {}) }, t("common.reset"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    ctx.go("anomalies", {
      city: ctx.who.city ? null : data.get("city"), rule: data.get("rule"),
      severity: data.get("severity"), station_id: String(data.get("station_id") || "").trim(),
      since: data.get("since"), until: data.get("until"),
      include_resolved: data.get("include_resolved") ? "true" : null,
    });
  });
  return form;
}

export function anomalyColumns({ station = true, withCase = true } = {}) {
  return [
    { label: t("f.severity"), cell: (a) => severityBadge(a.severity) },
    { label: t("f.rule"), cell: (a) => link(`#/anomalies/${encodeURIComponent(a.anomaly_id)}`, ruleCell(a.rule)) },
    station ? { label: t("f.station"), cell: (a) => h("span", {}, stationLink(a.station_id),
      a.city ? h("span", { class: "other-lang" }, label("city", a.city)) : null) } : null,
    { label: t("f.subject"), cell: (a) => subjectText(a.subject) },
    { label: t("f.window"), cell: (a) => h("span", { class: "window" }, time(a.window_start), " – ", time(a.window_end)) },
    { label: t("f.summary"), cell: (a) => h("span", { class: "summary", lang: "en", title: a.summary }, a.summary) },
    { label: t("f.state"), cell: (a) => h("span", { class: `state-${a.state}` }, label("anomalyState", a.state)) },
    withCase ? { label: t("f.case"), cell: (a) => (a.case ? h("span", {}, caseBadge(a.case.state),
      a.case.assignee ? h("span", { class: "other-lang" }, a.case.assignee) : null) : "–") } : null,
  ].filter(Boolean);
}

export async function list(ctx) {
  const p = ctx.params;
  const f = {
    city: ctx.who.city || p.get("city") || "", rule: p.get("rule") || "",
    severity: p.get("severity") || "", station_id: p.get("station_id") || "",
    since: p.get("since") || "", until: p.get("until") || "",
    include_resolved: p.get("include_resolved") === "true",
  };
  const offset = Number(p.get("offset") || 0);
  const head = [h("h1", { tabindex: "-1" }, t("anomalies.title")), h("p", { class: "intro" }, t("anomalies.intro")),
    h("p", { class: "muted" }, t("app.times")), filterForm(ctx, f)];
  let page;
  try {
    page = await api("/anomalies", {
      params: {
        city: f.city, rule: f.rule, severity: f.severity, station_id: f.station_id,
        since: f.since ? beijingMidnight(f.since) : null,
        until: f.until ? beijingMidnight(f.until, 1) : null,
        include_resolved: f.include_resolved ? "true" : null, limit: PAGE, offset,
      },
    });
  } catch (error) {
    return h("div", {}, head, errorBox(error));
  }
  const moveTo = (o) => ctx.go("anomalies", { ...Object.fromEntries(p.entries()), offset: o || null });
  return h("div", {}, head,
    h("div", { id: "anomaly-results" },
      pager(page, moveTo),
      table({
        caption: t("anomalies.caption"), columns: anomalyColumns(), rows: page.items,
        rowAttrs: (a) => ({ "data-anomaly-id": a.anomaly_id, class: `sev-row-${a.severity}` }),
        className: "anomalies",
      }),
      page.total > PAGE ? pager(page, moveTo) : null));
}

function historyTable(history) {
  return table({
    caption: null,
    columns: [
      { label: t("anomaly.at"), cell: (e) => time(e.at, true) },
      { label: t("anomaly.change"), cell: (e) => label("change", e.change) },
      { label: t("f.severity"), cell: (e) => severityBadge(e.severity) },
      { label: t("f.summary"), cell: (e) => h("span", { lang: "en" }, e.summary) },
    ],
    rows: history,
  });
}

function casesTable(all, currentId) {
  return table({
    caption: null,
    columns: [
      { label: t("case.no"), cell: (c) => (c.case_id === currentId ? h("strong", {}, `#${c.case_id}`)
        : link(`#/cases/${c.case_id}`, `#${c.case_id}`)) },
      { label: t("f.state"), cell: (c) => caseBadge(c.state) },
      { label: t("f.resolution"), cell: (c) => (c.resolution ? label("resolution", c.resolution) : "–") },
      { label: t("case.openedAt"), cell: (c) => time(c.opened_at) },
      { label: t("case.closedAt"), cell: (c) => time(c.closed_at) },
    ],
    rows: all,
  });
}

/** One finding; with `loaded`, that case of it (else its current case). */
async function render(ctx, anomalyId, loaded = null) {
  const a = await api(`/anomalies/${encodeURIComponent(anomalyId)}`);
  const wanted = loaded ? loaded.case_id : (a.case ? a.case.case_id : null);
  const theCase = loaded || (wanted ? await api(`/cases/${wanted}`) : null);
  const titles = ruleTitles(a.rule);
  const caseSlot = h("div", { id: "case-slot" });
  const showCase = (data, done = null) => {
    caseSlot.replaceChildren(casePanel(data, ctx, showCase, done));
    if (done) caseSlot.querySelector(".done")?.focus();
  };
  if (theCase) showCase(theCase);
  else caseSlot.replaceChildren(section(t("case.title"), h("p", {}, t("anomaly.noCase"))));
  return h("article", { class: "anomaly", "data-anomaly-id": a.anomaly_id },
    h("p", { class: "crumbs" }, link("#/anomalies", t("nav.anomalies")), " › ", a.anomaly_id),
    h("h1", { tabindex: "-1" }, titles.main),
    titles.other ? h("p", { class: "other-lang title-other" }, titles.other) : null,
    h("p", { class: "badges" }, severityBadge(a.severity), " ",
      h("span", { class: `badge state-${a.state}` }, label("anomalyState", a.state))),
    facts([
      [t("f.anomalyId"), h("code", {}, a.anomaly_id)],
      [t("f.station"), a.station_id ? stationLink(a.station_id) : null],
      [t("f.city"), a.city ? label("city", a.city) : null],
      [t("f.depot"), a.depot_id],
      [t("f.subject"), a.subject ? subjectText(a.subject) : null],
      [t("f.windowStart"), time(a.window_start, true)],
      [t("f.windowEnd"), time(a.window_end, true)],
      [t("f.firstSeen"), time(a.first_seen_at, true)],
      [t("f.updated"), time(a.updated_at, true)],
      [t("f.resolvedAt"), a.resolved_at ? time(a.resolved_at, true) : null],
    ]),
    section(t("f.summary"), h("p", { class: "summary-full", lang: "en" }, a.summary),
      h("p", { class: "muted" }, t("app.times"))),
    section(t("anomaly.evidence"), evidenceTable(a.evidence, { stationId: a.station_id })),
    caseSlot,
    a.cases && a.cases.length > 1 ? section(t("anomaly.otherCases"), casesTable(a.cases, wanted)) : null,
    section(t("anomaly.history"), historyTable(a.history || [])),
    a.station_id ? h("p", {}, link(`#/stations/${encodeURIComponent(a.station_id)}`, `${t("anomaly.toStation")} ›`)) : null);
}

export async function detail(ctx) {
  return render(ctx, ctx.id);
}

export async function caseDetail(ctx) {
  const found = await api(`/cases/${encodeURIComponent(ctx.id)}`);
  return render(ctx, found.anomaly_id, found);
}
