// Finding and registering a patient of a care group, shared by the Patients screen and the new
// thread flow: exact-match search (INS, or family name and birth date, through the blind
// index), registration (FHIR R4 Patient with the FR Core identity status and INS), and how a
// patient is shown. API.md §Patients.

import { api } from "./api.js";
import { h } from "./dom.js";
import { formatDate, t } from "./i18n.js";
import { alertBox, badge, emptyState, errorMessage, field, icon, toast } from "./ui.js";

const RELIABILITY = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability";
const STATUS_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status";
export const INS_SYSTEMS = {
  nir: "urn:oid:1.2.250.1.213.1.4.8",
  nia: "urn:oid:1.2.250.1.213.1.4.9",
  test: "urn:oid:1.2.250.1.213.1.4.10",
  demo: "urn:oid:1.2.250.1.213.1.4.11",
};
export const STATUSES = ["PROV", "RECUP", "VALI", "QUAL"];
export const INS = /^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$/;
export const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function nameOf(resource) {
  const names = resource.name || [];
  const name = names.find((n) => n.use === "official") || names[0] || {};
  return [...(name.given || []), (name.family || "").toUpperCase()].filter(Boolean).join(" ");
}

export function insOf(resource) {
  const systems = Object.values(INS_SYSTEMS);
  return (resource.identifier || []).find((i) => systems.includes(i.system) && i.use !== "old");
}

export function statusBadge(status) {
  return badge(t(`patients.status.${status}`), status === "QUAL" ? "success" : status === "PROV" ? "warning" : "info");
}

export function patientSummary(patient) {
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

export function buildPatient(values) {
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

/** The search form: {form, status}. onSearch() when a search starts, onResults(items). */
export function patientSearch({ gid, onSearch = () => {}, onResults }) {
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
    onSearch();
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
      onResults(answer.items);
    } catch (error) {
      searchStatus.replaceChildren(alertBox(errorMessage(error)));
    }
  });
  return { form: searchForm, status: searchStatus };
}

/** The registration form: {form, status}; onRegistered(patient) once created. */
export function patientRegistration({ gid, onRegistered }) {
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
      const details = regForm.closest("details");
      if (details) details.open = false;
      toast(t("patients.registered"));
      await onRegistered(patient);
    } catch (error) {
      regStatus.replaceChildren(alertBox(errorMessage(error)));
    }
  });
  return { form: regForm, status: regStatus };
}

/**
 * Search results into `box`: one row per patient with one button, action = {label, named
 * (its accessible name, from the patient's name), primary, onClick(patient)}.
 */
export function showPatients(box, items, { emptyHelp, action }) {
  if (!items.length) {
    box.replaceChildren(emptyState(t("patients.none"), emptyHelp, "patient"));
    return;
  }
  const row = (p) =>
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
            class: ["btn", "btn-small", action.primary ? "btn-primary" : null],
            "aria-label": action.named(nameOf(p.resource)),
            on: { click: () => action.onClick(p) },
          },
          action.label,
        ),
      ),
    );
  box.replaceChildren(h("ul", { class: "list", id: "patient-results" }, items.map(row)));
}
