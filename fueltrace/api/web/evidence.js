// A finding's evidence as a table: each field's label, its value with the unit its name
// carries, and the field name itself (as the API and the CSV exports call it). Ids an
// inspector follows up (sales, batches, deliveries, stations) are links.

import { evidenceLabel, hasLabel, label, t } from "./i18n.js";
import { h, link, stationLink, time } from "./dom.js";
import { quantity, unitOf } from "./format.js";

// Which enumeration a string value of a field belongs to.
const ENUM_OF = {
  product: "product", dispatched_product: "product", received_product: "product",
  kind: "licenceKind", licence_kind: "licenceKind", problem: "problem",
  status: "licenceStatus", licence_status: "licenceStatus", device_kind: "deviceKind",
  reported_status: "deviceStatus", outcome: "outcome", reason: "deliveryReason", side: "side",
  result: "result", mismatches: "mismatch",
};
const SALE_IDS = new Set(["txn_id", "previous_txn_id", "first_txn_id", "last_txn_id"]);
const DELIVERY_IDS = new Set(["delivery_id", "nearest_delivery_id", "received_delivery_id",
  "first_delivery_id"]);
const STATION_IDS = new Set(["station_id", "destination_station_id", "received_station_id",
  "first_station_id"]);
const DATES = /(^|_)(day|date)$|^valid_(from|until)$/;

function scalar(key, value, ctx) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "–");
  if (typeof value === "boolean") return value ? t("common.yes") : t("common.no");
  if (typeof value === "number") {
    return h("span", { class: "num", title: String(value) }, quantity(value, unitOf(key), key));
  }
  const text = String(value);
  if (key.endsWith("_at")) return time(text, true);
  if (DATES.test(key)) return text;
  if (SALE_IDS.has(key) && ctx.stationId) {
    return link(`#/trace?station=${encodeURIComponent(ctx.stationId)}&txn=${encodeURIComponent(text)}`, text);
  }
  if (key === "batch_id") return link(`#/trace?batch=${encodeURIComponent(text)}`, text);
  if (DELIVERY_IDS.has(key)) return link(`#/trace?delivery=${encodeURIComponent(text)}`, text);
  if (STATION_IDS.has(key)) return stationLink(text);
  const kind = ENUM_OF[key];
  if (kind && hasLabel(kind, text)) return h("span", { title: text }, label(kind, text));
  return text;
}

function value(key, v, ctx) {
  if (Array.isArray(v)) {
    if (!v.length) return h("span", { class: "muted" }, t("common.none"));
    if (v.every((x) => x === null || typeof x !== "object")) {
      return h("span", {}, v.map((x, i) => [i ? ", " : "", scalar(key, x, ctx)]));
    }
    return h("ul", { class: "plain" }, v.map((x) => h("li", {}, value(key, x, ctx))));
  }
  if (v && typeof v === "object") return evidenceTable(v, ctx, true);
  return scalar(key, v, ctx);
}

/** The evidence object as a table (nested objects as nested tables). */
export function evidenceTable(evidence, ctx = {}, nested = false) {
  const rows = Object.entries(evidence || {}).map(([key, v]) => h("tr", { "data-field": key },
    h("th", { scope: "row" }, evidenceLabel(key)),
    h("td", {}, value(key, v, ctx)),
    nested ? null : h("td", {}, h("code", { class: "field-name" }, key))));
  return h("div", { class: "table-wrap" },
    h("table", { class: nested ? "evidence nested" : "evidence" },
      nested ? null : h("caption", {}, t("anomaly.evidence.caption")),
      nested ? null : h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, t("anomaly.item")), h("th", { scope: "col" }, t("anomaly.value")),
        h("th", { scope: "col" }, t("anomaly.field")))),
      h("tbody", {}, rows)));
}
