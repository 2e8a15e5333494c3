"""Use cases of case threads: threads, participants, messages, read state, attachments, tasks and
break-the-glass.

Every use case runs inside ``accesslog.audited`` (one entry per call, refusals and bad input
included), asks the policy (``hdsapp/policy/rules.toml``) with what it knows about the thread —
is the caller a participant, do they hold an unexpired break-the-glass grant, is the thread open,
does an opposition of the patient cover them — and never commits.

Content is sealed with the thread's data key (the key store picks it from the associated data):
titles bound to the thread, message bodies to group, thread, message id and author, task
descriptions to the task, attachment contents chunk by chunk to the attachment. Reads under a
break-the-glass grant are recorded with purpose of use ETREAT, the legal basis
``emergency-access`` and the grant they rely on.

Posting: the thread row is locked (``repository.lock_thread``) before the next ``seq`` is
taken, so seqs are gap-free and never fork while posts to other threads proceed; a
``client_id`` already used in the thread returns the message it made (under the lock the second
poster sees the first's commit; the unique constraint is the backstop, caught in a savepoint).

The use cases live in one module per part (``threads``, ``participants``, ``messages``,
``attachments``, ``tasks``, ``grants``, ``events``, ``demo``) over ``common``; this package is
their one door.
"""

from hdsapp.threads.service.attachments import (
    Download,
    Upload,
    download_attachment,
    upload_attachment,
)
from hdsapp.threads.service.common import (
    ATTACHMENT_CHUNK_BYTES,
    CLIENT_ID,
    DEFAULT_STATUSES,
    EMERGENCY,
    LOCAL_PATIENT,
    MAX_BODY_CHARS,
    MAX_FILENAME_CHARS,
    MAX_REASON_CHARS,
    MAX_REFERENCE_CHARS,
    MAX_TASK_CHARS,
    MAX_TITLE_CHARS,
    MIN_REASON_CHARS,
    TASK_TRANSITIONS,
    THREAD_STATUSES,
    Keyring,
    ThreadAccess,
    authorize,
    not_found,
    patient_reference,
)
from hdsapp.threads.service.demo import DEMO_PDF, DEMO_THREADS, DemoThread, seed_demo_threads
from hdsapp.threads.service.events import (
    EVENTS_QUERY,
    EVENTS_RETRY_MS,
    Counters,
    EventStream,
    open_events,
)
from hdsapp.threads.service.grants import break_glass
from hdsapp.threads.service.messages import (
    Posted,
    get_message,
    list_messages,
    mark_read,
    post_message,
    search_messages,
)
from hdsapp.threads.service.participants import (
    add_participant,
    list_participants,
    remove_participant,
)
from hdsapp.threads.service.tasks import (
    create_task,
    get_task,
    list_tasks,
    my_tasks,
    search_tasks,
    update_task,
)
from hdsapp.threads.service.threads import (
    CareTeam,
    CareTeamList,
    ThreadFilter,
    get_care_team,
    get_thread,
    list_threads,
    open_thread,
    search_care_teams,
    update_thread,
)

__all__ = [
    "ATTACHMENT_CHUNK_BYTES",
    "CLIENT_ID",
    "DEFAULT_STATUSES",
    "DEMO_PDF",
    "DEMO_THREADS",
    "EMERGENCY",
    "EVENTS_QUERY",
    "EVENTS_RETRY_MS",
    "LOCAL_PATIENT",
    "MAX_BODY_CHARS",
    "MAX_FILENAME_CHARS",
    "MAX_REASON_CHARS",
    "MAX_REFERENCE_CHARS",
    "MAX_TASK_CHARS",
    "MAX_TITLE_CHARS",
    "MIN_REASON_CHARS",
    "TASK_TRANSITIONS",
    "THREAD_STATUSES",
    "CareTeam",
    "CareTeamList",
    "Counters",
    "DemoThread",
    "Download",
    "EventStream",
    "Keyring",
    "Posted",
    "ThreadAccess",
    "ThreadFilter",
    "Upload",
    "add_participant",
    "authorize",
    "break_glass",
    "create_task",
    "download_attachment",
    "get_care_team",
    "get_message",
    "get_task",
    "get_thread",
    "list_messages",
    "list_participants",
    "list_tasks",
    "list_threads",
    "mark_read",
    "my_tasks",
    "not_found",
    "open_events",
    "open_thread",
    "patient_reference",
    "post_message",
    "remove_participant",
    "search_care_teams",
    "search_messages",
    "search_tasks",
    "seed_demo_threads",
    "update_task",
    "update_thread",
    "upload_attachment",
]
