"""keys: root versions, group KEKs, data keys, blind-index keys, the shred ledger

Revision ID: 0005_keys
Revises: 0001_foundation
Create Date: 2026-11-23

The key store of hdsapp.core.crypto.keyring. No key material in clear: every key column holds an
envelope made by the root key provider or by a KEK. No foreign keys to the domain tables (care
groups, threads): a key outlives nothing it protects, and shredding must work whatever the
domains do with their rows. ``shred_ledger`` refuses UPDATE, DELETE and TRUNCATE by trigger on
both backends, like the audit log (0002_audit_log); PostgreSQL triggers are ENABLE ALWAYS.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hdsapp.core.db import UTCDateTime

revision: str = "0005_keys"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEDGER = "shred_ledger"
_ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.create_table(
        "key_root_version",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("destroyed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'retired', 'destroyed')",
            name=op.f("ck_key_root_version_status"),
        ),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_key_root_version")),
    )
    op.create_table(
        "group_key",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("root_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("destroyed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'retired', 'destroyed')", name=op.f("ck_group_key_status")
        ),
        sa.CheckConstraint(
            "(wrapped IS NULL) = (status = 'destroyed')"
            " AND (root_version IS NULL) = (status = 'destroyed')",
            name=op.f("ck_group_key_destroyed_holds_nothing"),
        ),
        sa.PrimaryKeyConstraint("group_id", "version", name=op.f("pk_group_key")),
    )
    op.create_index(
        "uq_group_key_active",
        "group_key",
        ["group_id"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_index("ix_group_key_root_version", "group_key", ["root_version"])
    op.create_table(
        "data_key",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=True),
        sa.Column("kek_version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("seal_count", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=7), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'retired')", name=op.f("ck_data_key_status")),
        sa.CheckConstraint("seal_count >= 0", name=op.f("ck_data_key_seal_count")),
        sa.CheckConstraint(
            "(thread_id IS NULL AND owner_id = group_id)"
            " OR (thread_id IS NOT NULL AND owner_id = thread_id)",
            name=op.f("ck_data_key_owner"),
        ),
        sa.PrimaryKeyConstraint("owner_id", "version", name=op.f("pk_data_key")),
    )
    op.create_index(
        "uq_data_key_active",
        "data_key",
        ["owner_id"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_index("ix_data_key_group_kek", "data_key", ["group_id", "kek_version"])
    op.create_index("ix_data_key_thread_id", "data_key", ["thread_id"])
    op.create_table(
        "blind_index_key",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("root_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_blind_index_key")),
    )
    op.create_index("ix_blind_index_key_root_version", "blind_index_key", ["root_version"])
    op.create_table(
        LEDGER,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=True),
        sa.Column("shredded_at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("key_versions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shred_ledger")),
    )
    op.create_index("ix_shred_ledger_group_id", LEDGER, ["group_id"])
    op.create_index("ix_shred_ledger_thread_id", LEDGER, ["thread_id"])
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _postgresql_guards() -> None:
    op.execute(
        """
        CREATE FUNCTION hds_shred_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the shred ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for trigger, timing in (
        (f"{LEDGER}_append_only", f"BEFORE UPDATE OR DELETE ON {LEDGER} FOR EACH ROW"),
        (f"{LEDGER}_no_truncate", f"BEFORE TRUNCATE ON {LEDGER} FOR EACH STATEMENT"),
    ):
        op.execute(
            f"CREATE TRIGGER {trigger} {timing} EXECUTE FUNCTION hds_shred_ledger_append_only()"
        )
        op.execute(f"ALTER TABLE {LEDGER} ENABLE ALWAYS TRIGGER {trigger}")


def _sqlite_guards() -> None:
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {LEDGER}_no_{operation.lower()} BEFORE {operation} ON {LEDGER}"
            f" BEGIN SELECT RAISE(ABORT, 'the shred ledger is append-only:"
            f" {operation} on {LEDGER} refused'); END"
        )


def downgrade() -> None:
    # DROP TABLE is neither DELETE nor TRUNCATE: the triggers go with the table.
    for table in (LEDGER, "blind_index_key", "data_key", "group_key", "key_root_version"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hds_shred_ledger_append_only()")
