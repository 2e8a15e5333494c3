"""Use cases of patients and oppositions.

A patient's identity (the FHIR Patient JSON) is sealed with its group's data key before it
reaches the database, bound to its row by associated data (kind ``patient_identity``, group,
patient id); the INS and (family name, birth date) go into blind indexes for exact-match
search and the one-INS-per-group rule. Nothing identifying is stored in clear.

Every use case is audited (one entry per call, refusals included) and asks the policy: patients
and oppositions are clinical data, for the group's clinicians only; an active opposition that
covers the caller hides the patient (read, search). ``opposition_applies`` is the same check
for the threads domain (new threads and existing content about the patient).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from hdsapp.config import Settings
from hdsapp.core.accesslog import Access, audited
from hdsapp.core.actor import Actor
from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.blind_index import normalize_family_name
from hdsapp.core.db import Database
from hdsapp.core.errors import Conflict, HdsError, Unprocessable
from hdsapp.groups import pagination
from hdsapp.groups import repository as groups_repository
from hdsapp.groups import service as groups
from hdsapp.models.opposition import Opposition
from hdsapp.models.opposition_professional import OppositionProfessional
from hdsapp.models.patient import Patient
from hdsapp.patients import repository
from hdsapp.patients.consent import consent_resource
from hdsapp.patients.fhir_json import FhirInvalid, Issue, parse
from hdsapp.patients.ins import (
    IDENTITY_RELIABILITY_URL,
    IDENTITY_STATUS_SYSTEM,
    INS_NIR_TEST,
    INS_SYSTEMS,
    QUALIFIED,
    Identity,
    IdentityInvalid,
    identity_of,
    with_ins_key,
)
from hdsapp.patients.schemas import (
    OppositionCreate,
    OppositionList,
    OppositionPublic,
    OppositionUpdate,
    PatientList,
    PatientPublic,
)
from hdsapp.policy import Resource, ResourceType, row_plan

# How far in the future "informed at" may be (clock skew between the clinician and us).
INFORMED_AT_SKEW = dt.timedelta(minutes=5)


class Keyring(Protocol):
    """The key store (hdsapp.core.crypto.keyring): the part the patients domain uses."""

    def seal(self, session: Session, *, aad: AssociatedData, plaintext: bytes) -> bytes: ...

    def open(self, session: Session, *, aad: AssociatedData, envelope: bytes) -> bytes: ...

    def blind_index(
        self, session: Session, *, group_id: uuid.UUID, purpose: str, value: str
    ) -> bytes: ...


def ins_index(
    keyring: Keyring, session: Session, group_id: uuid.UUID, system: str, value: str
) -> bytes:
    """Blind index of an INS: purpose "ins" over ``system|value`` (normalised by the keyring)."""
    return keyring.blind_index(session, group_id=group_id, purpose="ins", value=f"{system}|{value}")


def name_birthdate_index(
    keyring: Keyring, session: Session, group_id: uuid.UUID, family: str, birth_date: dt.date
) -> bytes:
    """Blind index of (family name, birth date): purpose "name-birthdate" over
    ``family|YYYY-MM-DD`` (normalised by the keyring)."""
    return keyring.blind_index(
        session,
        group_id=group_id,
        purpose="name-birthdate",
        value=f"{family}|{birth_date.isoformat()}",
    )


def _identity_aad(group_id: uuid.UUID, patient_id: uuid.UUID) -> AssociatedData:
    return AssociatedData(
        kind=RecordKind.PATIENT_IDENTITY, group_id=str(group_id), record_id=str(patient_id)
    )


def _invalid(issues: Sequence[Issue], code: str, detail: str) -> Unprocessable:
    return Unprocessable(detail, code=code, extra={"errors": [i.as_dict() for i in issues]})


def _patient_access(kind: str, action: str, group_id: uuid.UUID) -> Access:
    return Access(
        kind=kind,
        action=action,  # type: ignore[arg-type]
        group_id=group_id,
        resource_type="Patient",
    )


# -- patients ----------------------------------------------------------------------------------


def _public(patient: Patient, resource: dict[str, Any]) -> PatientPublic:
    resource = dict(resource)
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(patient.version)
    meta["lastUpdated"] = patient.updated_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    resource["meta"] = meta
    return PatientPublic(
        id=patient.id,
        group_id=patient.group_id,
        identity_status=patient.identity_status,
        active=patient.active,
        version=patient.version,
        created_at=patient.created_at,
        updated_at=patient.updated_at,
        resource=resource,
    )


def _open(keyring: Keyring, session: Session, patient: Patient) -> dict[str, Any]:
    plaintext = keyring.open(
        session, aad=_identity_aad(patient.group_id, patient.id), envelope=patient.identity
    )
    resource: dict[str, Any] = json.loads(plaintext)
    return resource


def _indexes(
    keyring: Keyring, session: Session, group_id: uuid.UUID, identity: Identity
) -> tuple[bytes | None, bytes | None]:
    ins = None
    if identity.ins_system is not None and identity.ins_value is not None:
        ins = ins_index(keyring, session, group_id, identity.ins_system, identity.ins_value)
    name = None
    if identity.family is not None and identity.birth_date is not None:
        try:
            name = name_birthdate_index(
                keyring, session, group_id, identity.family, identity.birth_date
            )
        except ValueError:
            raise _invalid(
                [Issue("Patient.name", "the family name has no letter")],
                "invalid-identity",
                "The patient's identity is not valid.",
            ) from None
    return ins, name


def register_patient(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    resource: object,
) -> PatientPublic:
    """Register a FHIR R4 Patient in the group (201); 422 with the failing elements' paths,
    409 (with ``patient_id``) when the INS is already registered in the group."""
    with audited(session, database, actor, _patient_access("create", "C", group_id)) as scope:
        context = groups.policy_context(settings)
        resource_ref = Resource(type=ResourceType.PATIENT, group_id=group_id)
        groups.authorize(actor, "patient.create", resource_ref, context, scope)
        if groups_repository.group_by_id(session, group_id) is None:
            raise groups.not_found(ResourceType.GROUP)
        data, identity = _validated(resource)
        ins, name = _indexes(keyring, session, group_id, identity)
        if ins is not None:
            _refuse_duplicate(session, group_id, ins)
        patient_id = uuid.uuid4()
        plaintext = _stored_form(data, patient_id)
        patient = Patient(
            id=patient_id,
            group_id=group_id,
            identity=keyring.seal(
                session, aad=_identity_aad(group_id, patient_id), plaintext=plaintext
            ),
            ins_index=ins,
            name_birthdate_index=name,
            identity_status=identity.status,
            active=data.get("active", True) is not False,
            created_by=actor.user_id,
            created_at=context.now,
            updated_at=context.now,
        )
        try:
            with session.begin_nested():
                session.add(patient)
                session.flush()
        except IntegrityError:
            # Another registration of the same INS committed first.
            if ins is not None:
                _refuse_duplicate(session, group_id, ins)
            raise
        scope.patient_id = patient_id
        scope.resource_id = str(patient_id)
        return _public(patient, data)


def _validated(resource: object) -> tuple[dict[str, Any], Identity]:
    """The Patient as sent, once it passed the strict FHIR parse and the identity rules.

    What is stored is the submitted JSON itself, not the model's re-serialisation: extensions,
    primitive extensions (``_given`` aligned with nulls), contained resources and the lexical
    form of every value come back as they were sent; only ``id`` and ``meta`` are the server's.
    """
    try:
        parse("Patient", resource)
    except FhirInvalid as exc:
        raise _invalid(exc.issues, "invalid-fhir", "The FHIR Patient is not valid.") from None
    data: dict[str, Any] = json.loads(json.dumps(resource, ensure_ascii=False))
    try:
        identity = identity_of(data)
    except IdentityInvalid as exc:
        raise _invalid(exc.issues, exc.code, "The patient's identity is not valid.") from None
    return data, identity


def _stored_form(data: dict[str, Any], patient_id: uuid.UUID) -> bytes:
    """The plaintext sealed for a patient: the server assigns the id; of ``meta`` only profile
    and tag are kept (version and time are added when rendered)."""
    data["id"] = str(patient_id)
    meta = {k: v for k, v in (data.get("meta") or {}).items() if k in {"profile", "tag"}}
    data.pop("meta", None)
    if meta:
        data["meta"] = meta
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class VersionConflict(HdsError):
    """``If-Match`` named another version than the current one (FHIR: 412)."""

    status, code, title = 412, "version-conflict", "Precondition failed"


def update_patient(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    patient_id: uuid.UUID,
    resource: object,
    expected_version: int | None = None,
) -> PatientPublic:
    """Replace a patient's FHIR Patient (a new version). ``expected_version`` (the FHIR
    ``If-Match``): 412 unless it is the current version. Same rules as registration (422 with
    the elements' paths; 409 with ``patient_id`` if the INS is another patient's); the policy
    is ``patient.update`` (clinicians, unless an opposition covers them)."""
    access = dataclasses.replace(
        _patient_access("update", "U", group_id),
        patient_id=patient_id,
        resource_id=str(patient_id),
    )
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        patient = repository.patient_by_id(session, group_id, patient_id, for_update=True)
        opposed = (
            patient is not None
            and actor.user_id is not None
            and repository.opposition_applies(session, patient_id=patient_id, user_id=actor.user_id)
        )
        resource_ref = Resource(
            type=ResourceType.PATIENT,
            group_id=group_id,
            id=patient_id,
            opposition_applies=opposed,
        )
        groups.authorize(actor, "patient.update", resource_ref, context, scope)
        if patient is None:
            raise groups.not_found(ResourceType.PATIENT)
        if expected_version is not None and expected_version != patient.version:
            raise VersionConflict(
                "The patient was changed since that version.",
                extra={"current_version": patient.version},
            )
        data, identity = _validated(resource)
        ins, name = _indexes(keyring, session, group_id, identity)
        if ins is not None and ins != patient.ins_index:
            _refuse_duplicate(session, group_id, ins)
        plaintext = _stored_form(data, patient_id)
        patient.identity = keyring.seal(
            session, aad=_identity_aad(group_id, patient_id), plaintext=plaintext
        )
        patient.ins_index = ins
        patient.name_birthdate_index = name
        patient.identity_status = identity.status
        patient.active = data.get("active", True) is not False
        patient.version += 1
        patient.updated_at = context.now
        try:
            with session.begin_nested():
                session.add(patient)
                session.flush()
        except IntegrityError:
            if ins is not None:
                _refuse_duplicate(session, group_id, ins)
            raise
        return _public(patient, data)


def _refuse_duplicate(session: Session, group_id: uuid.UUID, ins: bytes) -> None:
    existing = repository.patient_id_by_ins(session, group_id, ins)
    if existing is not None:
        raise Conflict(
            "A patient with this INS is already registered in the group.",
            code="duplicate-ins",
            extra={"patient_id": str(existing)},
        )


def _search_query(
    identifier: str | None,
    family: str | None,
    birthdate: str | None,
    given: str | None = None,
    ids: Sequence[uuid.UUID] | None = None,
) -> str:
    """What the audit entry says about a search: which parameters, never their values."""
    parts = []
    if ids is not None:
        parts.append("_id=*")
    if identifier is not None:
        system = identifier.split("|", 1)[0] if "|" in identifier else ""
        parts.append(f"identifier={system if system in INS_SYSTEMS else '?'}|*")
    if family is not None:
        parts.append("family=*")
    if given is not None:
        parts.append("given=*")
    if birthdate is not None:
        parts.append("birthdate=*")
    return "Patient?" + "&".join(parts)


def _search_error(path: str, message: str) -> Unprocessable:
    return _invalid([Issue(path, message)], "invalid-search", "The search is not valid.")


# ``given`` has no index: it filters, after opening them, the patients an indexed criterion
# (identifier, family and birthdate, or ids) already narrowed down, all of which the caller may
# see. At most this many are opened for one search.
MAX_GIVEN_CANDIDATES = 500


def search_patients(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    identifier: str | None,
    family: str | None,
    birthdate: str | None,
    cursor: str | None,
    limit: int,
    given: str | None = None,
    ids: Sequence[uuid.UUID] | None = None,
) -> PatientList:
    """Exact-match search (blind indexes) or the list of the group's patients the caller may
    see: filtered in SQL by the policy's row plan; ``total`` counts the same rows.

    ``identifier``: ``system|value`` (an INS system) or the value alone (any INS system).
    ``ids``: these patients only. ``given``: a given name (case, accents and punctuation
    ignored, the start of a given name matches), only together with an indexed criterion."""
    access = dataclasses.replace(
        _patient_access("search", "E", group_id),
        query=_search_query(identifier, family, birthdate, given, ids),
    )
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        groups.authorize(
            actor,
            "patient.search",
            Resource(type=ResourceType.PATIENT, group_id=group_id),
            context,
            scope,
        )
        if groups_repository.group_by_id(session, group_id) is None:
            raise groups.not_found(ResourceType.GROUP)
        ins, ins_any, name = _search_indexes(
            keyring,
            session,
            group_id=group_id,
            identifier=identifier,
            family=family,
            birthdate=birthdate,
        )
        if given is not None and ins is None and ins_any is None and name is None and not ids:
            raise _search_error(
                "given", "given goes with identifier, with family and birthdate, or with _id"
            )
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        visible = groups_repository.plan_predicate(
            row_plan(actor, "patient.read", context),
            actor,
            col(Patient.group_id),
            repository.PATIENT_PREDICATES,
        )
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        criteria: dict[str, Any] = {
            "visible": visible,
            "group_id": group_id,
            "ins_index": ins,
            "name_index": name,
            "ins_any": ins_any,
            "ids": ids,
        }
        if given is None:
            rows = repository.search(session, after=after, limit=limit + 1, **criteria)
            page = rows[:limit]
            total = repository.count(session, **criteria)
            opened = [(p, _open(keyring, session, p)) for p in page]
        else:
            candidates = repository.search(
                session, after=None, limit=MAX_GIVEN_CANDIDATES + 1, **criteria
            )
            if len(candidates) > MAX_GIVEN_CANDIDATES:
                raise _search_error("given", "too many candidates: narrow the search down")
            wanted = _name_key(given)
            matching = [
                (p, r)
                for p in candidates
                if _given_matches(r := _open(keyring, session, p), wanted)
            ]
            total = len(matching)
            if after is not None:
                matching = [(p, r) for p, r in matching if (p.created_at, p.id) > after]
            rows = [p for p, _ in matching[: limit + 1]]
            opened = matching[:limit]
            page = [p for p, _ in opened]
        items = [_public(p, r) for p, r in opened]
        scope.result_refs = [f"Patient/{p.id}" for p in page]
        last = page[-1] if len(rows) > limit else None
        return PatientList(
            items=items,
            next_cursor=pagination.encode_cursor(last.created_at, last.id) if last else None,
            total=total,
        )


def _name_key(value: str) -> str:
    try:
        return normalize_family_name(value)
    except ValueError:
        raise _search_error("given", "the name has no letter") from None


def _given_matches(resource: dict[str, Any], wanted: str) -> bool:
    for name in resource.get("name") or []:
        if not isinstance(name, dict):
            continue
        for given in name.get("given") or []:
            if isinstance(given, str):
                try:
                    if normalize_family_name(given).startswith(wanted):
                        return True
                except ValueError:
                    continue
    return False


def _search_indexes(
    keyring: Keyring,
    session: Session,
    *,
    group_id: uuid.UUID,
    identifier: str | None,
    family: str | None,
    birthdate: str | None,
) -> tuple[bytes | None, list[bytes] | None, bytes | None]:
    """(the INS index, the INS indexes of a value searched without system, the name index)."""
    ins = None
    ins_any = None
    if identifier is not None:
        system, separator, value = identifier.partition("|")
        if not separator:
            system, value = "", identifier
        if not value.strip():
            raise _search_error("identifier", "use identifier=system|value or the value alone")
        if separator and system not in INS_SYSTEMS:
            raise _search_error(
                "identifier", "only INS identifiers (INS-NIR, INS-NIA) are searchable"
            )
        try:
            if separator:
                ins = ins_index(keyring, session, group_id, system, value)
            else:
                ins_any = [ins_index(keyring, session, group_id, s, value) for s in INS_SYSTEMS]
        except ValueError:
            raise _search_error("identifier", "not an INS value") from None
    name = None
    if (family is None) != (birthdate is None):
        raise _search_error("family", "family and birthdate go together")
    if family is not None and birthdate is not None:
        try:
            birth_date = dt.date.fromisoformat(birthdate)
            if len(birthdate) != 10:
                raise ValueError
        except ValueError:
            raise _search_error("birthdate", "a full date, YYYY-MM-DD") from None
        try:
            name = name_birthdate_index(keyring, session, group_id, family, birth_date)
        except ValueError:
            raise _search_error("family", "the family name has no letter") from None
    return ins, ins_any, name


def get_patient(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    patient_id: uuid.UUID,
) -> PatientPublic:
    access = dataclasses.replace(
        _patient_access("read", "R", group_id),
        patient_id=patient_id,
        resource_id=str(patient_id),
    )
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        patient = repository.patient_by_id(session, group_id, patient_id)
        opposed = (
            patient is not None
            and actor.user_id is not None
            and repository.opposition_applies(session, patient_id=patient_id, user_id=actor.user_id)
        )
        resource = Resource(
            type=ResourceType.PATIENT,
            group_id=group_id,
            id=patient_id,
            opposition_applies=opposed,
        )
        groups.authorize(actor, "patient.read", resource, context, scope)
        if patient is None:
            raise groups.not_found(ResourceType.PATIENT)
        return _public(patient, _open(keyring, session, patient))


def display_names(
    *,
    session: Session,
    keyring: Keyring,
    group_id: uuid.UUID,
    patient_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, str]:
    """The name to show for each patient of the group ("Given FAMILY", from the official or
    usual name), opened here: the threads domain shows its patients' names without handling
    identities itself. The caller has checked the policy (threads about these patients it may
    see); patients not in the group are left out. No audit entry of its own: the caller's use
    case records the access."""
    names: dict[uuid.UUID, str] = {}
    for patient_id in dict.fromkeys(patient_ids):
        patient = repository.patient_by_id(session, group_id, patient_id)
        if patient is not None:
            names[patient_id] = _display_name(_open(keyring, session, patient))
    return names


def _display_name(resource: dict[str, Any]) -> str:
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    ranked = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(n.get("use", ""), 2))
    for name in ranked:
        given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        text = " ".join(part for part in (given, str(family).upper()) if part)
        if text or name.get("text"):
            return text or str(name["text"])
    return "?"


def opposition_applies(session: Session, *, patient_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Does an active opposition of the patient cover this user (whole group, or named)?
    The threads domain asks before opening a thread about the patient and before showing its
    content; the policy's ``no_opposition`` condition uses the same SQL predicate."""
    return repository.opposition_applies(session, patient_id=patient_id, user_id=user_id)


