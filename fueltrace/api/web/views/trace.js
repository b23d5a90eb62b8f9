// Traceability: a sale back to its depot batches, a batch forward to every tank, a
// delivery's checks; and the recall report of a batch, with its CSV downloads.

import { REPORT_TIMEOUT_S, api } from "../api.js";
import { label, t } from "../i18n.js";
import {
  downloadButton, errorBox, facts, h, input, link, section, stationLink, table, time,
} from "../dom.js";
import { litres, num, pct, quantity } from "../format.js";

const SALES_SHOWN = 200;

function batchLink(batchId) {
  if (!batchId) return "–";
  if (batchId.startsWith("OPENING:")) return h("span", { title: batchId }, t("trace.opening"));
  if (batchId.startsWith("UNTRACED:")) {
    const delivery = batchId.slice("UNTRACED:".length);
    return h("span", {}, t("trace.untraced"), " ", link(`#/trace?delivery=${encodeURIComponent(delivery)}`, delivery));
  }
  return link(`#/trace?batch=${encodeURIComponent(batchId)}`, batchId);
}

function shareBar(share) {
  const value = Math.round(share * 1000) / 10;
  return h("span", { class: "fill" },
    h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: `width:${Math.min(100, value)}%` })),
    `${num(value, 1)} %`);
}

function forms(ctx) {
  const p = ctx.params;
  const saleForm = h("form", { class: "filters", "aria-labelledby": "trace-sale-title" },
    h("h2", { id: "trace-sale-title" }, t("trace.sale")),
    input("station", t("f.stationId"), p.get("station"), { required: true, size: 16, id: "t-station" }),
    input("txn", t("trace.txn"), p.get("txn"), { required: true, size: 18, id: "t-txn" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("common.show"))));
  saleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(saleForm);
    ctx.go("trace", { station: String(data.get("station")).trim(), txn: String(data.get("txn")).trim() });
  });
  const batchForm = h("form", { class: "filters", "aria-labelledby": "trace-batch-title" },
    h("h2", { id: "trace-batch-title" }, t("trace.batch")),
    input("batch", t("trace.batchId"), p.get("batch"), { required: true, size: 24, id: "t-batch" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("common.show"))));
  batchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go("trace", { batch: String(new FormData(batchForm).get("batch")).trim() });
  });
  const deliveryForm = h("form", { class: "filters", "aria-labelledby": "trace-delivery-title" },
    h("h2", { id: "trace-delivery-title" }, t("trace.delivery")),
    input("delivery", t("trace.deliveryId"), p.get("delivery"), { required: true, size: 24, id: "t-delivery" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("common.show"))));
  deliveryForm.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go("trace", { delivery: String(new FormData(deliveryForm).get("delivery")).trim() });
  });
  return h("div", { class: "trace-forms" }, saleForm, batchForm, deliveryForm);
}

function saleResult(s) {
  return section(t("trace.saleResult", { txn: s.txn_id }),
    facts([
      [t("f.station"), stationLink(s.station_id)],
      [t("station.nozzle"), s.nozzle_id],
      [t("station.tank"), s.tank_id],
      [t("station.product"), label("product", s.product)],
      [t("trace.started"), time(s.started_at, true)],
      [t("trace.ended"), time(s.ended_at, true)],
      [t("trace.observed"), litres(s.observed_volume_l)],
      [t("trace.litres"), litres(s.volume_20_l)],
      [t("station.temperature"), quantity(s.temperature_c, "°C")],
      [t("trace.density"), quantity(s.density_kg_m3, "kg/m³")],
    ]),
    s.batches.length ? table({
      caption: null, className: "sale-batches", rows: s.batches,
      rowAttrs: (b) => ({ "data-batch-id": b.batch_id }),
      columns: [
        { label: t("trace.batchId"), header: true, cell: (b) => batchLink(b.batch_id) },
        { label: t("f.depot"), cell: (b) => b.depot_id || "–" },
        { label: t("trace.dispatch"), cell: (b) => b.dispatch_id || "–" },
        { label: t("trace.dispatchedAt"), cell: (b) => time(b.dispatched_at) },
        { label: t("trace.litres"), num: true, cell: (b) => litres(b.litres_20) },
        { label: t("trace.share"), cell: (b) => shareBar(b.share) },
        { label: t("trace.density"), num: true, cell: (b) => quantity(b.density_kg_m3, "kg/m³") },
      ],
    }) : h("p", { class: "muted" }, t("trace.noLineage"), s.note ? [": ", h("span", { lang: "en" }, s.note)] : null));
}

