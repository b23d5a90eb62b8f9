// Building blocks: elements (text is always set as text, never parsed as HTML), tables with
// headers, pagination, badges, definition lists, error boxes.

import { ApiError, TIMEOUT_S, download } from "./api.js";
import { hasLabel, label, ruleTitles, t } from "./i18n.js";
import { dateTime } from "./format.js";

/** An element: h("a", {href: "#/x", class: "c", onclick: fn}, "text", child, …). */
export function h(tag, attrs = {}, ...children) {
  const svg = attrs && attrs.svg;
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "svg" || v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (!svg && (k === "value" || k === "checked" || k === "selected" || k === "disabled")) {
      el[k] = v;
      if (k !== "value") el.setAttribute(k, "");
    }
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}

/** What a finding is about: a tank, nozzle, dispatch… id, or a licence or device kind. */
export function subjectText(subject) {
  if (!subject) return "–";
  for (const kind of ["licenceKind", "deviceKind"]) {
    if (hasLabel(kind, subject)) return h("span", { title: subject }, label(kind, subject));
  }
  return subject;
}

export function stationLink(stationId) {
  if (!stationId) return "–";
  return link(`#/stations/${encodeURIComponent(stationId)}`, stationId);
}

export function time(iso, seconds = false) {
  if (!iso) return "–";
  return h("time", { datetime: iso }, dateTime(iso, seconds));
}

/** A table with a caption and column headers: columns [{label, cell(row), num}]. */
export function table({ caption, columns, rows, empty = null, rowAttrs = null, className = "" }) {
  if (!rows.length) return h("p", { class: "empty" }, empty || t("common.empty"));
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)));
  const body = rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {},
    columns.map((c, i) => h(i === 0 && c.header ? "th" : "td",
      { class: c.num ? "num" : null, scope: i === 0 && c.header ? "row" : null }, c.cell(row)))));
  return h("div", { class: "table-wrap" },
    h("table", { class: className || null },
      caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body)));
}

/** Key–value facts as a definition list: [[label, value], …] (null values skipped). */
export function facts(pairs, className = "facts") {
  return h("dl", { class: className },
    pairs.filter((p) => p && p[1] !== null && p[1] !== undefined).map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

export function severityBadge(severity) {
  return h("span", { class: `badge sev-${severity}` }, label("severity", severity));
}

export function caseBadge(state) {
  return h("span", { class: `badge case-${state}` }, label("caseState", state));
}

export function standingBadge(standing) {
  return h("span", { class: `badge standing-${standing}` }, label("standing", standing));
}

/** A rule's title in the reader's language, the other language beneath it. */
export function ruleCell(rule) {
  const { main, other } = ruleTitles(rule);
  return h("span", { class: "rule" }, h("span", {}, main),
    other ? h("span", { class: "other-lang", lang: other.match(/[\u4e00-\u9fff]/) ? "zh-CN" : "en" }, other) : null);
}

/** Previous / next page buttons and "1–50 of 123"; `go(offset)` moves. */
export function pager({ total, limit, offset }, go) {
  if (total <= limit && offset === 0) {
    return h("p", { class: "pager-info" }, t("common.page", { from: total ? 1 : 0, to: total, total }));
  }
  const from = total ? offset + 1 : 0;
  const to = Math.min(offset + limit, total);
  return h("nav", { class: "pager", "aria-label": t("common.pagination") },
    h("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, `‹ ${t("common.prev")}`),
    h("span", { class: "pager-info", "aria-live": "polite" }, t("common.page", { from, to, total })),
    h("button", { type: "button", disabled: offset + limit >= total, onclick: () => go(offset + limit) }, `${t("common.next")} ›`));
}

/** What went wrong, in words, with the API's own message and the request id. */
export function errorBox(error) {
  const status = error instanceof ApiError ? error.status : -1;
  let headline;
  if (status === 0 && error.code === "timeout") headline = t("err.timeout", { s: error.timeoutS || TIMEOUT_S });
  else if (status === 0) headline = t("err.network");
  else if ([401, 403, 404, 409, 422, 429, 503].includes(status)) headline = t(`err.${status}`);
  else headline = t("err.other", { status });
  return h("div", { class: "error", role: "alert" },
    h("p", { class: "error-head" }, h("strong", {}, headline)),
    status > 0 && error.message ? h("p", {}, `${t("err.server")}: `, h("span", { lang: "en" }, error.message)) : null,
    error.requestId ? h("p", { class: "muted" }, `${t("err.requestId")}: `, h("code", {}, error.requestId)) : null);
}

export function loading() {
  return h("p", { class: "loading", role: "status" }, t("common.loading"));
}

/** A labelled <select>: options [[value, text], …], "" = all. */
export function select(name, text, options, value, { all = true, disabled = false } = {}) {
  const id = `f-${name}`;
  return h("div", { class: "field" },
    h("label", { for: id }, text),
    h("select", { id, name, disabled },
      all ? h("option", { value: "" }, t("common.all")) : null,
      options.map(([v, txt]) => h("option", { value: v, selected: v === value }, txt))));
}

export function input(name, text, value, { id = `f-${name}`, hint = null, ...attrs } = {}) {
  return h("div", { class: "field" },
    h("label", { for: id }, text),
    h("input", { id, name, value: value || "", "aria-describedby": hint ? `${id}-hint` : null, ...attrs }),
    hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null);
}

/** A <section> with a heading. */
export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

/** A button that downloads what `path` answers (with the token), and says how it went. */
export function downloadButton(text, path, params, fallback) {
  const status = h("span", { class: "muted", role: "status" });
  const button = h("button", { type: "button", class: "download", onclick: async () => {
    button.disabled = true;
    status.replaceChildren();
    try {
      const name = await download(path, params, fallback);
      status.replaceChildren(t("common.downloaded", { name }));
    } catch (error) {
      status.replaceChildren(errorBox(error));
    } finally {
      button.disabled = false;
    }
  } }, text);
  return h("span", { class: "download-wrap" }, button, status);
}