# -- oppositions -------------------------------------------------------------------------------


def _opposition_public(
    opposition: Opposition, professionals: Sequence[uuid.UUID]
) -> OppositionPublic:
    resource = consent_resource(
        opposition_id=opposition.id,
        group_id=opposition.group_id,
        patient_id=opposition.patient_id,
        status=opposition.status,
        scope=opposition.scope,
        professionals=professionals,
        informed_by=opposition.informed_by,
        informed_at=opposition.informed_at,
        recorded_by=opposition.recorded_by,
        recorded_at=opposition.recorded_at,
        lifted_by=opposition.lifted_by,
        lifted_at=opposition.lifted_at,
        version=opposition.version,
    )
    return OppositionPublic(
        id=opposition.id,
        group_id=opposition.group_id,
        patient_id=opposition.patient_id,
        status=opposition.status,
        scope=opposition.scope,
        professionals=list(professionals),
        informed_by=opposition.informed_by,
        informed_at=opposition.informed_at,
        recorded_by=opposition.recorded_by,
        recorded_at=opposition.recorded_at,
        lifted_by=opposition.lifted_by,
        lifted_at=opposition.lifted_at,
        version=opposition.version,
        resource=resource,
    )


def _consent_access(kind: str, action: str, group_id: uuid.UUID, patient_id: uuid.UUID) -> Access:
    return Access(
        kind=kind,
        action=action,  # type: ignore[arg-type]
        group_id=group_id,
        patient_id=patient_id,
        resource_type="Consent",
    )


