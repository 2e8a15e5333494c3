"""Patients of a care group (FHIR R4 Patient, INS per FR Core) and their oppositions to sharing
(FHIR Consent, deny) — API.md, "Patients"."""
