"""Decoding a posted body into the canonical application: JSON validated by msgspec in one pass,
the files' base64 decoded while parsing, and a lenient second pass for the sloppy base64 that
boards send (wrapped lines, data: URLs, url-safe, unpadded). Errors name the field at fault."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from typing import Any, TypeVar

import msgspec

from app.core.model import LIMIT_EXCEEDED, ApplicationIn
from app.core.problems import Problem

T = TypeVar("T")


_PATH_RE = re.compile(r"at `\$(.*)`")


_BASE64_ERROR = "Invalid base64 encoded string"


def invalid(exc: msgspec.ValidationError) -> Problem:
    """msgspec's message, with the JSON path it names as the field at fault."""
    message = str(exc)
    match = _PATH_RE.search(message)
    path = match.group(1).lstrip(".") if match else ""
    problem = Problem.invalid(path or "$", _PATH_RE.sub("", message).strip(" -"))
    if "length <=" in message:  # one of the caps of app/core/model.py
        problem.code = LIMIT_EXCEEDED
    return problem


def _is_base64_error(exc: msgspec.ValidationError) -> bool:
    return str(exc).startswith(_BASE64_ERROR)


def decode_with_files(body: bytes, kind: type[T]) -> T:
    """Parse and validate JSON as `kind`. Clean base64 files are decoded by msgspec in the same
    pass; when it refuses one, the body is parsed again as built-ins and its files decoded
    leniently (`decode_files_leniently`) before they are refused. Raises msgspec's DecodeError
    or ValidationError, or Problem for a file no decoder takes: callers word the refusal."""
    try:
        return _decoder_for(kind).decode(body)
    except msgspec.ValidationError as exc:
        if not _is_base64_error(exc):
            raise
    return convert_with_files(msgspec.json.decode(body), kind)  # the typed pass stopped at the file


def convert_with_files(document: Any, kind: type[T]) -> T:
    """`msgspec.convert`, with the same lenient second pass for the files of a parsed document."""
    try:
        return msgspec.convert(document, kind)
    except msgspec.ValidationError as exc:
        if not _is_base64_error(exc) or not decode_files_leniently(document):
            raise
    return msgspec.convert(document, kind)


_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder_for(kind: type[T]) -> msgspec.json.Decoder[T]:
    """One decoder per type, built on first use (a cache keyed by the type, as functools.cache
    was, but typed: functools.cache erased `kind` and its decoder's result to Any)."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return decoder


def decode_application(body: bytes) -> ApplicationIn:
    """The canonical JSON; errors name the field at fault (JSON path)."""
    try:
        return decode_with_files(body, ApplicationIn)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None


# Past this size a body is parsed in a thread: msgspec decodes the base64 of 20 MB of files in
# ~70 ms, long enough to hold every other request of the web process; in a thread the event loop
# waited ~1 ms at most meanwhile (measured on the test VM). docs/operations.md, "Bounded work".
OFF_LOOP_BYTES = 1_000_000


async def decode_application_off_loop(body: bytes) -> ApplicationIn:
    """`decode_application`, in a thread for a large body."""
    if len(body) < OFF_LOOP_BYTES:
        return decode_application(body)
    return await asyncio.to_thread(decode_application, body)


def convert_application(document: Any) -> ApplicationIn:
    """Validate a parsed document (built-in types) as the canonical application."""
    try:
        return convert_with_files(document, ApplicationIn)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None


def _file_objects(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """The file objects of a parsed application (or add-attachment action), with their paths."""
    if not isinstance(document, dict):
        return []
    found = [("attachment", document["attachment"])] if isinstance(document.get("attachment"), dict) else []
    attachments, answers = document.get("attachments"), document.get("screening_question_answers")
    if isinstance(attachments, list):
        found += [(f"attachments[{i}]", a) for i, a in enumerate(attachments) if isinstance(a, dict)]
    if isinstance(answers, list):
        found += [
            (f"screening_question_answers[{i}].answer", a["answer"])
            for i, a in enumerate(answers)
            if isinstance(a, dict) and isinstance(a.get("answer"), dict)
        ]
    return found


def decode_files_leniently(document: Any) -> bool:
    """Replace each file's base64 text in `document` by its bytes, decoded leniently (boards send
    line-wrapped base64, data: URLs, the url-safe alphabet, no padding); False if none was text."""
    changed = False
    for path, file in _file_objects(document):
        if isinstance(file.get("data"), str):
            file["data"] = decode_base64(file["data"], f"{path}.data")
            changed = True
    return changed


def decode_base64(data: str, field_path: str) -> bytes:
    """Lenient base64: whitespace, a data: URL prefix, the url-safe alphabet and missing padding
    are tolerated (boards do all of these); anything else is refused with the field."""
    try:  # clean standard base64 at C speed
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    cleaned = re.sub(r"\s+", "", data)
    if cleaned.startswith("data:") and ";base64," in cleaned[:200]:
        cleaned = cleaned.split(";base64,", 1)[1]
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return (
            base64.b64decode(cleaned, validate=True)
            if "-" not in cleaned and "_" not in cleaned
            else base64.urlsafe_b64decode(cleaned)
        )
    except (binascii.Error, ValueError):
        raise Problem.invalid(field_path, "is not valid base64") from None