function totals(x) {
  return facts([
    [t("trace.dispatched"), litres(x.dispatched_l)],
    [t("trace.inTransit"), litres(x.in_transit_l)],
    [t("trace.transitLoss"), litres(x.transit_loss_l)],
    [t("trace.received"), litres(x.received_l)],
    [t("trace.sold"), litres(x.sold_l)],
    [t("trace.inTanks"), litres(x.in_tanks_l)],
    [t("trace.losses"), litres(x.losses_l)],
    [t("trace.firstSale"), time(x.first_sale_at)],
    [t("trace.lastSale"), time(x.last_sale_at)],
  ], "facts totals");
}

function dispatchTable(dispatches) {
  return table({
    caption: null, className: "dispatches", rows: dispatches,
    rowAttrs: (d) => ({ "data-dispatch-id": d.dispatch_id, class: ["matched", "in_transit"].includes(d.status) ? null : "warn-row" }),
    columns: [
      { label: t("trace.dispatch"), header: true, cell: (d) => h("span", { class: "nowrap" }, d.dispatch_id) },
      { label: t("f.depot"), cell: (d) => h("span", { class: "nowrap" }, d.depot_id) },
      { label: t("f.station"), cell: (d) => stationLink(d.station_id) },
      { label: t("trace.vehicle"), cell: (d) => h("span", { class: "nowrap" }, d.vehicle_plate) },
      { label: t("trace.dispatchedAt"), cell: (d) => time(d.dispatched_at) },
      { label: t("trace.obsShort"), num: true, cell: (d) => litres(d.observed_volume_l) },
      { label: t("trace.l20Short"), num: true, cell: (d) => litres(d.volume_20_l) },
      { label: t("trace.densityShort"), num: true, cell: (d) => quantity(d.density_kg_m3, "kg/m³") },
      { label: t("trace.delivery"), cell: (d) => (d.delivery_id
        ? h("span", { class: "nowrap" }, link(`#/trace?delivery=${encodeURIComponent(d.delivery_id)}`, d.delivery_id)) : "–") },
      { label: t("trace.status"), cell: (d) => label("dispatchStatus", d.status) },
      { label: t("trace.mismatches"), cell: (d) => (d.mismatches && d.mismatches.length
        ? d.mismatches.map((m) => label("mismatch", m)).join(", ") : "–") },
    ],
  });
}

function tankColumns() {
  return [
    { label: t("f.station"), header: true, cell: (k) => h("span", {}, stationLink(k.station_id),
      h("span", { class: "other-lang" }, [k.station_name, k.city ? label("city", k.city) : null].filter(Boolean).join(" · "))) },
    { label: t("station.tank"), cell: (k) => k.tank_id },
    { label: t("trace.receivedAt"), cell: (k) => time(k.received_at) },
    { label: t("trace.received"), num: true, cell: (k) => litres(k.received_l) },
    { label: t("trace.sold"), num: true, cell: (k) => litres(k.sold_l) },
    { label: t("trace.inTanks"), num: true, cell: (k) => litres(k.in_tank_l) },
    { label: t("trace.losses"), num: true, cell: (k) => litres(k.losses_l) },
    { label: t("trace.salesCount"), num: true, cell: (k) => num(k.sales, 0) },
    { label: t("trace.firstSale"), cell: (k) => time(k.first_sale_at) },
    { label: t("trace.lastSale"), cell: (k) => time(k.last_sale_at) },
  ];
}

function batchResult(b) {
  return section(t("trace.batchResult", { batch: b.batch_id }),
    h("p", {}, link(`#/recall/${encodeURIComponent(b.batch_id)}`, `${t("trace.toRecall")} ›`)),
    h("h3", {}, t("trace.totals")), totals(b.totals),
    h("h3", {}, t("trace.dispatches")), dispatchTable(b.dispatches),
    h("h3", {}, t("trace.tanks")),
    table({ caption: null, className: "batch-tanks", rows: b.tanks, columns: tankColumns(),
      rowAttrs: (k) => ({ "data-station-id": k.station_id, "data-tank-id": k.tank_id }) }));
}

function deliveryResult(d) {
  return section(t("trace.deliveryResult", { id: d.delivery_id }), facts([
    [t("f.station"), stationLink(d.station_id)],
    [t("station.tank"), d.tank_id],
    [t("station.product"), label("product", d.product)],
    [t("trace.dispatch"), d.dispatch_id || "–"],
    [t("trace.batchId"), batchLink(d.batch_id)],
    [t("trace.vehicle"), d.vehicle_plate],
    [t("trace.started"), time(d.started_at, true)],
    [t("trace.ended"), time(d.ended_at, true)],
    [t("trace.observed"), litres(d.observed_volume_l)],
    [t("trace.litres"), litres(d.volume_20_l)],
    [t("trace.density"), quantity(d.density_kg_m3, "kg/m³")],
    [t("trace.status"), d.status ? label("dispatchStatus", d.status) : "–"],
    [t("trace.mismatches"), d.mismatches && d.mismatches.length ? d.mismatches.map((m) => label("mismatch", m)).join(", ") : "–"],
    [t("trace.dispatched"), litres(d.dispatched_20_l)],
    [t("trace.difference"), d.difference_20_l === null ? "–" : `${litres(d.difference_20_l)} (${pct(d.difference_pct, 2)})`],
    [t("trace.gauge"), d.gauge_status ? label("gaugeStatus", d.gauge_status) : "–"],
    [t("trace.gaugeRise"), litres(d.gauge_rise_20_l)],
    [t("trace.gaugeDiff"), litres(d.gauge_difference_20_l)],
  ]));
}

