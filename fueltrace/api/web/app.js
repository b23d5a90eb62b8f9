// The regulators' page: sign-in, the header, and a small hash router over the views.
//
//   #/anomalies[?filters]   #/anomalies/<id>   #/cases[?filters]   #/cases/<id>
//   #/stations[?city]       #/stations/<id>    #/trace?station=&txn= | ?batch= | ?delivery=
//   #/recall/<batch>        #/inspection/<year>

import { api, getToken, setToken, setUnauthorizedHandler } from "./api.js";
import { getLang, label, setLang, t } from "./i18n.js";
import { errorBox, h, loading } from "./dom.js";
import { RULES } from "./labels.js";
import * as anomalies from "./views/anomalies.js";
import * as cases from "./views/cases.js";
import * as stations from "./views/stations.js";
import * as trace from "./views/trace.js";
import * as inspection from "./views/inspection.js";

const LANG_KEY = "fueltrace.lang";
const REGULATORS = ["city_regulator", "provincial_regulator", "admin"];
const NAV = ["anomalies", "cases", "stations", "trace", "recall", "inspection"];
const ROUTES = {
  anomalies: [anomalies.list, anomalies.detail],
  cases: [cases.list, anomalies.caseDetail],
  stations: [stations.list, stations.detail],
  trace: [trace.view, trace.view],
  recall: [trace.recall, trace.recall],
  inspection: [inspection.view, inspection.view],
};

const state = { who: null, signInError: null, renderId: 0, lastPath: null };
const header = document.getElementById("site-header");
const main = document.getElementById("main");

/** The current route: path parts and query parameters of the hash. */
function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  return { parts, params: new URLSearchParams(query), path };
}

/** The hash for `path` with `params` (empty values left out). */
export function hrefOf(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "" && v !== false) query.set(k, String(v));
  }
  const text = query.toString();
  return `#/${path}${text ? `?${text}` : ""}`;
}

function go(path, params = {}) {
  const target = hrefOf(path, params);
  if (location.hash === target) render();
  else location.hash = target;
}

function renderHeader() {
  const current = route().parts[0];
  const who = state.who;
  const regulator = who && REGULATORS.includes(who.role);
  const langButton = h("button", {
    type: "button", class: "lang", lang: getLang() === "zh" ? "en" : "zh-CN",
    title: t("app.langLabel"), onclick: () => switchLang(),
  }, t("app.lang"));
  header.replaceChildren(
    h("div", { class: "masthead" },
      h("div", { class: "brand" },
        h("img", { class: "emblem", src: "favicon.svg", alt: "", width: 40, height: 40 }),
        h("div", {}, h("p", { class: "site-title" }, t("app.title")),
          h("p", { class: "site-sub" }, t("app.subtitle")))),
      h("div", { class: "account" },
        who ? h("p", { class: "who", title: `token ${who.token_id}` },
          h("span", { class: "sr-only" }, `${t("signin.as")}: `),
          h("strong", { class: "who-label" }, who.label), " · ",
          h("span", { class: "who-role" }, label("role", who.role)),
          who.scope ? [" · ", who.role === "city_regulator" ? label("city", who.scope) : who.scope] : null) : null,
        langButton,
        who ? h("button", { type: "button", class: "signout", onclick: signOut }, t("signin.out")) : null)),
    regulator ? h("nav", { class: "mainnav", "aria-label": t("nav.label") },
      h("ul", {}, NAV.map((name) => h("li", {},
        h("a", { href: `#/${name}`, "aria-current": current === name ? "page" : null }, t(`nav.${name}`))))))
      : null);
}

function switchLang() {
  const next = getLang() === "zh" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, next);
  setLang(next);
  render(true);
}

function signOut() {
  setToken(null);
  state.who = null;
  state.signInError = null;
  location.hash = "#/anomalies";
  render();
}

