// The auditor's screen: who accessed what, when, why, from where (API.md §Audit).
// Query form, accesses per day (SVG), results table with paging, integrity of the log
// (the latest signed checkpoint, verified here), and the verifiable export (step-up).

import { api } from "../api.js";
import { accessChart, isBreakGlass, isDenied, perDay } from "../chart.js";
import { h } from "../dom.js";
import { formatDateTime, formatNumber, t } from "../i18n.js";
import { checkIntegrity } from "../integrity.js";
import { groupById, groupsWithRole } from "../session.js";
import { Cancelled, withStepUp } from "../stepup.js";
import {
  alertBox,
  badge,
  emptyState,
  errorMessage,
  field,
  groupTabs,
  icon,
  pageHeader,
  section,
  toast,
} from "../ui.js";

const ACTIONS = ["C", "R", "U", "D", "E"];
const OUTCOMES = ["0", "4", "8", "12"];
const PAGE = 20;
const CHART_PAGES = 5; // the chart reads at most 5 x 100 entries of the period
const DEFAULT_DAYS = 14;
const KINDS = [
  "read",
  "search",
  "create",
  "update",
  "delete",
  "login",
  "logout",
  "export",
  "break-glass",
  "token",
  "audit-query",
];

function isoDate(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 10);
}

function startOfDay(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d, 0, 0, 0, 0);
}

function endOfDay(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d, 23, 59, 59, 999);
}

function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

function purposeOf(entry) {
  const purpose = ((entry.event && entry.event.purposeOfEvent) || [])[0] || {};
  const code = ((purpose.coding || [])[0] || {}).code || "";
  return { code, reason: purpose.text || "" };
}

function clientAddress(entry) {
  for (const agent of (entry.event && entry.event.agent) || []) {
    if (agent.network && agent.network.address && agent.requestor === false) {
      return agent.network.address;
    }
  }
  return "";
}

function outcomeBadge(entry) {
  if (isBreakGlass(entry)) return badge(t("audit.series.breakGlass"), "warning");
  const outcome = String(entry.outcome);
  return badge(t(`audit.outcome.${outcome}`), outcome === "0" ? "success" : "danger");
}

function kindLabel(kind) {
  return KINDS.includes(kind) ? t(`audit.kind.${kind}`) : kind;
}

function integrityPanel(result) {
  if (result.state === "none") {
    return h("p", { class: "integrity integrity-unknown", id: "integrity-status" }, icon("shield"), t("audit.integrity.none"));
  }
  const verified = result.state === "verified";
  const line =
    result.state === "verified"
      ? result.signedAt
        ? t("audit.integrity.verifiedAt", {
            n: formatNumber(result.size),
            when: formatDateTime(result.signedAt),
          })
        : t("audit.integrity.verified", { n: formatNumber(result.size) })
      : result.state === "unchecked"
        ? t("audit.integrity.unchecked", { n: formatNumber(result.size) })
        : t("audit.integrity.invalid");
  return h(
    "div",
    { class: ["integrity", verified ? "integrity-ok" : "integrity-bad"], id: "integrity-status", role: "status" },
    icon(verified ? "check" : "alert"),
    h(
      "div",
      null,
      h("p", { class: "integrity-line" }, line),
      h(
        "p",
        { class: "muted" },
        t("audit.integrity.key", { name: result.keyName, id: result.keyId }),
      ),
      h(
        "details",
        { class: "integrity-details" },
        h("summary", null, t("audit.integrity.details")),
        h(
          "dl",
          { class: "facts" },
          h("div", { class: "fact" }, h("dt", null, t("audit.integrity.origin")), h("dd", null, result.origin)),
          h("div", { class: "fact" }, h("dt", null, t("audit.integrity.root")), h("dd", null, h("code", null, result.rootHash))),
          h("div", { class: "fact" }, h("dt", null, t("audit.integrity.vkey")), h("dd", null, h("code", null, result.verifierKey))),
        ),
        h("p", { class: "muted" }, t("audit.integrity.pin")),
      ),
    ),
  );
}

