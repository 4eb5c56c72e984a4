"""Career-site forms: `multipart/form-data` in the conventions hand-built career forms and form
tools use (Greenhouse/Lever style; docs/inbound.md), parsed as a stream.

    first_name, last_name (or name), email, phone     the candidate
    resume, cover_letter                               file parts (cover_letter may also be text)
    attachments / attachments[]                        more files (type OTHER)
    question_<id>, question_<id>[]                     answers by ATS question id; [] = several options;
                                                       a file part named question_<id> is a file answer
    source, gdpr_consent                               optional
    form_token                                         the per-form token, if not sent as X-Form-Token

Connection settings:
    form_token_env = "ACME_FORM_TOKENS"     # token(s), comma-separated; unset → the route answers 404
    form_thank_you_url = "https://..."      # where a browser is sent (303) once the application is stored
    form_honeypot_field = "website"         # a field humans never fill (hidden by CSS)
    form_rate_limit = 10                    # posts per client IP per window
    form_rate_window_s = 60
    form_trusted_proxy_hops = 0             # proxies in front of the relay (X-Forwarded-For)
    form_source_name = "Career site"        # the source written when the form sends none

Streaming: parts are parsed as the body arrives (python-multipart's push parser), limits checked
as bytes arrive. With a `Stager` (the relay's route, app/delivery/staging.py) each file part goes
to the blob store as it arrives, sealed, and is never held whole (a PDF or an image: only its
two ends are kept, for the type check); without one (tests of the parser) each file is collected
once in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from app.blobs.store import BlobUnavailable
from app.config import Connection
from app.core.problems import Problem
from app.delivery.staging import FileSink, StagedFile, Stager
from app.intake.boards.draft import Draft, FileValue, check_file_size, split_name, truthy

MAX_FIELD_BYTES = 100_000  # one text field (an answer may be 20,000 characters of any script)
MAX_FIELDS_BYTES = 1_000_000  # all text fields together
MAX_PARTS = 300
# File parts in one post (20 attachments and some file answers): each is a blob written as it
# arrives (app/delivery/staging.py), so a post of hundreds of tiny files is refused while parsing.
MAX_FILE_PARTS = 40
TOKEN_FIELD = "form_token"  # noqa: S105 - a field name, not a secret
TOKEN_HEADER = "x-form-token"  # noqa: S105
_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUESTION = re.compile(r"^question_(.+?)(\[\])?$")
_EXT_VALUE = re.compile(r"^([A-Za-z0-9!#$%&+^_`{}~-]*)'[A-Za-z0-9-]*'(.*)$", re.DOTALL)  # charset'lang'chars
_EXT_CHARSETS = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)  # a staged file's: what is not written yet
    size: int = 0
    sink: FileSink | None = None  # a file part on its way to the blob store
    staged: StagedFile | None = None  # ... and once it is all there

    def file(self) -> bytes | StagedFile:
        """A file part's bytes, or the blob they went to."""
        return self.staged if self.staged is not None else bytes(self.data)


@dataclass
class ParsedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Part]] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


def disposition(value: str) -> tuple[str | None, str | None]:
    """(name, filename) of a part. Browsers send UTF-8 names raw, with `"`, CR and LF
    percent-encoded (HTML's multipart rules); `filename*` (RFC 8187: `charset'lang'%xx...`) is
    honoured too; when it cannot be read the part's plain `filename` stands in (RFC 6266 4.3),
    and without one it is refused (400 naming the part): a sender's file name must not turn its
    file into a text field, nor its bytes into a 500."""
    params: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"')
        params[key] = raw
    name, filename = params.get("name"), params.get("filename")
    if name is not None:
        name = name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
    if filename is not None:
        filename = filename.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
    if "filename*" in params and name:  # no name: refused as such by the caller
        try:
            filename = _ext_value(params["filename*"], name[:256])
        except Problem:
            # RFC 6266 4.3 and appendix D: filename* wins when it can be read; a sender adds a
            # plain filename as the fallback for a recipient that cannot read it, so use that one
            if filename is None:
                raise
    return name, filename