export async function view(ctx) {
  const p = ctx.params;
  const head = [h("h1", { tabindex: "-1" }, t("trace.title")), h("p", { class: "intro" }, t("trace.intro")),
    h("p", { class: "muted" }, t("app.times")), forms(ctx)];
  let result = null;
  try {
    if (p.get("station") && p.get("txn")) {
      result = saleResult(await api(`/trace/sales/${encodeURIComponent(p.get("station"))}/${encodeURIComponent(p.get("txn"))}`));
    } else if (p.get("batch")) {
      result = batchResult(await api(`/trace/batches/${encodeURIComponent(p.get("batch"))}`));
    } else if (p.get("delivery")) {
      result = deliveryResult(await api(`/trace/deliveries/${encodeURIComponent(p.get("delivery"))}`));
    }
  } catch (error) {
    result = errorBox(error);
  }
  return h("div", {}, head, h("div", { id: "trace-result" }, result));
}

export async function recall(ctx) {
  const batchId = ctx.id || "";
  const form = h("form", { class: "filters", role: "search", "aria-label": t("recall.title") },
    input("batch", t("trace.batchId"), batchId, { required: true, size: 26, id: "r-batch" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("common.show"))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = String(new FormData(form).get("batch")).trim();
    if (value) location.hash = `#/recall/${encodeURIComponent(value)}`;
  });
  const head = [h("h1", { tabindex: "-1" }, batchId ? `${t("recall.title")}: ${batchId}` : t("recall.title")),
    h("p", { class: "intro" }, t("recall.intro")), h("p", { class: "muted" }, t("app.times")), form];
  if (!batchId) return h("div", {}, head);
  let r;
  try {
    r = await api(`/recalls/${encodeURIComponent(batchId)}`, { timeoutS: REPORT_TIMEOUT_S });
  } catch (error) {
    return h("div", {}, head, errorBox(error));
  }
  const path = `/recalls/${encodeURIComponent(batchId)}`;
  const sales = r.sales || [];
  return h("div", { class: "recall", "data-batch-id": r.batch_id }, head,
    h("p", { class: "toolbar no-print" },
      downloadButton(t("recall.csvTanks"), path, { format: "csv" }, `recall-${batchId}.csv`),
      downloadButton(t("recall.csvSales"), path, { format: "csv", sales: "true" }, `recall-${batchId}-sales.csv`),
      h("button", { type: "button", onclick: () => window.print() }, t("common.print"))),
    section(t("trace.totals"), totals(r.totals)),
    section(t("recall.seal"), table({
      caption: null, className: "seal", rows: r.tanks_to_seal || [], columns: tankColumns(),
      empty: t("recall.sealNone"),
      rowAttrs: (k) => ({ "data-station-id": k.station_id, "data-tank-id": k.tank_id }),
    })),
    section(t("trace.dispatches"), dispatchTable(r.dispatches)),
    section(t("recall.sales"),
      sales.length > SALES_SHOWN ? h("p", { class: "muted" }, t("recall.salesShown", { n: SALES_SHOWN, total: sales.length })) : null,
      table({
        caption: null, className: "recall-sales", rows: sales.slice(0, SALES_SHOWN),
        columns: [
          { label: t("trace.time"), cell: (s) => time(s.at, true) },
          { label: t("f.station"), cell: (s) => stationLink(s.station_id) },
          { label: t("trace.txn"), cell: (s) => link(`#/trace?station=${encodeURIComponent(s.station_id)}&txn=${encodeURIComponent(s.txn_id)}`, s.txn_id) },
          { label: t("station.tank"), cell: (s) => s.tank_id },
          { label: t("trace.litres"), num: true, cell: (s) => litres(s.volume_20_l) },
          { label: t("trace.share"), cell: (s) => shareBar(s.share) },
          { label: t("recall.fromBatch"), num: true, cell: (s) => litres(s.litres_from_batch_20) },
          { label: t("recall.invoice"), cell: (s) => s.invoice_id || "–" },
        ],
      })));
}
