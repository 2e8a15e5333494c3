"""Hypothesis strategies and assertions shared by the crypto tests."""

from __future__ import annotations

import base64

from hypothesis import strategies as st

from hdsapp.core.crypto.aad import MAX_U32, MAX_U64, AssociatedData, RecordKind

ids = st.none() | st.text(min_size=1, max_size=12)
versions = st.none() | st.integers(0, MAX_U32)


@st.composite
def associated_data(draw: st.DrawFn) -> AssociatedData:
    chunk_index = draw(st.none() | st.integers(0, MAX_U64))
    return AssociatedData(
        kind=draw(st.sampled_from(RecordKind)),
        group_id=draw(ids),
        thread_id=draw(ids),
        record_id=draw(ids),
        author_id=draw(ids),
        kek_version=draw(versions),
        dek_version=draw(versions),
        chunk_index=chunk_index,
        last_chunk=chunk_index is not None and draw(st.booleans()),
    )


def assert_clean(exc: BaseException, *, secrets: list[bytes]) -> None:
    """No secret, in any usual rendering, in the exception or the exceptions chained to it."""
    texts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    for secret in secrets:
        forms = {
            secret.hex(),
            repr(secret),
            secret.decode("latin-1"),
            base64.b64encode(secret).decode(),
        }
        for form in forms:
            assert all(form not in text for text in texts), "secret leaked into an exception"