function signInView() {
  const field = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", required: true,
    spellcheck: "false", "aria-describedby": "token-help token-kept",
  });
  const form = h("form", { class: "signin panel", onsubmit: async (event) => {
    event.preventDefault();
    const token = field.value.trim();
    if (!token) return;
    setToken(token);
    state.signInError = null;
    try {
      state.who = await api("/whoami");
    } catch (error) {
      setToken(null);
      state.signInError = error;
    }
    render();
  } },
  h("h1", { tabindex: "-1" }, t("signin.title")),
  state.signInError ? errorBox(state.signInError) : null,
  h("div", { class: "field" },
    h("label", { for: "token" }, t("signin.token")), field,
    h("p", { class: "hint", id: "token-help" }, t("signin.help")),
    h("p", { class: "hint", id: "token-kept" }, t("signin.kept"))),
  h("button", { type: "submit", class: "primary" }, t("signin.submit")));
  return form;
}

/** Draw the current route. `keepFocus`: a re-render in place (language switch). */
async function render(keepFocus = false) {
  const id = ++state.renderId;
  if (!state.rulesLoaded) {
    try {
      for (const rule of await api("/rules")) RULES[rule.name] = [rule.title_zh, rule.title];
      state.rulesLoaded = true;
    } catch {
      // rule names are shown as they are until the next view retries
    }
  }
  renderHeader();
  if (!getToken()) {
    main.replaceChildren(signInView());
    main.dataset.rendered = location.hash;
    document.title = `${t("signin.title")} · ${t("app.title")}`;
    if (!keepFocus) main.querySelector("#token")?.focus();
    return;
  }
  if (!state.who) {
    main.replaceChildren(loading());
    try {
      state.who = await api("/whoami");
    } catch (error) {
      if (id !== state.renderId) return;
      if (!getToken()) return; // a 401: the handler shows the sign-in form
      main.replaceChildren(errorBox(error),
        h("button", { type: "button", onclick: () => render() }, t("common.retry")));
      return;
    }
    if (id !== state.renderId) return;
    renderHeader();
  }
  if (!REGULATORS.includes(state.who.role)) {
    main.replaceChildren(h("div", { class: "panel notice", role: "status" },
      h("h1", { tabindex: "-1" }, t("app.title")),
      h("p", {}, t("signin.notRegulator", { role: label("role", state.who.role) }))));
    main.dataset.rendered = location.hash;
    return;
  }
  const { parts, params, path } = route();
  const handlers = ROUTES[parts[0]];
  if (!handlers) {
    location.replace("#/anomalies");
    return;
  }
  const view = parts.length > 1 ? handlers[1] : handlers[0];
  const ctx = {
    who: { ...state.who, city: state.who.role === "city_regulator" ? state.who.scope : null },
    id: parts.slice(1).join("/") || null, params, go, hrefOf,
    stale: () => id !== state.renderId,
  };
  main.setAttribute("aria-busy", "true");
  if (!keepFocus) main.replaceChildren(loading());
  let node;
  try {
    node = await view(ctx);
  } catch (error) {
    node = h("div", {}, h("h1", { tabindex: "-1" }, t("err.title")), errorBox(error));
  }
  if (id !== state.renderId) return;
  main.removeAttribute("aria-busy");
  main.replaceChildren(node);
  main.dataset.rendered = location.hash;
  const heading = main.querySelector("h1");
  document.title = `${heading ? heading.textContent : ""} · ${t("app.title")}`;
  const moved = state.lastPath !== path;
  state.lastPath = path;
  if (heading && moved && !keepFocus) heading.focus({ preventScroll: false });
}

setUnauthorizedHandler((error) => {
  setToken(null);
  state.who = null;
  state.signInError = error;
  render();
});

document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault(); // the hash belongs to the router
  (main.querySelector("h1") || main).focus();
});
setLang(localStorage.getItem(LANG_KEY) || "zh");
window.addEventListener("hashchange", () => render());
if (!location.hash) history.replaceState(null, "", "#/anomalies");
render();
