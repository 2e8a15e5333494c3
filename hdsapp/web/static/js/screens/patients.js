// Patients of a care group (clinicians): exact-match search (INS, or family name and birth
// date), registration (FHIR R4 Patient, FR Core identity status and INS), and the patient's
// oppositions to sharing (record, list, lift). API.md §Patients.
//
// Nothing here is kept: results live in this screen's memory and go with it.

import { api } from "../api.js";
import { h } from "../dom.js";
import { formatDate, formatDateTime, t } from "../i18n.js";
import { groupById, groupsWithRole } from "../session.js";
import {
  alertBox,
  badge,
  confirmDialog,
  emptyState,
  errorMessage,
  field,
  groupTabs,
  icon,
  pageHeader,
  section,
  toast,
} from "../ui.js";

const RELIABILITY = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability";
const STATUS_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status";
const INS_SYSTEMS = {
  nir: "urn:oid:1.2.250.1.213.1.4.8",
  nia: "urn:oid:1.2.250.1.213.1.4.9",
  test: "urn:oid:1.2.250.1.213.1.4.10",
  demo: "urn:oid:1.2.250.1.213.1.4.11",
};
const STATUSES = ["PROV", "RECUP", "VALI", "QUAL"];
const INS = /^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function nameOf(resource) {
  const names = resource.name || [];
  const name = names.find((n) => n.use === "official") || names[0] || {};
  return [...(name.given || []), (name.family || "").toUpperCase()].filter(Boolean).join(" ");
}

function insOf(resource) {
  const systems = Object.values(INS_SYSTEMS);
  return (resource.identifier || []).find((i) => systems.includes(i.system) && i.use !== "old");
}

function statusBadge(status) {
  return badge(t(`patients.status.${status}`), status === "QUAL" ? "success" : status === "PROV" ? "warning" : "info");
}

function patientSummary(patient) {
  const resource = patient.resource || {};
  const ins = insOf(resource);
  return [
    h("p", { class: "list-title" }, nameOf(resource) || t("patients.unnamed")),
    h(
      "p",
      { class: "list-meta" },
      statusBadge(patient.identity_status),
      resource.birthDate ? h("span", null, t("patients.born", { when: formatDate(resource.birthDate) })) : null,
      resource.gender ? h("span", null, t(`patients.gender.${resource.gender}`)) : null,
      ins ? h("span", null, `INS ${ins.value}`) : null,
    ),
  ];
}

function buildPatient(values) {
  const resource = {
    resourceType: "Patient",
    extension: [
      {
        url: RELIABILITY,
        extension: [
          { url: "identityStatus", valueCoding: { system: STATUS_SYSTEM, code: values.status } },
        ],
      },
    ],
    name: [{ use: "official", family: values.family, given: values.given ? [values.given] : undefined }],
    gender: values.gender || undefined,
    birthDate: values.birthDate,
  };
  if (values.ins) {
    resource.identifier = [{ use: "official", system: INS_SYSTEMS[values.insSystem], value: values.ins }];
  }
  return JSON.parse(JSON.stringify(resource));
}