def _ext_value(value: str, part: str) -> str:
    """An RFC 8187 ext-value, decoded in the charset it names: UTF-8 or ISO-8859-1, the two a
    recipient must support (an unknown one cannot be read right, so it is not guessed)."""
    match = _EXT_VALUE.match(value)
    if match is None:
        raise _malformed(part, "filename* is not charset'language'value (RFC 8187)")
    charset = _EXT_CHARSETS.get(match.group(1).lower())
    if charset is None:
        raise _malformed(part, "filename* charset must be UTF-8 or ISO-8859-1")
    try:
        return unquote(match.group(2), encoding=charset, errors="strict")
    except UnicodeDecodeError:
        raise _malformed(part, f"filename* is not valid {match.group(1)} once percent-decoded") from None


def _malformed(part: str, message: str) -> Problem:
    """A part's headers that cannot be read: a 400 like the route's other malformed bodies."""
    return Problem.invalid(part, message, status=400, title="Malformed form")


class MultipartStream:
    """Feed body chunks; get the fields and files. Limits raise 413 as soon as they are passed."""

    def __init__(self, content_type: str, connection: Connection, stager: Stager | None = None) -> None:
        try:
            ctype, params = parse_options_header(content_type)
        except Exception:  # a header python-multipart cannot even split
            ctype, params = b"", {}
        if ctype != b"multipart/form-data":
            raise Problem(
                415,
                "Unsupported media type",
                'send multipart/form-data (an HTML form with enctype="multipart/form-data")',
            )
        boundary = params.get(b"boundary")
        if not boundary or len(boundary) > 200:
            raise Problem(400, "Malformed form", "Content-Type: the multipart boundary is missing")
        self.limits = connection.limits
        self.form = ParsedForm()
        self.stager = stager
        self._ended: list[Part] = []  # file parts ended since the last `drain`
        self._part: Part | None = None
        self._headers: dict[str, str] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._parts = 0
        self._file_parts = 0
        self._fields_bytes = 0
        self._files_bytes = 0
        try:
            self.parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": self._on_part_begin,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                },
                max_header_count=20,
                max_header_size=8192,
            )
        except (FormParserError, ValueError):
            raise Problem(400, "Malformed form", "Content-Type: invalid multipart boundary") from None

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except (MultipartParseError, FormParserError):
            raise Problem(400, "Malformed form", "the multipart body is malformed") from None

    async def drain(self) -> None:
        """With a stager: write what the last `feed` gave file parts to the blob store (the
        parser's callbacks cannot wait), and commit each file part that ended. At most one
        body chunk of a file is in memory at a time."""
        if self.stager is None:
            return
        try:
            ended, self._ended = self._ended, []
            current = self._part if self._part is not None and self._part.filename is not None else None
            for part in [*ended, *([current] if current is not None else [])]:
                if part.data:
                    if part.sink is None:
                        part.sink = await self.stager.open()
                    await part.sink.write(bytes(part.data))
                    part.data = bytearray()
            for part in ended:
                if part.sink is not None:
                    part.staged = await self.stager.close(part.sink)
        except BlobUnavailable as exc:
            self.stager.mark(exc)
            raise

    def finish(self) -> ParsedForm:
        if self.parser.state != MultipartState.END:
            raise Problem(400, "Malformed form", "the multipart body ended before its closing boundary")
        return self.form

    # -- parser callbacks ---------------------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise Problem(413, "Form too large", f"more than {MAX_PARTS} form fields")
        self._headers = {}
        self._part = None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").strip().lower()] = _text(bytes(self._header_value))
        self._header_field, self._header_value = bytearray(), bytearray()

    def _on_headers_finished(self) -> None:
        name, filename = disposition(self._headers.get("content-disposition", ""))
        if not name:
            raise Problem(400, "Malformed form", "a form part has no name")
        content_type = self._headers.get("content-type")
        if filename is not None:
            self._file_parts += 1
            if self._file_parts > MAX_FILE_PARTS:
                raise Problem(413, "Form too large", f"more than {MAX_FILE_PARTS} files")
        self._part = Part(name=name[:256], filename=filename, content_type=content_type)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert part is not None
        size = end - start
        if part.filename is not None:
            self._files_bytes += size
            part.size += size
            if part.size > self.limits.max_file_bytes:
                raise Problem.invalid(part.name, f"file larger than {self.limits.max_file_bytes} bytes", 413)
            if self._files_bytes > self.limits.max_application_bytes:
                raise Problem.invalid(part.name, f"files exceed {self.limits.max_application_bytes} bytes", 413)
        else:
            self._fields_bytes += size
            if len(part.data) + size > MAX_FIELD_BYTES:
                raise Problem.invalid(part.name, f"longer than {MAX_FIELD_BYTES} bytes", 413)
            if self._fields_bytes > MAX_FIELDS_BYTES:
                raise Problem(413, "Form too large", f"text fields exceed {MAX_FIELDS_BYTES} bytes")
        part.data += memoryview(data)[start:end]

    def _on_part_end(self) -> None:
        part = self._part
        if part is None:
            return
        if part.filename is not None:
            if self.stager is not None:
                self._ended.append(part)
            if part.filename or part.size:  # a file input left empty sends filename="" and no bytes
                self.form.files.setdefault(part.name, []).append(part)
        else:
            try:
                text = part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise Problem.invalid(part.name, "is not UTF-8 text") from None
            self.form.fields.setdefault(part.name, []).append(text)
        self._part = None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# -- the canonical application --------------------------------------------------------------------


