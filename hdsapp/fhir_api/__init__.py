"""The FHIR R4 facade: one base per care group, ``/fhir/{gid}/``.

A second door onto the same use cases, never a path around them: every interaction calls the
domain services (which ask the policy, seal and open, and write the one audit entry), and this
package never queries the database itself (an import-linter contract).

Independent of the web framework, as Medplum's fhir-router: an interaction is a plain function
``(Services, FhirRequest) -> FhirResult`` registered in ``registry``; ``endpoints`` is the thin
FastAPI adapter that builds the request, calls it and renders the result, and every error as an
OperationOutcome. Conformance resources are data in the repository's ``fhir/`` folder
(``artefacts``); the CapabilityStatement is built from its base and from what is registered.

- ``wire``: the request and result types, media types, strict JSON, ``Prefer``, ETags.
- ``outcome``: errors as OperationOutcomes.
- ``search``: search parameters, ``_count`` and the opaque cursor, searchset Bundles.
- ``registry``: resource types, interactions, policy actions, search parameters.
- ``capability``: ``metadata``.
- ``validation``: a submitted resource checked strictly, its problems as 422 issues.
- ``patient``, ``practitioner``, ``organization``, ``consent``, ``audit_event``, and over case
  threads ``care_team`` (a thread), ``communication`` (a message), ``task``: the interactions
  of each resource type.
"""