export async function render({ view, params, isCurrent }) {
  const gid = params[0];
  const group = groupById(gid);
  if (!group || group.role !== "clinician") {
    view.append(
      pageHeader(t("patients.title"), null),
      section(t("patients.title"), emptyState(t("patients.notClinician"), null, "patient")),
    );
    return { title: t("patients.title") };
  }

  const detail = h("div", { class: "patient-detail", id: "patient-detail" });
  const results = h("div", { "aria-live": "polite" });

  // -- the patient's page: identity and oppositions --
  async function openPatient(pid) {
    detail.replaceChildren(h("p", { class: "muted" }, t("shell.loading")));
    let patient;
    let oppositions;
    let members = [];
    try {
      [patient, oppositions] = await Promise.all([
        api.get(`/api/v1/groups/${gid}/patients/${pid}`),
        api.get(`/api/v1/groups/${gid}/patients/${pid}/oppositions`),
      ]);
      members = (await api.get(`/api/v1/groups/${gid}/members`, { query: { limit: 100 } })).items;
    } catch (error) {
      if (!patient || !oppositions) {
        detail.replaceChildren(alertBox(errorMessage(error)));
        return;
      }
    }
    if (!isCurrent()) return;
    const names = new Map(members.map((m) => [m.user_id, m.display_name]));
    const list = h("ul", { class: "list", id: "opposition-list" });
    const status = h("div", { "aria-live": "assertive" });
    const heading = h("h2", { class: "card-title", id: "patient-title", tabindex: "-1" }, nameOf(patient.resource));

    function oppositionRow(o) {
      const lift = h(
        "button",
        { type: "button", class: "btn btn-small", "aria-label": t("patients.opp.lift.named", { when: formatDate(o.informed_at) }) },
        t("patients.opp.lift"),
      );
      lift.addEventListener("click", async () => {
        const ok = await confirmDialog({
          title: t("patients.opp.lift.title"),
          text: t("patients.opp.lift.text"),
          confirm: t("patients.opp.lift"),
        });
        if (!ok) return;
        lift.disabled = true;
        try {
          await api.patch(`/api/v1/groups/${gid}/patients/${pid}/oppositions/${o.id}`, { status: "inactive" });
          toast(t("patients.opp.lifted"));
          await openPatient(pid);
        } catch (error) {
          lift.disabled = false;
          status.replaceChildren(alertBox(errorMessage(error)));
        }
      });
      const who =
        o.scope === "group"
          ? t("patients.opp.scope.group")
          : t("patients.opp.scope.professionals.list", {
              names: o.professionals.map((id) => names.get(id) || id.slice(0, 8)).join(", "),
            });
      return h(
        "li",
        { class: ["list-item", o.status === "active" ? null : "is-inactive"] },
        h("span", { class: "avatar", "aria-hidden": "true" }, icon("shield")),
        h(
          "div",
          { class: "list-main" },
          h("p", { class: "list-title" }, who),
          h(
            "p",
            { class: "list-meta" },
            o.status === "active" ? badge(t("patients.opp.active"), "danger") : badge(t("patients.opp.inactive")),
            h("span", null, t("patients.opp.informed", { when: formatDate(o.informed_at), who: names.get(o.informed_by) || "" })),
            o.lifted_at ? h("span", null, t("patients.opp.liftedAt", { when: formatDateTime(o.lifted_at) })) : null,
          ),
        ),
        o.status === "active" ? h("div", { class: "list-actions" }, lift) : null,
      );
    }
    list.replaceChildren(
      ...(oppositions.items.length
        ? oppositions.items.map(oppositionRow)
        : [h("li", { class: "list-empty" }, t("patients.opp.none"))]),
    );

    // Record an opposition: to the whole group, or to named professionals.
    const scopeName = `scope-${pid}`;
    const professionals = h(
      "fieldset",
      { class: "field choices", hidden: true },
      h("legend", { class: "field-label" }, t("patients.opp.professionals")),
      members
        .filter((m) => m.status === "active")
        .map((m) =>
          h("label", { class: "choice" }, h("input", { type: "checkbox", name: "professional", value: m.user_id }), h("span", null, m.display_name)),
        ),
    );
    const scopes = h(
      "fieldset",
      { class: "field choices" },
      h("legend", { class: "field-label" }, t("patients.opp.scope")),
      ["group", "professionals"].map((value) =>
        h(
          "label",
          { class: "choice" },
          h("input", {
            type: "radio",
            name: scopeName,
            value,
            checked: value === "group",
            on: { change: () => (professionals.hidden = value !== "professionals") },
          }),
          h("span", null, t(`patients.opp.scope.${value}`)),
        ),
      ),
    );
    const informed = field({
      label: t("patients.opp.informedAt"),
      hint: t("patients.opp.informedAt.hint"),
      input: h("input", { type: "date", name: "informed_at", value: new Date().toISOString().slice(0, 10) }),
    });
    const record = h("button", { type: "submit", class: "btn btn-primary" }, t("patients.opp.record"));
    const form = h("form", { class: "form", novalidate: true, id: "opposition-form" }, scopes, professionals, informed.root, h("div", { class: "form-actions" }, record));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      status.replaceChildren();
      const scope = form.querySelector(`input[name="${scopeName}"]:checked`).value;
      const chosen = [...professionals.querySelectorAll("input:checked")].map((el) => el.value);
      if (scope === "professionals" && !chosen.length) {
        status.replaceChildren(alertBox(t("patients.opp.professionals.missing")));
        return;
      }
      if (!DATE.test(informed.input.value)) {
        informed.setError(t("patients.date.invalid"));
        return informed.input.focus();
      }
      informed.setError("");
      const [y, m, d] = informed.input.value.split("-").map(Number);
      const at = new Date(y, m - 1, d, 12);
      const when = at > new Date() ? new Date() : at;
      record.disabled = true;
      try {
        await api.post(`/api/v1/groups/${gid}/patients/${pid}/oppositions`, {
          scope,
          professionals: scope === "professionals" ? chosen : [],
          informed_at: when.toISOString(),
        });
        toast(t("patients.opp.recorded"));
        await openPatient(pid);
      } catch (error) {
        record.disabled = false;
        status.replaceChildren(alertBox(errorMessage(error)));
      }
    });

    detail.replaceChildren(
      h(
        "section",
        { class: "card", "aria-labelledby": "patient-title" },
        heading,
        h("div", { class: "patient-id" }, patientSummary(patient).slice(1)),
        h("h3", { class: "subhead" }, t("patients.opp.title")),
        h("p", { class: "muted" }, t("patients.opp.help")),
        list,
        status,
        h("details", { class: "disclosure" }, h("summary", null, t("patients.opp.new")), form),
      ),
    );
    heading.focus();
  }

  function showResults(items) {
    if (!items.length) {
      results.replaceChildren(emptyState(t("patients.none"), t("patients.none.help"), "patient"));
      return;
    }
    results.replaceChildren(
      h(
        "ul",
        { class: "list", id: "patient-results" },
        items.map((p) =>
          h(
            "li",
            { class: "list-item" },
            h("span", { class: "avatar", "aria-hidden": "true" }, icon("patient")),
            h("div", { class: "list-main" }, patientSummary(p)),
            h(
              "div",
              { class: "list-actions" },
              h(
                "button",
                {
                  type: "button",
                  class: "btn btn-small",
                  "aria-label": t("patients.open.named", { name: nameOf(p.resource) }),
                  on: { click: () => openPatient(p.id) },
                },
                t("patients.open"),
              ),
            ),
          ),
        ),
      ),
    );
  }

  // -- search --
  const insField = field({
    label: t("patients.ins"),
    hint: t("patients.ins.hint"),
    input: h("input", { type: "text", name: "ins", autocomplete: "off", inputmode: "numeric", maxlength: "15" }),
  });
  const insSystem = field({
    label: t("patients.ins.system"),
    input: h("select", { name: "system" }, Object.keys(INS_SYSTEMS).map((k) => h("option", { value: k }, t(`patients.ins.${k}`)))),
  });
  const family = field({ label: t("patients.family"), input: h("input", { type: "text", name: "family", autocomplete: "off" }) });
  const birth = field({ label: t("patients.birthDate"), input: h("input", { type: "date", name: "birthdate" }) });
  const searchStatus = h("div", { "aria-live": "assertive" });
  const searchForm = h(
    "form",
    { class: "form form-grid", novalidate: true, id: "patient-search", role: "search" },
    insField.root,
    insSystem.root,
    h("p", { class: "form-or" }, t("patients.or")),
    family.root,
    birth.root,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, icon("search"), t("action.search"))),
  );
  searchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    searchStatus.replaceChildren();
    detail.replaceChildren();
    const ins = insField.input.value.replace(/\s/g, "").toUpperCase();
    const query = {};
    insField.setError(ins && !INS.test(ins) ? t("patients.ins.invalid") : "");
    if (ins && !INS.test(ins)) return insField.input.focus();
    if (ins) query.identifier = `${INS_SYSTEMS[insSystem.input.value]}|${ins}`;
    else if (family.input.value.trim() && birth.input.value) {
      query.family = family.input.value.trim();
      query.birthdate = birth.input.value;
    } else {
      searchStatus.replaceChildren(alertBox(t("patients.search.missing")));
      return;
    }
    try {
      const answer = await api.get(`/api/v1/groups/${gid}/patients`, { query });
      showResults(answer.items);
    } catch (error) {
      searchStatus.replaceChildren(alertBox(errorMessage(error)));
    }
  });

  // -- registration --
  const reg = {
    family: field({ label: t("patients.family"), input: h("input", { type: "text", name: "family", autocomplete: "off" }) }),
    given: field({ label: t("patients.given"), input: h("input", { type: "text", name: "given", autocomplete: "off" }) }),
    birthDate: field({ label: t("patients.birthDate"), input: h("input", { type: "date", name: "birthDate" }) }),
    gender: field({
      label: t("patients.gender"),
      input: h("select", { name: "gender" }, ["female", "male", "other", "unknown"].map((g) => h("option", { value: g }, t(`patients.gender.${g}`)))),
    }),
    status: field({
      label: t("patients.status"),
      hint: t("patients.status.hint"),
      input: h("select", { name: "status" }, STATUSES.map((s) => h("option", { value: s, selected: s === "PROV" }, t(`patients.status.${s}`)))),
    }),
    ins: field({
      label: t("patients.ins"),
      hint: t("patients.ins.qualOnly"),
      input: h("input", { type: "text", name: "ins", autocomplete: "off", inputmode: "numeric", maxlength: "15" }),
    }),
    insSystem: field({
      label: t("patients.ins.system"),
      input: h("select", { name: "insSystem" }, Object.keys(INS_SYSTEMS).map((k) => h("option", { value: k }, t(`patients.ins.${k}`)))),
    }),
  };
  const regStatus = h("div", { "aria-live": "assertive" });
  const regForm = h(
    "form",
    { class: "form form-grid", novalidate: true, id: "patient-register" },
    Object.values(reg).map((f) => f.root),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, t("patients.register.submit"))),
  );
  regForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    regStatus.replaceChildren();
    const values = {
      family: reg.family.input.value.trim(),
      given: reg.given.input.value.trim(),
      birthDate: reg.birthDate.input.value,
      gender: reg.gender.input.value,
      status: reg.status.input.value,
      ins: reg.ins.input.value.replace(/\s/g, "").toUpperCase(),
      insSystem: reg.insSystem.input.value,
    };
    const problems = [
      [reg.family, values.family ? "" : t("patients.family.missing")],
      [reg.birthDate, DATE.test(values.birthDate) ? "" : t("patients.date.invalid")],
      [reg.ins, values.ins && !INS.test(values.ins) ? t("patients.ins.invalid") : values.ins && values.status !== "QUAL" ? t("patients.ins.notQual") : ""],
    ];
    for (const [f, message] of problems) f.setError(message);
    const bad = problems.find(([, message]) => message);
    if (bad) return bad[0].input.focus();
    try {
      const patient = await api.post(`/api/v1/groups/${gid}/patients`, buildPatient(values));
      regForm.reset();
      regForm.closest("details").open = false;
      toast(t("patients.registered"));
      showResults([patient]);
      await openPatient(patient.id);
    } catch (error) {
      regStatus.replaceChildren(alertBox(errorMessage(error)));
    }
  });

  view.append(
    pageHeader(t("patients.title"), group.name || t("inbox.unnamedGroup")),
    groupTabs(groupsWithRole("clinician"), gid, (id) => `#/patients/${id}`),
    h(
      "div",
      { class: "grid grid-top" },
      section(t("patients.search"), h("p", { class: "muted" }, t("patients.search.help")), searchForm, searchStatus, results),
      section(t("patients.register"), h("details", { class: "disclosure" }, h("summary", null, t("patients.register.open")), regForm, regStatus)),
    ),
    detail,
  );
  return { title: `${t("patients.title")} · ${group.name}` };
}
