"""groups and patients: care groups, memberships, invitations, patients (sealed identities and
blind indexes), oppositions and the professionals they name

Revision ID: 0004_groups_patients
Revises: 0003_identity
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hdsapp.core.db import UTCDateTime

revision: str = "0004_groups_patients"
down_revision: str | Sequence[str] | None = "0003_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES = "role IN ('clinician', 'coordinator', 'auditor')"
_USER = "user_account.id"


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    referred = target.split(".", 1)[0]
    return sa.ForeignKeyConstraint([column], [target], name=op.f(f"fk_{table}_{column}_{referred}"))


def upgrade() -> None:
    op.create_table(
        "care_group",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _fk("care_group", "created_by", _USER),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_group")),
    )
    op.create_table(
        "invitation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("rpps", sa.String(length=11), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("external", sa.Boolean(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(_ROLES, name=op.f("ck_invitation_role")),
        sa.CheckConstraint(
            "email IS NOT NULL OR rpps IS NOT NULL", name=op.f("ck_invitation_addressee")
        ),
        sa.CheckConstraint(
            "external OR ends_at IS NULL", name=op.f("ck_invitation_ends_at_external")
        ),
        _fk("invitation", "accepted_by", _USER),
        _fk("invitation", "created_by", _USER),
        _fk("invitation", "group_id", "care_group.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitation_token_hash")),
    )
    op.create_index(op.f("ix_invitation_group_id"), "invitation", ["group_id"], unique=False)
    op.create_table(
        "membership",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("external", sa.Boolean(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("added_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(_ROLES, name=op.f("ck_membership_role")),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'removed')", name=op.f("ck_membership_status")
        ),
        sa.CheckConstraint(
            "external OR ends_at IS NULL", name=op.f("ck_membership_ends_at_external")
        ),
        _fk("membership", "added_by", _USER),
        _fk("membership", "group_id", "care_group.id"),
        _fk("membership", "user_id", _USER),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership")),
        sa.UniqueConstraint("group_id", "user_id", name=op.f("uq_membership_group_id")),
    )
    op.create_index(op.f("ix_membership_user_id"), "membership", ["user_id"], unique=False)
    op.create_table(
        "patient",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("identity", sa.LargeBinary(), nullable=False),
        sa.Column("ins_index", sa.LargeBinary(), nullable=True),
        sa.Column("name_birthdate_index", sa.LargeBinary(), nullable=True),
        sa.Column("identity_status", sa.String(length=5), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "identity_status IN ('PROV', 'RECUP', 'VALI', 'QUAL')", name=op.f("ck_patient_status")
        ),
        _fk("patient", "created_by", _USER),
        _fk("patient", "group_id", "care_group.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient")),
        sa.UniqueConstraint("group_id", "ins_index", name=op.f("uq_patient_group_id")),
    )
    op.create_index(
        "ix_patient_name_birthdate", "patient", ["group_id", "name_birthdate_index"], unique=False
    )
    op.create_table(
        "opposition",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("informed_by", sa.Uuid(), nullable=False),
        sa.Column("informed_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("lifted_by", sa.Uuid(), nullable=True),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("scope IN ('group', 'professionals')", name=op.f("ck_opposition_scope")),
        sa.CheckConstraint("status IN ('active', 'inactive')", name=op.f("ck_opposition_status")),
        _fk("opposition", "group_id", "care_group.id"),
        _fk("opposition", "informed_by", _USER),
        _fk("opposition", "lifted_by", _USER),
        _fk("opposition", "patient_id", "patient.id"),
        _fk("opposition", "recorded_by", _USER),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opposition")),
    )
    op.create_index(op.f("ix_opposition_patient_id"), "opposition", ["patient_id"], unique=False)
    op.create_table(
        "opposition_professional",
        sa.Column("opposition_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _fk("opposition_professional", "opposition_id", "opposition.id"),
        _fk("opposition_professional", "user_id", _USER),
        sa.PrimaryKeyConstraint(
            "opposition_id", "user_id", name=op.f("pk_opposition_professional")
        ),
    )
    op.create_index(
        op.f("ix_opposition_professional_user_id"),
        "opposition_professional",
        ["user_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_opposition_professional_user_id"), table_name="opposition_professional")
    op.drop_table("opposition_professional")
    op.drop_index(op.f("ix_opposition_patient_id"), table_name="opposition")
    op.drop_table("opposition")
    op.drop_index("ix_patient_name_birthdate", table_name="patient")
    op.drop_table("patient")
    op.drop_index(op.f("ix_membership_user_id"), table_name="membership")
    op.drop_table("membership")
    op.drop_index(op.f("ix_invitation_group_id"), table_name="invitation")
    op.drop_table("invitation")
    op.drop_table("care_group")