def _the_patient(session: Session, group_id: uuid.UUID, patient_id: uuid.UUID) -> Patient:
    patient = repository.patient_by_id(session, group_id, patient_id)
    if patient is None:
        raise groups.not_found(ResourceType.PATIENT)
    return patient


def _check_opposition(
    session: Session, actor: Actor, group_id: uuid.UUID, request: OppositionCreate, now: dt.datetime
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    issues: list[Issue] = []
    professionals = sorted(set(request.professionals))
    if request.scope == "group" and professionals:
        issues.append(Issue("professionals", "only for the scope 'professionals'"))
    if request.scope == "professionals":
        if not professionals:
            issues.append(Issue("professionals", "name at least one professional"))
        members = repository.members_among(session, group_id, professionals, active_only=False)
        if set(professionals) - members:
            issues.append(Issue("professionals", "every professional must be a group member"))
    informed_by = request.informed_by or actor.user_id
    if informed_by is None or not repository.members_among(
        session, group_id, [informed_by], active_only=True
    ):
        issues.append(Issue("informed_by", "must be an active member of the group"))
    if request.informed_at > now + INFORMED_AT_SKEW:
        issues.append(Issue("informed_at", "may not be in the future"))
    if issues:
        raise _invalid(issues, "invalid-opposition", "The opposition is not valid.")
    assert informed_by is not None
    return informed_by, professionals


def record_opposition(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    patient_id: uuid.UUID,
    request: OppositionCreate,
) -> OppositionPublic:
    access = _consent_access("create", "C", group_id, patient_id)
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        resource = Resource(type=ResourceType.OPPOSITION, group_id=group_id)
        groups.authorize(actor, "opposition.create", resource, context, scope)
        _the_patient(session, group_id, patient_id)
        informed_by, professionals = _check_opposition(
            session, actor, group_id, request, context.now
        )
        assert actor.user_id is not None
        opposition = Opposition(
            group_id=group_id,
            patient_id=patient_id,
            scope=request.scope,
            informed_by=informed_by,
            informed_at=request.informed_at,
            recorded_by=actor.user_id,
            recorded_at=context.now,
        )
        repository.add(session, opposition)
        for user_id in professionals:
            session.add(OppositionProfessional(opposition_id=opposition.id, user_id=user_id))
        session.flush()
        scope.resource_id = str(opposition.id)
        return _opposition_public(opposition, professionals)


def list_oppositions(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    patient_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> OppositionList:
    access = dataclasses.replace(
        _consent_access("search", "E", group_id, patient_id), query="Consent?patient"
    )
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        resource = Resource(type=ResourceType.OPPOSITION, group_id=group_id)
        groups.authorize(actor, "opposition.list", resource, context, scope)
        _the_patient(session, group_id, patient_id)
        after = pagination.decode_cursor(cursor, dt.datetime, uuid.UUID) if cursor else None
        limit = max(1, min(limit, pagination.MAX_LIMIT))
        rows = repository.oppositions_of(
            session, patient_id=patient_id, after=after, limit=limit + 1
        )
        page = rows[:limit]
        named = repository.professionals_of(session, [o.id for o in page])
        scope.result_refs = [f"Consent/{o.id}" for o in page]
        last = page[-1] if len(rows) > limit else None
        return OppositionList(
            items=[_opposition_public(o, named[o.id]) for o in page],
            next_cursor=pagination.encode_cursor(last.recorded_at, last.id) if last else None,
            total=repository.count_oppositions_of(session, patient_id=patient_id),
        )


def get_opposition(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    opposition_id: uuid.UUID,
) -> OppositionPublic:
    """One opposition of the group (FHIR Consent read). Policy: ``opposition.list`` — the
    oppositions stay readable to the team that must honour them."""
    access = dataclasses.replace(
        Access(kind="read", action="R", group_id=group_id, resource_type="Consent"),
        resource_id=str(opposition_id),
    )
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        resource = Resource(type=ResourceType.OPPOSITION, group_id=group_id, id=opposition_id)
        groups.authorize(actor, "opposition.list", resource, context, scope)
        opposition = repository.opposition_in_group(
            session, group_id=group_id, opposition_id=opposition_id
        )
        if opposition is None:
            raise groups.not_found(ResourceType.OPPOSITION)
        scope.patient_id = opposition.patient_id
        named = repository.professionals_of(session, [opposition.id])
        return _opposition_public(opposition, named[opposition.id])


def lift_opposition(
    *,
    session: Session,
    database: Database,
    actor: Actor,
    settings: Settings,
    group_id: uuid.UUID,
    patient_id: uuid.UUID,
    opposition_id: uuid.UUID,
    update: OppositionUpdate,
) -> OppositionPublic:
    """Lift an opposition (status inactive): access about the patient is restored for those it
    covered; the record stays, with who lifted it and when."""
    access = dataclasses.replace(
        _consent_access("update", "U", group_id, patient_id), resource_id=str(opposition_id)
    )
    with audited(session, database, actor, access) as scope:
        context = groups.policy_context(settings)
        resource = Resource(type=ResourceType.OPPOSITION, group_id=group_id, id=opposition_id)
        groups.authorize(actor, "opposition.lift", resource, context, scope)
        _the_patient(session, group_id, patient_id)
        opposition = repository.opposition_by_id(
            session, patient_id=patient_id, opposition_id=opposition_id, for_update=True
        )
        if opposition is None:
            raise groups.not_found(ResourceType.OPPOSITION)
        if opposition.status != "active":
            raise Conflict("This opposition was already lifted.", code="opposition-lifted")
        assert update.status == "inactive"
        opposition.status = "inactive"
        opposition.lifted_by = actor.user_id
        opposition.lifted_at = context.now
        opposition.version += 1
        repository.add(session, opposition)
        named = repository.professionals_of(session, [opposition.id])
        return _opposition_public(opposition, named[opposition.id])


# -- demo --------------------------------------------------------------------------------------

# Fictitious patients with test INS (urn:oid:1.2.250.1.213.1.4.10), qualified identities.
DEMO_PATIENTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("Martin", "Julie", "female", "1979-03-15", "2790375112001"),
    ("Bernard", "Louis", "male", "1948-11-02", "1481133063002"),
    ("Petit", "Camille", "female", "2016-06-21", "2160669123003"),
)


def seed_demo_patients(
    *,
    session: Session,
    database: Database,
    settings: Settings,
    keyring: Keyring,
    group_id: uuid.UUID,
    clinician: Actor,
) -> list[uuid.UUID]:
    """The demo group's patients, registered by ``clinician`` (a demo clinician of the group,
    as the audit log records it). Idempotent: a patient whose INS is there is left alone."""
    ids = []
    for family, given, gender, birth_date, first13 in DEMO_PATIENTS:
        ins = with_ins_key(first13)
        existing = repository.patient_id_by_ins(
            session, group_id, ins_index(keyring, session, group_id, INS_NIR_TEST, ins)
        )
        if existing is not None:
            ids.append(existing)
            continue
        resource = {
            "resourceType": "Patient",
            "extension": [
                {
                    "url": IDENTITY_RELIABILITY_URL,
                    "extension": [
                        {
                            "url": "identityStatus",
                            "valueCoding": {"system": IDENTITY_STATUS_SYSTEM, "code": QUALIFIED},
                        }
                    ],
                }
            ],
            "identifier": [{"use": "official", "system": INS_NIR_TEST, "value": ins}],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": gender,
            "birthDate": birth_date,
        }
        created = register_patient(
            session=session,
            database=database,
            actor=clinician,
            settings=settings,
            keyring=keyring,
            group_id=group_id,
            resource=resource,
        )
        ids.append(created.id)
    return ids
