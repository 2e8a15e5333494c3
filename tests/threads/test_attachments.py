"""Attachments: sealed chunks in the blob store, types from the bytes, limits, streamed
downloads, and a failed upload that leaves no row and no blob."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from hdsapp.config import Settings
from hdsapp.core.db import Database
from hdsapp.threads import blobs, content
from hdsapp.threads.service import attachments
from tests.conftest import make_settings
from tests.threads.conftest import Ward

LIMIT = 64 * 1024
PDF = b"%PDF-1.7\n" + b"rapport de consultation UNIQUE-PDF-TEXT " * 40 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
DICOM = b"\x00" * 128 + b"DICM" + b"\x02\x00" * 40


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url, max_attachment_bytes=LIMIT)


def upload(
    ward: Ward,
    who: str,
    tid: str,
    data: bytes,
    *,
    filename: str = "compte-rendu.pdf",
    declared: str = "application/pdf",
    fields: dict[str, str] | None = None,
) -> Any:
    form = {"document_type": "report"} if fields is None else fields
    return ward.call(
        "POST",
        who,
        f"/api/v1/threads/{tid}/attachments",
        files={"file": (filename, data, declared)},
        data=form,
    )


def blob_files(settings: Settings) -> list[Path]:
    return [p for p in settings.blob_path.rglob("*") if p.is_file()]


def test_upload_and_download(ward: Ward, settings: Settings) -> None:
    tid = ward.open()["id"]
    before = ward.world.audit_count()
    posted = upload(
        ward, "doc", tid, PDF, fields={"document_type": "report", "body": "CR de la consult"}
    )
    assert posted.status_code == 201, posted.text
    assert ward.world.audit_count() == before + 1
    message = posted.json()
    assert (message["seq"], message["body"]) == (1, "CR de la consult")
    attachment = message["attachment"]
    assert attachment["content_type"] == "application/pdf"
    assert attachment["document_type"] == "report"
    assert (attachment["size"], attachment["filename"]) == (len(PDF), "compte-rendu.pdf")
    listed = ward.messages("nurse", tid).json()["items"]
    assert listed[0]["attachment"] == attachment
    before = ward.world.audit_count()
    download = ward.call("GET", "nurse", f"/api/v1/attachments/{attachment['id']}")
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["cache-control"] == "no-store"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "compte-rendu.pdf" in download.headers["content-disposition"]
    assert ward.world.audit_count() == before + 1
    entry = ward.world.audit_tail()[0]
    assert (entry["kind"], entry["outcome"]) == ("read", 0)
    # Sealed at rest: neither the content nor the file name is readable in the store or the DB.
    files = blob_files(settings)
    assert len(files) == 1
    assert b"UNIQUE-PDF-TEXT" not in files[0].read_bytes()
    with ward.world.database.session() as session:
        row = session.execute(text("SELECT filename FROM attachment")).scalar_one()
    assert b"compte-rendu" not in bytes(row)
    for who, status in (("pharma", 403), ("outsider", 404), ("auditor", 403)):
        refused = ward.call("GET", who, f"/api/v1/attachments/{attachment['id']}")
        assert refused.status_code == status, who
    assert ward.call("GET", "doc", f"/api/v1/attachments/{uuid.uuid4()}").status_code == 404


def test_large_files_go_in_several_chunks(
    ward: Ward, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attachments, "ATTACHMENT_CHUNK_BYTES", 1000)
    tid = ward.open()["id"]
    posted = upload(ward, "doc", tid, PNG, filename="plaie.png", fields={"document_type": "photo"})
    assert posted.status_code == 201, posted.text
    aid = posted.json()["attachment"]["id"]
    assert posted.json()["attachment"]["content_type"] == "image/png"
    with ward.world.database.session() as session:
        assert session.execute(text("SELECT chunk_size FROM attachment")).scalar_one() == 1000
    assert ward.call("GET", "nurse", f"/api/v1/attachments/{aid}").content == PNG
    # Tampering with the stored chunks is detected.
    (path,) = blob_files(settings)
    sealed = path.read_bytes()
    assert len(sealed) > len(PNG)
    path.write_bytes(sealed[:-5])
    # The stream stops at the bad chunk: the client never gets a complete, altered file.
    with pytest.raises(Exception, match=r"already started|authentication|integrity"):
        ward.call("GET", "nurse", f"/api/v1/attachments/{aid}")


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(PDF, "application/pdf"), (PNG, "image/png"), (JPEG, "image/jpeg"), (HEIC, "image/heic")],
)
def test_types_come_from_the_bytes(data: bytes, media_type: str) -> None:
    assert content.detect(data[: content.SNIFF_BYTES]) == media_type


def test_dicom_is_optional() -> None:
    assert content.detect(DICOM) == "application/dicom"
    assert content.detect(DICOM, allow_dicom=False) is None
    for other in (b"hello", b"GIF89a....", b"PK\x03\x04zip", b"", b"%PD"):
        assert content.detect(other) is None


def test_bad_uploads_are_refused_audited_and_store_nothing(ward: Ward, settings: Settings) -> None:
    tid = ward.open(participants=("nurse",))["id"]
    closed = ward.open(participants=())["id"]
    ward.call("PATCH", "doc", f"/api/v1/threads/{closed}", json={"status": "closed"})
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("doc", tid, {"data": b"just some text", "declared": "application/pdf"}, 415, "type"),
        ("doc", tid, {"data": b"MZ\x90\x00 an executable"}, 415, "type-not-allowed"),
        ("doc", tid, {"data": b"%PDF-" + b"x" * LIMIT}, 413, "attachment-too-large"),
        ("doc", tid, {"data": b""}, 422, "empty-attachment"),
        ("doc", tid, {"data": PDF, "fields": {}}, 422, "invalid-type"),
        ("doc", tid, {"data": PDF, "fields": {"document_type": "selfie"}}, 422, "invalid-type"),
        (
            "doc",
            tid,
            {"data": PDF, "fields": {"document_type": "report", "client_id": "a b"}},
            422,
            "invalid-client-id",
        ),
        (
            "doc",
            tid,
            {"data": PDF, "fields": {"document_type": "report", "surprise": "x"}},
            422,
            "invalid-upload",
        ),
        ("pharma", tid, {"data": PDF}, 403, "forbidden-not-participant"),
        ("outsider", tid, {"data": PDF}, 404, "not-found"),
        ("doc", closed, {"data": PDF}, 403, "forbidden-thread-not-open"),
    ]
    for who, thread, kwargs, status, code in cases:
        before = ward.world.audit_count()
        response = upload(ward, who, thread, **kwargs)
        assert response.status_code == status, (code, response.text)
        assert code in response.json()["type"], response.text
        assert ward.world.audit_count() == before + 1, code
        assert ward.world.audit_tail()[0]["outcome"] in {4, 8}
    # Not multipart at all.
    raw = ward.call(
        "POST",
        "doc",
        f"/api/v1/threads/{tid}/attachments",
        content=PDF,
        headers={"Content-Type": "application/pdf"},
    )
    assert raw.status_code == 422
    assert ward.count("attachment") == 0
    assert ward.count("message") == 0
    assert blob_files(settings) == []


def test_the_same_client_id_returns_the_same_attachment(ward: Ward, settings: Settings) -> None:
    tid = ward.open()["id"]
    fields = {"document_type": "ecg", "client_id": "ecg-upload-1"}
    first = upload(ward, "doc", tid, PDF, fields=fields)
    assert first.status_code == 201
    again = upload(ward, "doc", tid, PDF, fields=fields)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert ward.count("attachment") == 1
    assert len(blob_files(settings)) == 1


def test_a_failed_upload_leaves_no_row_and_no_blob(
    ward: Ward, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = ward.open()["id"]
    written: list[str] = []
    real_put = blobs.FilesystemBlobStore.put

    def put(self: blobs.FilesystemBlobStore, key: str, chunks: Any) -> int:
        written.append(key)
        return real_put(self, key, chunks)

    def fail(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(blobs.FilesystemBlobStore, "put", put)
    monkeypatch.setattr(attachments, "_insert_message", fail)
    before = ward.world.audit_count()
    response = upload(ward, "doc", tid, PDF)
    assert response.status_code == 500
    assert written  # the blob was written, then removed with the rollback
    assert blob_files(settings) == []
    assert ward.count("attachment") == 0
    assert ward.count("message") == 0
    assert ward.world.audit_count() == before + 1
    assert ward.world.audit_tail()[0]["outcome"] == 8


def test_blobs_follow_the_transaction(database: Database, tmp_path: Path) -> None:
    store = blobs.FilesystemBlobStore(tmp_path / "blobs")

    def failing_upload() -> None:
        with database.unit_of_work() as session:
            store.put("rolled-back", [b"sealed"])
            blobs.delete_on_rollback(session, store, "rolled-back")
            session.execute(text("SELECT 1"))
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        failing_upload()
    assert not store.exists("rolled-back")
    with database.unit_of_work() as session:
        store.put("committed", [b"sealed"])
        blobs.delete_on_rollback(session, store, "committed")
        session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError), session.begin_nested():
            raise RuntimeError("a savepoint rolls back, the transaction goes on")
    assert store.exists("committed")
    with store.open("committed") as stream:
        assert stream.read() == b"sealed"
    store.delete("committed")
    store.delete("committed")
    assert not store.exists("committed")
    with pytest.raises(ValueError, match="blob key"):
        store.put("../escape", [b"x"])
    (tmp_path / "blobs" / "tmp" / "old.part").write_bytes(b"x")
    assert store.sweep_temporary(older_than_seconds=-1) == 1
