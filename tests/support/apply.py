"""The apply pages' tests without a browser: the page's form parsed as a browser would see it
(stdlib html.parser), filled by field type, posted with httpx as multipart; and, per ATS, the job
with questions, the answers a candidate gives and what the relay must store (typed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx

from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import PDF_BYTES, connection_table
from tests.support.inbound import inbound_connection

BROWSER = {"accept": "text/html,application/xhtml+xml", "accept-language": "en"}


@dataclass
class Control:
    tag: str
    name: str
    type: str
    value: str = ""
    options: list[str] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    checked: bool = False
    group: dict[str, str] = field(default_factory=dict)  # the attributes of its fieldset, if any


@dataclass
class Form:
    action: str
    controls: list[Control]
    html: str

    def described(self, name: str) -> dict[str, str]:
        """The attributes that describe field `name` (aria-invalid, aria-describedby): the control's
        own, or its fieldset's for a group of radios or checkboxes."""
        controls = self.named(name) or self.named(name + "[]")
        assert controls, name
        first = controls[0]
        return first.attrs if len(controls) == 1 and first.type != "radio" else first.group

    def named(self, name: str) -> list[Control]:
        return [c for c in self.controls if c.name == name]

    def hidden(self) -> dict[str, str]:
        return {c.name: c.value for c in self.controls if c.type == "hidden"}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.action = ""
        self.controls: list[Control] = []
        self._select: Control | None = None
        self._textarea: Control | None = None
        self._fieldsets: list[dict[str, str]] = []

    def _add(self, control: Control) -> Control:
        control.group = self._fieldsets[-1] if self._fieldsets else {}
        self.controls.append(control)
        return control

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == "apply":
            self.action = a["action"]
        elif tag == "fieldset":
            self._fieldsets.append(a)
        elif tag == "input" and "name" in a:
            self._add(
                Control("input", a["name"], a.get("type", "text"), a.get("value", ""), attrs=a, checked="checked" in a)
            )
        elif tag == "select":
            self._select = self._add(Control("select", a["name"], "select", attrs=a))
        elif tag == "option" and self._select is not None:
            self._select.options.append(a.get("value", ""))
            if "selected" in a:
                self._select.value = a.get("value", "")
        elif tag == "textarea":
            self._textarea = self._add(Control("textarea", a["name"], "textarea", attrs=a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "fieldset" and self._fieldsets:
            self._fieldsets.pop()
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data


def parse(html: str) -> Form:
    parser = _Parser()
    parser.feed(html)
    assert parser.action, "the page has no apply form"
    return Form(parser.action, parser.controls, html)


async def open_form(client: httpx.AsyncClient, path: str, **headers: str) -> Form:
    response = await client.get(path, headers={**BROWSER, **headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse(response.text)


async def submit(
    client: httpx.AsyncClient,
    form: Form,
    values: dict[str, str | list[str]],
    files: dict[str, tuple[str, bytes, str]] | None = None,
    *,
    follow: bool = False,
) -> httpx.Response:
    """Post `form` as a browser would: its hidden fields, `values` (a list = several values of one
    name, checkboxes), the files; empty file inputs as browsers send them."""
    data: dict[str, list[str]] = {k: [v] for k, v in form.hidden().items()}
    for name, value in values.items():
        data.setdefault(name, []).extend(value if isinstance(value, list) else [value])
    parts: list[tuple[str, tuple[str, bytes, str]]] = list((files or {}).items())
    for control in form.controls:
        if control.type == "file" and control.name not in (files or {}):
            parts.append((control.name, ("", b"", "application/octet-stream")))
    body, content_type = multipart(data, parts)
    headers = {**BROWSER, "content-type": content_type}
    return await client.post(form.action, content=body, headers=headers, follow_redirects=follow)


def multipart(fields: dict[str, list[str]], files: list[tuple[str, tuple[str, bytes, str]]]) -> tuple[bytes, str]:
    """multipart/form-data as a browser sends it, files or none (httpx sends a form without files
    url-encoded, which an HTML form with enctype=multipart never does)."""
    boundary = "----applyrelayTestBoundary7MA4YWxkTrZu0gW"
    out = bytearray()
    for name, values in fields.items():
        for value in values:
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode() + b"\r\n"
    for name, (filename, data, ctype) in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


# -- per ATS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One ATS's job with questions: the answers a candidate types (form values), the answers
    the relay must store (typed), the precondition that reveals a conditional question."""

    name: str
    job_id: str
    answers: dict[str, str | list[str]]
    typed: dict[str, Any]
    files: dict[str, tuple[str, bytes, str]]
    settings: dict[str, Any] = field(default_factory=dict)
    # (the parent's field, the value that reveals, the value that hides, the child's field)
    reveal: tuple[str, str, str, str] | None = None
    wrong: tuple[str, str, str] = ("email", "not-an-email", "email")  # field, value, field of the error
    in_ats: dict[str, Any] = field(default_factory=dict)  # the answers as the ATS holds them (`held`)


def held(name: str, records: dict[str, Any]) -> dict[str, Any]:
    """The answers the ATS emulator holds for the one application it received, by question (the
    ATS's own spelling: Laura typed values, Flatchr labels, OTYS candidate fields, Factorial text)."""
    if name == "laura":
        [application] = records["applications"]
        return {str(a["question_id"]): a["value"] for a in application["screening_question_answers"]}
    if name == "flatchr":
        [applicant] = records["applicants"]
        return {a["question_id"]: a["value"] for a in applicant["answers"]}
    if name == "factorial":
        return {a["ats_question_id"]: a["value"] for a in records["answers"]}
    [candidate] = records["candidates"]
    [procedure] = records["procedures"]
    fields = {k: v for k, v in candidate.items() if k.startswith(("extraInfo", "matchCriteria_"))}
    fields |= {k: candidate[k] for k in ("availableAt", "driversLicence", "willRelocate") if k in candidate}
    return {**fields, "KillerQuestions": procedure.get("KillerQuestions")}


PDF = ("cv.pdf", PDF_BYTES, "application/pdf")
CASES = {
    "laura": Case(
        "laura",
        "201",
        {"question_501": "true", "question_503": "12", "question_504": "Close to family", "question_505": "7"},
        {"501": True, "503": "12", "504": "Close to family", "505": 7},
        {},
        reveal=("question_501", "true", "false", "question_503"),
        wrong=("question_505", "99", "question_505"),
        in_ats={"501": True, "503": 12, "504": "Close to family", "505": 7},
    ),
    "flatchr": Case(
        "flatchr",
        "Vq5r6pYxam9AmMvP",
        {
            "question_q7Hd2LmQx9aB3cTe": "J'aime Python",
            "question_q2Kp8ZrW4nYv6JsU": "true",
            "question_q5Fg1HjK3lMn7PqR": "2019-05-01",
            "question_q9Wx4EcR6tYu2IoP": "b9ae62ede2da",
            "question_q3As5DfG7hJk9LzX[]": ["18885f27b5af", "a7056a455639"],
            "question_q8Cv1BnM3qWe5RtY": "6",
            "question_q4Ui6OpA8sDf0GhJ": "2027-01-04",
            "question_q6Kl8ZxC0vBn2MqW": "https://github.com/zoe",
        },
        {
            "q7Hd2LmQx9aB3cTe": "J'aime Python",
            "q2Kp8ZrW4nYv6JsU": True,
            "q5Fg1HjK3lMn7PqR": "2019-05-01",
            "q9Wx4EcR6tYu2IoP": "b9ae62ede2da",
            "q3As5DfG7hJk9LzX": ["18885f27b5af", "a7056a455639"],
            "q8Cv1BnM3qWe5RtY": 6,
            "q4Ui6OpA8sDf0GhJ": "2027-01-04",
            "q6Kl8ZxC0vBn2MqW": "https://github.com/zoe",
            "q1Er3TyU5iOp7AsD": {"name": "portfolio.pdf"},
        },
        {"resume": PDF, "question_q1Er3TyU5iOp7AsD": ("portfolio.pdf", PDF_BYTES, "application/pdf")},
        settings={"company_id": COMPANY_ID},
        reveal=("question_q2Kp8ZrW4nYv6JsU", "true", "false", "question_q5Fg1HjK3lMn7PqR"),
        wrong=("question_q8Cv1BnM3qWe5RtY", "six", "question_q8Cv1BnM3qWe5RtY"),
        in_ats={
            "q7Hd2LmQx9aB3cTe": "J'aime Python",
            "q2Kp8ZrW4nYv6JsU": "Oui",
            "q5Fg1HjK3lMn7PqR": "2019-05-01",
            "q9Wx4EcR6tYu2IoP": "Lyon",
            "q3As5DfG7hJk9LzX": "Python;SQL",
            "q8Cv1BnM3qWe5RtY": "6",
            "q4Ui6OpA8sDf0GhJ": "2027-01-04",
            "q6Kl8ZxC0vBn2MqW": "https://github.com/zoe",
        },
    ),
    "otys": Case(
        "otys",
        "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        {
            "question_101": "I like relays",
            "question_102": "5",
            "question_103": "A relay",
            "question_104": "2027-02-01",
            "question_106": "12",
            "question_107[]": ["21", "22"],
            "question_108": "true",
            "question_109": "31",
            "question_110": "43",
            "question_111[]": ["51", "53"],
            "question_112": "ref@example.org",
            "question_114": "false",
            "cover_letter": "Dear OTYS team",
        },
        {
            "101": "I like relays",
            "102": "5",
            "103": "A relay",
            "104": "2027-02-01",
            "105": {"name": "cv.pdf"},
            "106": "12",
            "107": ["21", "22"],
            "108": True,
            "109": "31",
            "110": "43",
            "111": ["51", "53"],
            "112": "ref@example.org",
            "114": False,
        },
        {"resume": PDF, "question_105": PDF},
        wrong=("question_110", "99", "question_110"),
        in_ats={
            "extraInfo1": "5",
            "extraInfo2": "A relay",
            "availableAt": "2027-02-01 00:00:00",
            "matchCriteria_1": {"12": 1},
            "matchCriteria_2": {"21": 1, "22": 1},
            "driversLicence": True,
            "extraInfo3": "31",
            "matchCriteria_3": {"43": 1},
            "extraInfo4": "51,53",
            "extraInfo5": "ref@example.org",
            "willRelocate": False,
            "KillerQuestions": ["I like relays"],
        },
    ),
    "factorial": Case(
        "factorial",
        "2001",
        {
            "question_3001": "Because relays never lose a CV.",
            "question_3002": "55000",
            "question_3003": "85a39ab345d6",
            "question_3004[]": ["18885f27b5af", "d9aa89fdd15a"],
        },
        {
            "3001": "Because relays never lose a CV.",
            "3002": "55000",
            "3003": "85a39ab345d6",
            "3004": ["18885f27b5af", "d9aa89fdd15a"],
            "3005": {"name": "portfolio.pdf"},
        },
        {"resume": PDF, "question_3005": ("portfolio.pdf", PDF_BYTES, "application/pdf")},
        wrong=("question_3003", "not-an-option", "question_3003"),
        in_ats={
            "3001": "Because relays never lose a CV.",
            "3002": "55000",
            "3003": "Yes",
            "3004": "Python, Rust",
        },  # 3005, a file question, cannot be written to Factorial (warned)
    ),
}
PERSON = {"first_name": "Zoë", "last_name": "Van der Berg", "email": "zoe@example.org", "phone": "+34 612 345 678"}


def apply_connection(case: Case, url: str, **apply: Any) -> dict[str, Any]:
    """The connection `acme` on the case's emulator with a form token (the pages need one)."""
    table = inbound_connection(url, **case.settings)
    table["connector"] = case.name
    table["credentials_env"] = connection_table(case.name, url)["credentials_env"]
    table["form_rate_limit"] = 0
    table["apply"] = {"enabled": True, **apply}
    return table