export async function render({ view, params, isCurrent }) {
  const gid = params[0];
  const group = groupById(gid);
  if (!group || group.role !== "auditor") {
    view.append(
      pageHeader(t("audit.title"), null),
      section(t("audit.title"), emptyState(t("audit.notAuditor"), null, "shield")),
    );
    return { title: t("audit.title") };
  }

  // Members name the professionals (auditors may list them); ids stay visible when unknown.
  const members = [];
  try {
    let cursor = null;
    for (let page = 0; page < 20; page += 1) {
      const answer = await api.get(`/api/v1/groups/${gid}/members`, {
        query: { cursor, limit: 100, include_removed: true },
      });
      members.push(...answer.items);
      cursor = answer.next_cursor;
      if (!cursor) break;
    }
  } catch {
    // Without names the table shows ids.
  }
  const names = new Map(members.map((m) => [m.user_id, m.display_name]));
  const nameOf = (id) => (id ? names.get(id) || `${t("audit.user")} ${shortId(id)}` : t("audit.system"));

  // -- the query form --
  const today = new Date();
  const start = new Date(today.getFullYear(), today.getMonth(), today.getDate() - (DEFAULT_DAYS - 1));
  const patient = field({
    label: t("audit.q.patient"),
    hint: t("audit.q.patient.hint"),
    input: h("input", { type: "text", name: "patient", autocomplete: "off", spellcheck: "false" }),
  });
  const actor = field({
    label: t("audit.q.actor"),
    input: h(
      "select",
      { name: "actor" },
      h("option", { value: "" }, t("audit.q.any")),
      members.map((m) => h("option", { value: m.user_id }, m.display_name)),
    ),
  });
  const action = field({
    label: t("audit.q.action"),
    input: h(
      "select",
      { name: "action" },
      h("option", { value: "" }, t("audit.q.any")),
      ACTIONS.map((a) => h("option", { value: a }, t(`audit.action.${a}`))),
    ),
  });
  const outcome = field({
    label: t("audit.q.outcome"),
    input: h(
      "select",
      { name: "outcome" },
      h("option", { value: "" }, t("audit.q.any")),
      OUTCOMES.map((o) => h("option", { value: o }, t(`audit.outcome.${o}`))),
    ),
  });
  const since = field({
    label: t("audit.q.since"),
    input: h("input", { type: "date", name: "since", value: isoDate(start), max: isoDate(today) }),
  });
  const until = field({
    label: t("audit.q.until"),
    input: h("input", { type: "date", name: "until", value: isoDate(today) }),
  });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, icon("search"), t("action.search"));
  const reset = h("button", { type: "reset", class: "btn" }, t("audit.q.reset"));
  const formStatus = h("div", { "aria-live": "assertive" });
  const form = h(
    "form",
    { class: "form form-grid form-query", novalidate: true, id: "audit-form", role: "search" },
    patient.root,
    actor.root,
    action.root,
    outcome.root,
    since.root,
    until.root,
    h("div", { class: "form-actions" }, submit, reset),
  );

  const chartBox = h("div", { class: "chart-box", "aria-live": "polite" });
  const resultsHeading = h("h2", { class: "card-title", id: "audit-results", tabindex: "-1" }, t("audit.results"));
  const resultsBox = h("div", { class: "results" });
  const pager = h("div", { class: "pager" });
  const integrityBox = h("div", { class: "integrity-box" }, h("p", { class: "muted" }, t("shell.loading")));
  const exportStatus = h("div", { "aria-live": "assertive" });

  function currentQuery() {
    const patientValue = patient.input.value.trim();
    return {
      patient: patientValue || undefined,
      actor: actor.input.value || undefined,
      action: action.input.value || undefined,
      outcome: outcome.input.value || undefined,
      since: since.input.value ? startOfDay(since.input.value).toISOString() : undefined,
      until: until.input.value ? endOfDay(until.input.value).toISOString() : undefined,
    };
  }

  function validate() {
    let ok = true;
    const value = patient.input.value.trim();
    const bad = value && !/^(Patient\/)?[0-9a-f-]{36}$/i.test(value);
    patient.setError(bad ? t("audit.q.patient.invalid") : "");
    if (bad) ok = false;
    const wrongOrder = since.input.value && until.input.value && since.input.value > until.input.value;
    until.setError(wrongOrder ? t("audit.q.period.invalid") : "");
    if (wrongOrder) ok = false;
    return ok;
  }

  function row(entry) {
    const { code, reason } = purposeOf(entry);
    const breakGlass = isBreakGlass(entry);
    const denied = isDenied(entry);
    return h(
      "tr",
      { class: [breakGlass ? "row-btg" : null, denied && !breakGlass ? "row-denied" : null], dataset: { index: entry.index } },
      h("td", { class: "num" }, String(entry.index)),
      h("td", { class: "nowrap" }, formatDateTime(entry.recorded)),
      h("td", null, nameOf(entry.actor)),
      h("td", null, t(`audit.action.${entry.action}`), h("span", { class: "cell-sub" }, kindLabel(entry.kind))),
      h("td", null, entry.patient ? h("code", { title: entry.patient }, `Patient/${shortId(entry.patient)}`) : "—"),
      h("td", null, outcomeBadge(entry), entry.event && entry.event.outcomeDesc ? h("span", { class: "cell-sub" }, entry.event.outcomeDesc) : null),
      h("td", null, code ? h("span", { title: t("audit.purpose") }, code) : "", reason ? h("span", { class: "cell-sub" }, reason) : null),
      h("td", { class: "nowrap" }, clientAddress(entry)),
    );
  }

  const cursors = [null];
  let pageIndex = 0;

  async function loadPage() {
    const query = currentQuery();
    const answer = await api.get(`/api/v1/groups/${gid}/audit`, {
      query: { ...query, limit: PAGE, cursor: cursors[pageIndex] },
    });
    if (!isCurrent()) return;
    cursors[pageIndex + 1] = answer.next_cursor;
    if (!answer.items.length) {
      resultsBox.replaceChildren(emptyState(t("audit.empty"), null, "shield"));
    } else {
      resultsBox.replaceChildren(
        h(
          "div",
          { class: "table-scroll", tabindex: "0", role: "region", "aria-labelledby": "audit-results" },
          h(
            "table",
            { class: "table", id: "audit-table" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["index", "time", "actor", "action", "patient", "outcome", "purpose", "address"].map((c) =>
                  h("th", { scope: "col" }, t(`audit.col.${c}`)),
                ),
              ),
            ),
            h("tbody", null, answer.items.map(row)),
          ),
        ),
      );
    }
    const previous = h(
      "button",
      { type: "button", class: "btn btn-small", disabled: pageIndex === 0 },
      t("audit.page.newer"),
    );
    const next = h(
      "button",
      { type: "button", class: "btn btn-small", disabled: !answer.next_cursor },
      t("audit.page.older"),
    );
    previous.addEventListener("click", async () => {
      pageIndex -= 1;
      await loadPage();
      resultsHeading.focus();
    });
    next.addEventListener("click", async () => {
      pageIndex += 1;
      await loadPage();
      resultsHeading.focus();
    });
    pager.replaceChildren(
      previous,
      h("span", { class: "pager-label", "aria-live": "polite" }, t("audit.page.n", { n: pageIndex + 1 })),
      next,
    );
  }

  // The drawing's width follows the screen's (readable text on a phone): redraw on a change.
  let lastDays = null;
  const widths = [matchMedia("(min-width: 600px)"), matchMedia("(min-width: 1100px)")];
  const redraw = () => {
    if (!isCurrent()) {
      for (const query of widths) query.removeEventListener("change", redraw);
      return;
    }
    const figure = chartBox.querySelector(".chart-figure");
    if (lastDays && figure) figure.replaceWith(accessChart(lastDays));
  };
  for (const query of widths) query.addEventListener("change", redraw);

  async function loadChart() {
    chartBox.setAttribute("aria-busy", "true");
    try {
      await drawChart();
    } finally {
      chartBox.removeAttribute("aria-busy");
    }
  }

  async function drawChart() {
    const query = currentQuery();
    const entries = [];
    let cursor = null;
    let capped = false;
    for (let page = 0; page < CHART_PAGES; page += 1) {
      const answer = await api.get(`/api/v1/groups/${gid}/audit`, { query: { ...query, limit: 100, cursor } });
      entries.push(...answer.items);
      cursor = answer.next_cursor;
      if (!cursor) break;
      capped = page === CHART_PAGES - 1;
    }
    if (!isCurrent()) return;
    const from = query.since ? new Date(query.since) : new Date(Math.min(...entries.map((e) => Date.parse(e.recorded)), Date.now()));
    const to = query.until ? new Date(query.until) : new Date();
    lastDays = perDay(entries, from, to);
    chartBox.replaceChildren(accessChart(lastDays));
    if (capped) {
      chartBox.append(h("p", { class: "muted" }, t("audit.chart.capped", { n: formatNumber(entries.length) })));
    }
  }

  async function search() {
    formStatus.replaceChildren();
    if (!validate()) return false;
    cursors.length = 1;
    pageIndex = 0;
    submit.disabled = true;
    try {
      await loadPage();
      await loadChart();
      return true;
    } catch (error) {
      formStatus.replaceChildren(alertBox(errorMessage(error)));
      return false;
    } finally {
      submit.disabled = false;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await search()) resultsHeading.focus();
  });
  form.addEventListener("reset", () => {
    setTimeout(() => {
      patient.setError("");
      until.setError("");
    });
  });

  const exportButton = h("button", { type: "button", class: "btn", id: "audit-export" }, icon("download"), t("audit.export"));
  exportButton.addEventListener("click", async () => {
    exportStatus.replaceChildren();
    exportButton.disabled = true;
    try {
      const query = currentQuery();
      const response = await withStepUp(() =>
        api.get(`/api/v1/groups/${gid}/audit/export`, { query: { since: query.since, until: query.until }, raw: true }),
      );
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `audit-${gid}.json`, class: "sr-only" }, "download");
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      toast(t("audit.exported"));
    } catch (error) {
      if (!(error instanceof Cancelled)) exportStatus.replaceChildren(alertBox(errorMessage(error)));
    } finally {
      exportButton.disabled = false;
    }
  });

  view.append(
    pageHeader(t("audit.title"), group.name || t("inbox.unnamedGroup"), exportButton),
    groupTabs(groupsWithRole("auditor"), gid, (id) => `#/audit/${id}`),
    exportStatus,
    h(
      "div",
      { class: "grid grid-audit" },
      h(
        "section",
        { class: "card card-wide", "aria-labelledby": "integrity-title" },
        h("h2", { class: "card-title", id: "integrity-title" }, t("audit.integrity")),
        integrityBox,
      ),
      h(
        "section",
        { class: "card card-wide", "aria-labelledby": "audit-query-title" },
        h("h2", { class: "card-title", id: "audit-query-title" }, t("audit.query")),
        form,
        formStatus,
      ),
      h(
        "section",
        { class: "card card-wide", "aria-labelledby": "audit-chart-title" },
        h("h2", { class: "card-title", id: "audit-chart-title" }, t("audit.chart.title")),
        chartBox,
      ),
      h(
        "section",
        { class: "card card-wide", "aria-labelledby": "audit-results" },
        resultsHeading,
        resultsBox,
        pager,
      ),
    ),
  );

  // The screen shows at once; the log's answers fill it as they come.
  resultsBox.append(h("p", { class: "muted" }, t("shell.loading")));
  checkIntegrity()
    .then((result) => isCurrent() && integrityBox.replaceChildren(integrityPanel(result)))
    .catch((error) => isCurrent() && integrityBox.replaceChildren(alertBox(errorMessage(error))));
  search();
  return { title: `${t("audit.title")} · ${group.name}` };
}
