"""audit log: entries, tree nodes, head, signed checkpoints; append-only triggers

Revision ID: 0002_audit_log
Revises: 0001_foundation
Create Date: 2026-11-22

The audit tables refuse UPDATE, DELETE and TRUNCATE by trigger on both backends (PostgreSQL
triggers are ENABLE ALWAYS, so ``session_replication_role = replica`` does not skip them);
the head may only grow. If ``HDS_DB_APP_ROLE`` names an existing PostgreSQL role, those
privileges are also revoked from it (SECURITY.md, "Audit log").
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.compact_range import CompactRange
from hdsapp.config import load_settings
from hdsapp.core.db import UTCDateTime, utcnow

revision: str = "0002_audit_log"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("audit_entry", "audit_node", "audit_checkpoint")
HEAD = "audit_head"
_REJECT = "EXECUTE FUNCTION hds_audit_append_only()"
_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_audit_entry")),
    )
    for name, columns in (
        ("ix_audit_entry_group_position", ["group_id", "position"]),
        ("ix_audit_entry_group_patient", ["group_id", "patient_id", "position"]),
        ("ix_audit_entry_group_actor", ["group_id", "actor_id", "position"]),
        ("ix_audit_entry_group_action", ["group_id", "action", "position"]),
        ("ix_audit_entry_group_outcome", ["group_id", "outcome", "position"]),
        ("ix_audit_entry_recorded", ["recorded"]),
    ):
        op.create_index(name, "audit_entry", columns, unique=False)
    op.create_table(
        "audit_node",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "index", name=op.f("pk_audit_node")),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("compact", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("verifier_key", sa.String(length=300), nullable=False),
        sa.Column("signed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_checkpoint")),
    )
    op.bulk_insert(
        head,
        [{"id": 1, "tree_size": 0, "compact": CompactRange().encode(), "updated_at": utcnow()}],
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_guards()
    else:
        _sqlite_guards()


def _postgresql_guards() -> None:
    op.execute(
        """
        CREATE FUNCTION hds_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION hds_audit_head_grows() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.tree_size <= OLD.tree_size OR NEW.id <> OLD.id THEN
                RAISE EXCEPTION 'the audit head only grows: % to % refused',
                    OLD.tree_size, NEW.tree_size USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    for table in (*APPEND_ONLY, HEAD):
        rows = "UPDATE OR DELETE" if table != HEAD else "DELETE"
        for trigger, timing in (
            (f"{table}_append_only", f"BEFORE {rows} ON {table} FOR EACH ROW"),
            (f"{table}_no_truncate", f"BEFORE TRUNCATE ON {table} FOR EACH STATEMENT"),
        ):
            op.execute(
                f"CREATE TRIGGER {trigger} {timing} EXECUTE FUNCTION hds_audit_append_only()"
            )
            op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")
    op.execute(
        f"CREATE TRIGGER {HEAD}_grows BEFORE UPDATE ON {HEAD} FOR EACH ROW"
        " EXECUTE FUNCTION hds_audit_head_grows()"
    )
    op.execute(f"ALTER TABLE {HEAD} ENABLE ALWAYS TRIGGER {HEAD}_grows")
    role = _app_role()
    if role:
        exists = op.get_bind().execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
        )
        if exists.first() is not None:
            quoted = op.get_bind().dialect.identifier_preparer.quote(role)
            op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {', '.join(APPEND_ONLY)} FROM {quoted}")
            op.execute(f"REVOKE DELETE, TRUNCATE ON {HEAD} FROM {quoted}")


def _sqlite_guards() -> None:
    message = "the audit log is append-only"
    for table in APPEND_ONLY:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{message}: {operation} on {table} refused'); END"
            )
    op.execute(
        f"CREATE TRIGGER {HEAD}_no_delete BEFORE DELETE ON {HEAD}"
        f" BEGIN SELECT RAISE(ABORT, '{message}: DELETE on {HEAD} refused'); END"
    )
    op.execute(
        f"CREATE TRIGGER {HEAD}_grows BEFORE UPDATE ON {HEAD}"
        " WHEN NEW.tree_size <= OLD.tree_size OR NEW.id <> OLD.id"
        " BEGIN SELECT RAISE(ABORT, 'the audit head only grows'); END"
    )


def _app_role() -> str:
    # Read now, not from the cached settings: the role is the one of this migration run.
    role = load_settings().db_app_role
    if role and not _ROLE.fullmatch(role):
        raise ValueError("HDS_DB_APP_ROLE is not a plain PostgreSQL role name")
    return role


def downgrade() -> None:
    # DROP TABLE is neither DELETE nor TRUNCATE: the triggers go with their tables.
    for table in ("audit_checkpoint", "audit_head", "audit_node", "audit_entry"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hds_audit_append_only()")
        op.execute("DROP FUNCTION IF EXISTS hds_audit_head_grows()")