FIELD_NAMES = {
    "candidate.first_name": "first_name",
    "candidate.last_name": "last_name",
    "candidate.email_address": "email",
    "candidate.phone_number": "phone",
    "source.name": "source",
    "application.job_id": "job_id",
    "screening_question_answers": "question",
    "attachments": "files",
}
FILE_TYPES = {
    "resume": "CV",
    "cv": "CV",
    "cover_letter": "COVER_LETTER",
    "attachments": "OTHER",
    "attachments[]": "OTHER",
    "attachment": "OTHER",
}


def to_application(form: ParsedForm, connection: Connection, job_id: str) -> Draft:
    """The draft application (`.build()` validates it, `.rename()` names refusals by form field)."""
    first, last = (form.value("first_name") or "").strip(), (form.value("last_name") or "").strip()
    if not (first and last) and (form.value("name") or "").strip():
        first, last = split_name(form.value("name") or "")
    for name, value in (("first_name", first), ("last_name", last), ("email", form.value("email"))):
        if not (value or "").strip():
            raise Problem.invalid(name, "required")
    phone = (form.value("phone") or "").strip() or None
    source = (form.value("source") or "").strip() or connection.inbound.form_source_name
    draft = Draft(
        connection_id=connection.id,
        job_id=job_id,
        field_names=FIELD_NAMES,
        candidate={
            "first_name": first,
            "last_name": last,
            "email_address": (form.value("email") or "").strip(),
            "phone_number": phone,
        },
        source={"name": source},
    )
    if truthy(form.value("gdpr_consent")):
        draft.gdpr_consent = {"given": True}
    for name in (kind for kind in FILE_TYPES if kind != "cover_letter"):  # text where a file belongs: lost
        if any(value.strip() for value in form.fields.get(name, [])):
            raise Problem.invalid(name, "must be sent as a file (a file input), not as text")
    letter = (form.value("cover_letter") or "").strip()
    if letter:
        draft.add_attachment("cover_letter.txt", "COVER_LETTER", "text/plain", letter.encode(), "cover_letter")
    answers: dict[str, tuple[str, list[str] | str | FileValue]] = {}
    for name, values in form.fields.items():
        match = _QUESTION.match(name)
        if not match:
            continue
        qid, several = match.group(1), bool(match.group(2))
        kept = [v for v in values if v != ""]
        if several and kept:
            answers[qid] = (name, kept)
        elif kept:
            answers[qid] = (name, kept[0] if len(kept) == 1 else kept)
    for name, parts in form.files.items():
        match = _QUESTION.match(name)
        if match and not match.group(2):
            part = parts[0]
            check_file_size(part.size, connection, name)
            answers[match.group(1)] = (name, FileValue(part.filename or "file", part.content_type, part.file()))
            continue
        kind = FILE_TYPES.get(name)
        if kind is None:
            raise Problem.invalid(name, "unexpected file field (resume, cover_letter, attachments, question_<id>)")
        for part in parts:
            part_name = part.filename or {"CV": "resume", "COVER_LETTER": "cover_letter"}.get(kind, "attachment")
            data = part.file()
            part.data = bytearray()  # one copy of the file at a time
            draft.add_attachment(part_name, kind, part.content_type, data, name)
    for qid, (name, answer) in answers.items():
        if len(qid) > 200:
            raise Problem.invalid(f"question_{qid[:40]}…", "question id longer than 200 characters")
        draft.add_answer(qid, answer, name)
    return draft
