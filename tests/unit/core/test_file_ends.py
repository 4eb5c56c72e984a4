"""A large binary file is checked by its two ends (app/core/files.py `decided_by_ends`): what the
form route keeps of a file it streams to the blob store (app/delivery/staging.py)."""

from __future__ import annotations

import os

import pytest
from puremagic import main as puremagic_main

from app.core import files
from tests.support.builders import DOCX_BYTES, PDF_BYTES

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def test_the_ends_cover_what_puremagic_reads() -> None:
    head, foot = puremagic_main._max_lengths()
    assert head <= files.PROBE_HEAD and foot <= files.PROBE_TAIL


@pytest.mark.parametrize(
    "data",
    [
        PDF_BYTES + os.urandom(1 << 20),
        PNG_HEAD + os.urandom(1 << 20),
        b"%PDF-1.4\n" + os.urandom(300_000) + b"\nMZ\x90\x00 an exe at the end",
    ],
)
def test_a_binary_file_is_judged_by_its_ends_as_by_all_of_it(data: bytes) -> None:
    assert files.decided_by_ends(data[: files.PROBE_HEAD])
    ends = files.sniff_ends(data[: files.PROBE_HEAD], data[-files.PROBE_TAIL :])
    assert ends == files.sniff(data)


@pytest.mark.parametrize(
    "data",
    [
        DOCX_BYTES,  # a zip: its central directory and parts are needed
        b"plain text CV " * 10_000,  # text: all of it is decoded and scanned
        b"MZ\x90\x00" + os.urandom(100_000),  # an executable's signature: refused whole
        os.urandom(100_000),  # unknown: judged by all of it
        b"",
    ],
)
def test_anything_else_is_kept_whole_to_be_checked(data: bytes) -> None:
    assert not files.decided_by_ends(data[: files.PROBE_HEAD])
