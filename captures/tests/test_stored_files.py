"""Stored files: the storage columns, and truncated/corrupt .zst files never served as whole."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import pytest

from captures import storage
from captures.analysis import UnreadableFile, load_transaction
from captures.models import Transaction
from tests.factories import make_operation, stored_transaction

OPERATIONS = "/api/v1/captures/operations/"
TRANSACTIONS = "/api/v1/captures/transactions/"
DATA = os.urandom(50_000) + bytes(150_000)  # several zstd blocks, some incompressible


def stored_path(relative_path: str):
    return storage.storage_root() / relative_path


def truncate(record: Transaction, keep: int) -> None:
    path = stored_path(record.stored_path)
    path.write_bytes(path.read_bytes()[:keep])


def flip_byte(record: Transaction, offset: int) -> None:
    path = stored_path(record.stored_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def drain(chunks, into: list[bytes]) -> None:
    """Collect chunks until the stream ends or raises (what a client received so far)."""
    for chunk in chunks:
        into.append(chunk)


def test_transaction_fields_are_the_recorded_columns(db):
    record = stored_transaction(make_operation())
    stored = storage.StoredFile(
        relative_path=record.stored_path,
        size_before=record.size_before,
        size_after=record.size_after,
        sha256=record.sha256,
        level=record.level,
    )

    fields = stored.transaction_fields()

    assert fields == {name: getattr(record, name) for name in fields}
    assert set(fields) == {
        "stored_path",
        "is_compressed",
        "codec",
        "level",
        "size_before",
        "size_after",
        "sha256",
    }


def test_whole_file_decompresses_to_the_original():
    stored = storage.store_compressed(DATA, "pnm/test/whole.bin.zst", 3)

    data = b"".join(storage.iter_decompressed(stored.relative_path))

    assert hashlib.sha256(data).hexdigest() == stored.sha256 == hashlib.sha256(DATA).hexdigest()
    storage.check_stored_size(stored.relative_path, stored.size_after)  # no error


@pytest.mark.parametrize("keep", [0, 4, 20, 0.5, -1])
def test_truncated_file_raises_rather_than_ending_short(keep):
    stored = storage.store_compressed(DATA, "pnm/test/cut.bin.zst", 3)
    path = stored_path(stored.relative_path)
    compressed = path.read_bytes()
    cut = int(len(compressed) * keep) if isinstance(keep, float) else keep
    path.write_bytes(compressed[:cut])

    received: list[bytes] = []
    with pytest.raises(storage.StoredFileDamaged, match=r"truncated|corrupt"):
        drain(storage.iter_decompressed(stored.relative_path), received)
    assert DATA.startswith(b"".join(received))  # good chunks, then the error
    with pytest.raises(storage.StoredFileDamaged, match="recorded"):
        storage.check_stored_size(stored.relative_path, stored.size_after)


def test_corrupt_or_extended_file_raises():
    stored = storage.store_compressed(DATA, "pnm/test/bad.bin.zst", 3)
    path = stored_path(stored.relative_path)
    compressed = path.read_bytes()

    path.write_bytes(compressed[:-2] + bytes([compressed[-2] ^ 0xFF]) + compressed[-1:])
    with pytest.raises(storage.StoredFileDamaged, match="corrupt"):
        b"".join(storage.iter_decompressed(stored.relative_path))

    path.write_bytes(compressed + b"junk")
    with pytest.raises(storage.StoredFileDamaged, match="after its zstd frame"):
        b"".join(storage.iter_decompressed(stored.relative_path))


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [False, True])
def test_download_of_a_truncated_file_is_an_error_not_a_short_file(operator_client, raw):
    record = stored_transaction(make_operation())
    truncate(record, record.size_after // 2)

    params = {"raw": "1"} if raw else {}
    response = operator_client.get(f"{TRANSACTIONS}{record.transaction_id}/download/", params)

    assert response.status_code == 500
    assert response.json()["code"] == "stored_file_damaged"
    assert record.stored_path in response.json()["detail"]


@pytest.mark.django_db
def test_download_of_a_corrupt_file_of_the_right_length_aborts(operator_client):
    record = stored_transaction(make_operation())
    flip_byte(record, record.size_after - 2)  # inside the checksum: only the end can tell

    response = operator_client.get(f"{TRANSACTIONS}{record.transaction_id}/download/")

    assert response.status_code == 200  # the length matched; the stream itself must abort
    with pytest.raises(storage.StoredFileDamaged, match="corrupt"):
        b"".join(response.streaming_content)


@pytest.mark.django_db
def test_archive_aborts_on_a_truncated_member(operator_client):
    operation = make_operation()
    whole = stored_transaction(operation, tick=1)
    cut = stored_transaction(operation, tick=2)
    truncate(cut, cut.size_after - 5)

    response = operator_client.get(f"{OPERATIONS}{operation.operation_id}/archive/")
    assert response.status_code == 200
    received: list[bytes] = []
    with pytest.raises(storage.StoredFileDamaged, match="truncated"):
        drain(response.streaming_content, received)

    partial = b"".join(received)
    assert whole.filename.removesuffix(".zst").encode() in partial  # it had started streaming
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(partial))


@pytest.mark.django_db
def test_analysis_treats_a_truncated_file_as_unreadable():
    record = stored_transaction(make_operation())
    truncate(record, record.size_after - 5)

    with pytest.raises(UnreadableFile, match="truncated"):
        load_transaction(record)
