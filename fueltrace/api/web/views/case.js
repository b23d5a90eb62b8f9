// A case: its state, the workflow actions the case allows now (acknowledge → investigate →
// close with a resolution; assign; notes), and its audit trail.

import { api } from "../api.js";
import { enumValues, label, t } from "../i18n.js";
import { caseBadge, errorBox, facts, h, link, section, table, time } from "../dom.js";

const REGULATORS = ["city_regulator", "provincial_regulator", "admin"];

function auditTable(events) {
  return table({
    caption: t("case.audit.caption"),
    className: "audit",
    columns: [
      { label: t("anomaly.at"), cell: (e) => time(e.at, true) },
      { label: t("case.actor"), cell: (e) => e.actor },
      { label: t("case.role"), cell: (e) => label("role", e.actor_role) },
      { label: t("case.action"), cell: (e) => h("span", { "data-action": e.action }, label("action", e.action)) },
      { label: t("case.fromTo"), cell: (e) => (e.from_state && e.to_state && e.from_state !== e.to_state
        ? `${label("caseState", e.from_state)} → ${label("caseState", e.to_state)}`
        : (e.to_state ? label("caseState", e.to_state) : "–")) },
      { label: t("f.resolution"), cell: (e) => (e.resolution ? label("resolution", e.resolution) : "–") },
      { label: t("f.assignee"), cell: (e) => (e.action === "assigned" ? (e.assignee || t("common.none")) : "–") },
      { label: t("case.why"), cell: (e) => e.reason || "–" },
    ],
    rows: events,
    rowAttrs: (e) => ({ "data-event-id": e.event_id }),
  });
}

function reasonField(id, text, required = true) {
  return h("div", { class: "field wide" },
    h("label", { for: id }, text),
    h("textarea", { id, name: "reason", rows: 2, maxlength: 4000, required }));
}

/** POST an action, then show the answer (the case as it is now). */
function submitter(form, path, body, show, what) {
  return async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    form.querySelector(".error")?.remove();
    try {
      const updated = await api(path, { method: "POST", body: body(new FormData(form)) });
      show(updated, what(new FormData(form)));
    } catch (error) {
      button.disabled = false;
      form.append(errorBox(error));
    }
  };
}

function transitionForm(c, show) {
  const allowed = c.allowed_transitions || [];
  if (!allowed.length) return h("p", { class: "muted" }, t("case.closed"));
  const form = h("form", { class: "case-action", "aria-labelledby": "act-title" });
  const resolutions = h("fieldset", { class: "resolution", hidden: true },
    h("legend", {}, t("f.resolution")),
    enumValues("resolution").map((r) => h("div", { class: "choice" },
      h("input", { type: "radio", name: "resolution", value: r, id: `res-${r}` }),
      h("label", { for: `res-${r}` }, label("resolution", r)))));
  const sync = () => {
    const closing = form.querySelector("input[name=to]:checked")?.value === "closed";
    resolutions.hidden = !closing;
    for (const radio of resolutions.querySelectorAll("input")) radio.required = closing;
  };
  form.append(...[
    h("h3", { id: "act-title" }, t("case.act")),
    h("fieldset", { class: "next" }, h("legend", {}, t("case.next")),
      allowed.map((to, i) => h("div", { class: "choice" },
        h("input", { type: "radio", name: "to", value: to, id: `to-${to}`, required: true, checked: i === 0, onchange: sync }),
        h("label", { for: `to-${to}` }, label("transition", to))))),
    resolutions,
    allowed.includes("closed") ? h("p", { class: "hint" }, t("case.closeWarn")) : null,
    reasonField("case-reason", t("case.reason")),
    h("button", { type: "submit", class: "primary" }, t("case.submit")),
  ].filter(Boolean));
  sync();
  form.addEventListener("submit", submitter(form, `/cases/${c.case_id}/transition`, (data) => ({
    to: data.get("to"), reason: String(data.get("reason")).trim(),
    resolution: data.get("to") === "closed" ? data.get("resolution") : null,
  }), show, (data) => label("caseState", data.get("to"))));
  return form;
}

function assignForm(c, ctx, show) {
  if (c.state === "closed") return null;
  const who = h("input", { id: "assignee", name: "assignee", value: c.assignee || "", maxlength: 200 });
  const form = h("form", { class: "case-action", "aria-labelledby": "assign-title" },
    h("h3", { id: "assign-title" }, t("case.assign")),
    h("div", { class: "field" }, h("label", { for: "assignee" }, t("case.assignTo")),
      h("div", { class: "inline" }, who,
        h("button", { type: "button", onclick: () => { who.value = ctx.who.label; } }, t("case.assignMe")))),
    reasonField("assign-reason", t("case.assignReason")),
    h("button", { type: "submit" }, t("case.assignSubmit")));
  form.addEventListener("submit", submitter(form, `/cases/${c.case_id}/assign`, (data) => ({
    assignee: String(data.get("assignee") || "").trim() || null, reason: String(data.get("reason")).trim(),
  }), show, () => t("case.assigned")));
  return form;
}

function noteForm(c, show) {
  const form = h("form", { class: "case-action", "aria-labelledby": "note-title" },
    h("h3", { id: "note-title" }, t("case.note")),
    h("div", { class: "field wide" }, h("label", { for: "note-text" }, t("case.noteText")),
      h("textarea", { id: "note-text", name: "text", rows: 2, maxlength: 4000, required: true })),
    h("button", { type: "submit" }, t("case.noteSubmit")));
  form.addEventListener("submit", submitter(form, `/cases/${c.case_id}/notes`, (data) => ({
    text: String(data.get("text")).trim(),
  }), show, () => t("case.noteAdded")));
  return form;
}

/** The case panel; `show(updated, what)` replaces it after an action. */
export function casePanel(c, ctx, show, done = null) {
  const mayAct = REGULATORS.includes(ctx.who.role);
  return section(t("case.title"),
    done ? h("p", { class: "done", role: "status", tabindex: "-1" }, t("case.done", { what: done })) : null,
    h("div", { class: "case-head", "data-case-id": c.case_id, "data-state": c.state },
      h("p", { class: "badges" }, h("span", { class: "case-no" }, `${t("case.no")} #${c.case_id}`), " ",
        caseBadge(c.state), c.resolution ? [" ", h("span", { class: `badge res-${c.resolution}` }, label("resolution", c.resolution))] : null),
      facts([
        [t("f.assignee"), c.assignee || t("common.none")],
        [t("case.openedAt"), time(c.opened_at, true)],
        [t("case.openedBy"), c.opened_by],
        [t("f.updated"), time(c.updated_at, true)],
        [t("case.closedAt"), c.closed_at ? time(c.closed_at, true) : null],
        [t("case.caseNo"), c.case_no > 1 ? String(c.case_no) : null],
        [t("case.reopenedFrom"), c.reopened_from ? link(`#/cases/${c.reopened_from}`, `#${c.reopened_from}`) : null],
      ])),
    mayAct ? h("div", { class: "case-forms" }, transitionForm(c, show), assignForm(c, ctx, show), noteForm(c, show))
      : h("p", { class: "muted" }, t("case.readOnly")),
    h("h3", {}, t("case.audit")),
    auditTable(c.events || []));
}
