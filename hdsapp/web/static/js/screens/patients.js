// Patients of a care group (clinicians): exact-match search (INS, or family name and birth
// date), registration (FHIR R4 Patient, FR Core identity status and INS), and the patient's
// oppositions to sharing (record, list, lift). API.md §Patients.
//
// Nothing here is kept: results live in this screen's memory and go with it.

import { api } from "../api.js";
import { h } from "../dom.js";
import { formatDate, formatDateTime, t } from "../i18n.js";
import { DATE, nameOf, patientRegistration, patientSearch, patientSummary, showPatients } from "../patientforms.js";
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
    showPatients(results, items, {
      emptyHelp: t("patients.none.help"),
      action: {
        label: t("patients.open"),
        named: (name) => t("patients.open.named", { name }),
        onClick: (p) => openPatient(p.id),
      },
    });
  }

  const search = patientSearch({ gid, onSearch: () => detail.replaceChildren(), onResults: showResults });
  const registration = patientRegistration({
    gid,
    onRegistered: async (patient) => {
      showResults([patient]);
      await openPatient(patient.id);
    },
  });

  view.append(
    pageHeader(t("patients.title"), group.name || t("inbox.unnamedGroup")),
    groupTabs(groupsWithRole("clinician"), gid, (id) => `#/patients/${id}`),
    h(
      "div",
      { class: "grid grid-top" },
      section(t("patients.search"), h("p", { class: "muted" }, t("patients.search.help")), search.form, search.status, results),
      section(t("patients.register"), h("details", { class: "disclosure" }, h("summary", null, t("patients.register.open")), registration.form, registration.status)),
    ),
    detail,
  );
  return { title: `${t("patients.title")} · ${group.name}` };
}
