"""threads: case threads, participants, messages (gap-free seq, idempotent client ids), read
positions, attachments, tasks, break-the-glass grants and notification events

Revision ID: 0006_threads
Revises: 0004_groups_patients
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hdsapp.core.db import UTCDateTime

revision: str = "0006_threads"
down_revision: str | Sequence[str] | None = "0004_groups_patients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "thread",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("patient_reference", sa.String(length=2048), nullable=False),
        sa.Column("title", sa.LargeBinary(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_activity_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("priority IN ('routine', 'urgent')", name=op.f("ck_thread_priority")),
        sa.CheckConstraint(
            "status IN ('open', 'closed', 'archived')", name=op.f("ck_thread_status")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["user_account.id"], name=op.f("fk_thread_created_by_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["care_group.id"], name=op.f("fk_thread_group_id_care_group")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_thread_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thread")),
    )
    op.create_index(
        "ix_thread_group_activity", "thread", ["group_id", "last_activity_at"], unique=False
    )
    op.create_index(op.f("ix_thread_patient_id"), "thread", ["patient_id"], unique=False)
    op.create_table(
        "break_glass_grant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["thread.id"], name=op.f("fk_break_glass_grant_thread_id_thread")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_break_glass_grant_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_grant")),
    )
    op.create_index(
        "ix_break_glass_grant_thread_user",
        "break_glass_grant",
        ["thread_id", "user_id"],
        unique=False,
    )
    op.create_table(
        "message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("corrects_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["user_account.id"], name=op.f("fk_message_author_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["corrects_id"], ["message.id"], name=op.f("fk_message_corrects_id_message")
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["thread.id"], name=op.f("fk_message_thread_id_thread")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
        sa.UniqueConstraint("thread_id", "client_id", name="uq_message_thread_client_id"),
        sa.UniqueConstraint("thread_id", "seq", name="uq_message_thread_seq"),
    )
    op.create_table(
        "notification_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["user_account.id"],
            name=op.f("fk_notification_event_actor_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["care_group.id"], name=op.f("fk_notification_event_group_id_care_group")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["user_account.id"],
            name=op.f("fk_notification_event_recipient_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["thread.id"], name=op.f("fk_notification_event_thread_id_thread")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_event")),
    )
    op.create_index(
        op.f("ix_notification_event_recipient_id"),
        "notification_event",
        ["recipient_id"],
        unique=False,
    )
    op.create_table(
        "read_position",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["thread.id"], name=op.f("fk_read_position_thread_id_thread")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_read_position_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_read_position")),
        sa.UniqueConstraint("thread_id", "user_id", name=op.f("uq_read_position_thread_id")),
    )
    op.create_index(op.f("ix_read_position_user_id"), "read_position", ["user_id"], unique=False)
    op.create_table(
        "task",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.LargeBinary(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('requested', 'accepted', 'in-progress', 'completed', 'cancelled')",
            name=op.f("ck_task_status"),
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["user_account.id"], name=op.f("fk_task_assignee_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["user_account.id"], name=op.f("fk_task_created_by_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["thread.id"], name=op.f("fk_task_thread_id_thread")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
    )
    op.create_index("ix_task_assignee_status", "task", ["assignee_id", "status"], unique=False)
    op.create_index(op.f("ix_task_thread_id"), "task", ["thread_id"], unique=False)
    op.create_table(
        "thread_participant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("visible_from_seq", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.Uuid(), nullable=True),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.Column("removed_by", sa.Uuid(), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["added_by"],
            ["user_account.id"],
            name=op.f("fk_thread_participant_added_by_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["removed_by"],
            ["user_account.id"],
            name=op.f("fk_thread_participant_removed_by_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["thread.id"], name=op.f("fk_thread_participant_thread_id_thread")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_thread_participant_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thread_participant")),
        sa.UniqueConstraint("thread_id", "user_id", name=op.f("uq_thread_participant_thread_id")),
    )
    op.create_index(
        op.f("ix_thread_participant_user_id"), "thread_participant", ["user_id"], unique=False
    )
    op.create_table(
        "attachment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("document_type", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename", sa.LargeBinary(), nullable=False),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "document_type IN ('report', 'prescription', 'photo', 'ecg', 'imaging', "
            "'lab-result', 'letter', 'other')",
            name=op.f("ck_attachment_document_type"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_attachment_message_id_message")
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["thread.id"], name=op.f("fk_attachment_thread_id_thread")
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"],
            ["user_account.id"],
            name=op.f("fk_attachment_uploaded_by_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
        sa.UniqueConstraint("message_id", name=op.f("uq_attachment_message_id")),
    )
    op.create_index(op.f("ix_attachment_thread_id"), "attachment", ["thread_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_attachment_thread_id"), table_name="attachment")
    op.drop_table("attachment")
    op.drop_index(op.f("ix_thread_participant_user_id"), table_name="thread_participant")
    op.drop_table("thread_participant")
    op.drop_index(op.f("ix_task_thread_id"), table_name="task")
    op.drop_index("ix_task_assignee_status", table_name="task")
    op.drop_table("task")
    op.drop_index(op.f("ix_read_position_user_id"), table_name="read_position")
    op.drop_table("read_position")
    op.drop_index(op.f("ix_notification_event_recipient_id"), table_name="notification_event")
    op.drop_table("notification_event")
    op.drop_table("message")
    op.drop_index("ix_break_glass_grant_thread_user", table_name="break_glass_grant")
    op.drop_table("break_glass_grant")
    op.drop_index(op.f("ix_thread_patient_id"), table_name="thread")
    op.drop_index("ix_thread_group_activity", table_name="thread")
    op.drop_table("thread")
