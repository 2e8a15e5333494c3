// A new case thread: find the patient (INS, or family name and birth date) or register them,
// choose the participants among the members of the group, a title and a priority; then
// POST /api/v1/groups/{gid}/threads and open the thread.

import { api } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { patientRegistration, patientSearch, patientSummary, showPatients } from "../patientforms.js";
import { groupById, session } from "../session.js";
import { alertBox, emptyState, errorMessage, field, icon, pageHeader, section } from "../ui.js";

const THREAD_ROLES = new Set(["clinician", "coordinator"]);

export async function render({ view, params, navigate }) {
  const gid = params[0];
  const group = groupById(gid);
  // Finding the patient is a clinician's act (patients API): coordinators open threads from a
  // script or the FHIR API.
  if (!group || group.role !== "clinician") {
    view.append(pageHeader(t("newthread.title"), null), section(t("newthread.title"), emptyState(t("newthread.notAllowed"), null)));
    return { title: t("newthread.title") };
  }
  const me = session.me.id;
  const members = (await api.get(`/api/v1/groups/${gid}/members`, { query: { limit: 100 } })).items.filter(
    (m) => m.status === "active" && THREAD_ROLES.has(m.role) && m.user_id !== me,
  );

  // -- the patient --
  let patient = null;
  const chosen = h("div", { class: "chosen-patient", id: "chosen-patient", "aria-live": "polite" });
  const results = h("div", { "aria-live": "polite" });
  function choose(found) {
    patient = found;
    chosen.replaceChildren(
      h(
        "div",
        { class: "list-item" },
        h("span", { class: "avatar", "aria-hidden": "true" }, icon("patient")),
        h("div", { class: "list-main" }, patientSummary(found)),
        icon("check"),
      ),
    );
    results.replaceChildren();
    title.input.focus();
  }
  function showResults(items) {
    showPatients(results, items, {
      emptyHelp: t("newthread.none.help"),
      action: {
        label: t("newthread.choose"),
        named: (name) => t("newthread.choose.named", { name }),
        primary: true,
        onClick: choose,
      },
    });
  }
  const search = patientSearch({ gid, onResults: showResults });
  const registration = patientRegistration({ gid, onRegistered: async (p) => choose(p) });

  // -- the thread --
  const title = field({
    label: t("newthread.subject"),
    hint: t("newthread.subject.hint"),
    input: h("input", { type: "text", name: "title", maxlength: "200", autocomplete: "off" }),
  });
  const priority = h(
    "fieldset",
    { class: "field choices" },
    h("legend", { class: "field-label" }, t("newthread.priority")),
    ["routine", "urgent"].map((value) =>
      h(
        "label",
        { class: "choice" },
        h("input", { type: "radio", name: "priority", value, checked: value === "routine" }),
        h("span", null, t(`newthread.priority.${value}`)),
      ),
    ),
  );
  const people = h(
    "fieldset",
    { class: "field choices", id: "participant-choices" },
    h("legend", { class: "field-label" }, t("newthread.participants")),
    members.length
      ? members.map((m) =>
          h(
            "label",
            { class: "choice" },
            h("input", { type: "checkbox", name: "participant", value: m.user_id }),
            h("span", null, m.display_name),
          ),
        )
      : h("p", { class: "muted" }, t("newthread.participants.none")),
  );
  const status = h("div", { class: "form-status", "aria-live": "assertive" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "open-thread" }, t("newthread.submit"));
  const form = h(
    "form",
    { class: "form", novalidate: true, id: "new-thread" },
    title.root,
    priority,
    people,
    status,
    h("div", { class: "form-actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const subject = title.input.value.trim();
    title.setError(subject ? "" : t("newthread.subject.missing"));
    if (!patient) {
      status.replaceChildren(alertBox(t("newthread.patient.missing")));
      return search.form.querySelector("input").focus();
    }
    if (!subject) return title.input.focus();
    submit.disabled = true;
    try {
      const thread = await api.post(`/api/v1/groups/${gid}/threads`, {
        patient: `Patient/${patient.id}`,
        title: subject,
        participants: [...people.querySelectorAll("input:checked")].map((el) => el.value),
        priority: form.querySelector("input[name=priority]:checked").value,
      });
      navigate(`/threads/${thread.id}`);
    } catch (error) {
      submit.disabled = false;
      status.replaceChildren(alertBox(errorMessage(error)));
    }
  });

  view.append(
    pageHeader(t("newthread.title"), group.name || t("inbox.unnamedGroup")),
    h(
      "div",
      { class: "grid grid-top" },
      section(
        t("newthread.patient"),
        h("p", { class: "muted" }, t("patients.search.help")),
        search.form,
        search.status,
        results,
        h(
          "details",
          { class: "disclosure" },
          h("summary", null, t("patients.register.open")),
          registration.form,
          registration.status,
        ),
        chosen,
      ),
      section(t("newthread.details"), form),
    ),
  );
  return { title: t("newthread.title") };
}
