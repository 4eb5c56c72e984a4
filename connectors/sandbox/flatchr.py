"""Flatchr emulator: the subset of Flatchr's API the connector uses, served from one host.

Real Flatchr splits its API over two hosts (developers.flatchr.io): candidate creation lives on
``https://careers.flatchr.io`` (``POST /vacancy/candidate/json``) and everything else on
``https://api.flatchr.io`` (``/vacancy/{id}``, ``/company/{companyId}/...``). The emulator serves
both path sets on one origin; the connector's ``careers_base_url`` setting points at it too.

Faithful to the public docs: Bearer (or ``?token=``) auth, ``token`` in the create body, the
vacancy *slug* as the create key, one CV per application (``type`` = document | link,
``resume`` = {data, fileName, contentType} | URL), answers as ``{"question": <text or tag id>,
"value": <string>}``, the ``{"response": "applicant created"}`` answer without any id,
applicant search by email/vacancy, encoded 16-character ids, ``files/expire`` limited to one
request per second per company (429).

Reads: the vacancy list (``status`` / ``offer_id`` filters, integers only), one vacancy with
``fields``, the columns; option ``extra_vacancies`` seeds more vacancies for pages, and
``POST /_sandbox/flatchr/vacancies/{id}/questions`` adds a question at runtime;
``POST /_sandbox/flatchr/api-key`` ``{"api_key"}`` regenerates the key (Settings > Advanced > API:
the old one is refused from then on, as after Flatchr's yearly expiry).

Assumptions (the public docs are silent), each kept in one place below:
- errors use the hapi/Boom envelope ``{"statusCode", "error", "message"}`` (Flatchr's success
  bodies carry ``statusCode`` the same way); payload validation answers 400, as hapi/Joi does;
- unknown body keys are refused (Joi's default);
- the question ``type`` strings (text, textarea, yesno, radio, select, checkbox, number, date,
  file) and their value formats: yesno ∈ options or Oui/Non (Yes/No for English vacancies),
  checkbox values joined with ";", dates ISO ``YYYY-MM-DD`` (what an HTML date input posts) or
  ``DD/MM/YYYY``; FILE questions cannot be answered through the JSON route;
- required questions are enforced (conditional ones only when their parent has the expected
  answer);
- duplicate rule: the same e-mail on the same vacancy while an applicant is live answers
  409 Conflict and creates nothing; the same e-mail on another vacancy reuses the candidate;
- ``source_id`` (custom source, Kombo's wording) is a top-level create field checked against
  the company's custom sources, ``offerer_id`` against the job-board catalogue;
- CV limits: 5 MB decoded, pdf/doc/docx/odt/rtf/txt/jpeg/png (413 / 415);
- ``GET /company/{companyId}/applicant/{applicantId}/medias`` (2020 docs) lists the CV.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
import string
import time
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post, put

from connectors.sandbox.common import sandbox_app

COMPANY_ID = "Wy3EOp2NP3p1KMq8"
COMPANY_SLUG = "sandbox-corp"
MB = 1_000_000
CV_CONTENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.text",
        "application/rtf",
        "text/rtf",
        "text/plain",
        "image/jpeg",
        "image/png",
    }
)
CREATE_KEYS = frozenset(
    {
        "vacancy",
        "firstname",
        "lastname",
        "token",
        "email",
        "phone",
        "type",
        "resume",
        "comment",
        "offerer_id",
        "source_id",
        "urls",
        "legalNewsletterPartners",
        "similarities",
        "response_text",
        "answers",
        "user_id",
    }
)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FR_DATE = re.compile(r"^\d{2}/\d{2}/\d{4}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Job boards ("offerers"): 75 "Site carrière" (EN docs example), 98 / 152 are the career-site and
# intranet distribution ids of the vacancies docs; the others are made up for the sandbox.
OFFERERS: dict[int, str] = {
    75: "Site carrière",
    98: "Site carrière (diffusion)",
    152: "Intranet",
    8: "Indeed",
    12: "LinkedIn",
    31: "Welcome to the Jungle",
}
CUSTOM_SOURCES: dict[str, str] = {
    "src_salon_2026": "Salon de l'emploi 2026",
    "src_cooptation": "Cooptation",
    "src_partner_form": "Formulaire partenaire",
}
COLUMNS = [
    {"id": "Nk5aMxpQ4b9GZ2Oz", "title": "À traiter", "position": 1, "visible": True, "hired": False},
    {"id": "a4JL2lpEQKpwBXKe", "title": "Pré-qualification RH", "position": 2, "visible": True, "hired": False},
    {"id": "G6KzqPnNLyp31m0l", "title": "Entretien", "position": 3, "visible": True, "hired": False},
    {"id": "LrENkKp8lZd3xYGM", "title": "Recruté", "position": 4, "visible": True, "hired": True},
]
TAGS = [
    {
        "id": "vADYjo9mwOdkR0ry",
        "tag_id": 1178,
        "title": "Langues",
        "values": "Français;Anglais;Espagnol",
        "multiple": True,
        "type": "candidates",
    },
    {
        "id": "5gQayv9L1Qp6LXE4",
        "tag_id": 1183,
        "title": "Diplôme",
        "values": "Bac;Bac +2;Bac +3;Bac +5",
        "multiple": False,
        "type": "candidates",
    },
]


def _question(
    qid: str,
    text: str,
    qtype: str,
    position: int,
    *,
    required: bool = False,
    options: str = "",
    parent: str | None = None,
    expected: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    return {
        "id": qid,
        "text": text,
        "type": qtype,
        "required": required,
        "options": options,
        "position": position,
        "size": size,
        "default_value": "",
        "parent_question": parent,
        "parent_answer_expected": expected,
    }


def _seed_vacancies() -> dict[str, dict[str, Any]]:
    """Three vacancies: one French with a question of every type (and a conditional one), one
    English with a yes/no question without options, one closed (applications refused)."""
    python_questions = [
        _question("q7Hd2LmQx9aB3cTe", "Pourquoi ce poste ?", "textarea", 1, required=True, size=2000),
        _question(
            "q2Kp8ZrW4nYv6JsU", "Avez-vous le permis de conduire ?", "yesno", 2, required=True, options="Oui;Non"
        ),
        _question(
            "q5Fg1HjK3lMn7PqR",
            "Depuis quelle date ?",
            "date",
            3,
            required=True,
            parent="q2Kp8ZrW4nYv6JsU",
            expected="Oui",
        ),
        _question("q9Wx4EcR6tYu2IoP", "Ville souhaitée", "radio", 4, options="Paris;Lyon;Remote"),
        _question("q3As5DfG7hJk9LzX", "Langages maîtrisés", "checkbox", 5, options="Python;Go;Rust;SQL"),
        _question("q8Cv1BnM3qWe5RtY", "Années d'expérience", "number", 6),
        _question("q4Ui6OpA8sDf0GhJ", "Disponible à partir du", "date", 7),
        _question("q6Kl8ZxC0vBn2MqW", "Votre profil GitHub", "text", 8),
        _question("q1Er3TyU5iOp7AsD", "Portfolio (fichier)", "file", 9),
    ]
    sales_questions = [
        _question("q0Zx2CvB4nMa6SdF", "Do you speak French?", "yesno", 1),
        _question("q2Gh4JkL6zXc8VbN", "Preferred region", "select", 2, options="North;South;East;West"),
    ]
    rows = [
        (
            "Vq5r6pYxam9AmMvP",
            1001,
            "vq5r6pyxam9ammvp-developpeur-python-h-f",
            "Développeur Python H/F",
            1,
            "fr_FR",
            python_questions,
        ),
        (
            "Bx8KqL2mN4pR7sTz",
            1002,
            "bx8kql2mn4pr7stz-account-executive",
            "Account Executive",
            1,
            "en_GB",
            sales_questions,
        ),
        ("Zc3Vb6Nm9Qw2Er5T", 1003, "zc3vb6nm9qw2er5t-stage-marketing-h-f", "Stage marketing H/F", 0, "fr_FR", []),
    ]
    return {
        vid: {
            "id": vid,
            "vacancy_id": num,
            "slug": slug,
            "title": title,
            "reference": f"REF-{num}",
            "status": status,
            "published": status == 1,
            "language": lang,
            "company_id": COMPANY_ID,
            "mensuality": "y",
            "currency": "EUR",
            "remote": "parttime",
            "contract_type_id": 1,
            "contract_type": "CDI",
            "partial": False,
            "mission": f"<p>{title}</p>",
            "apply_url": f"https://{COMPANY_SLUG}.flatchr.io/vacancy/{slug}" if status == 1 else None,
            "created_at": "2026-01-05T09:00:00.000Z",
            "updated_at": "2026-01-05T09:00:00.000Z",
            "address": {
                "locality": "Paris",
                "postal_code": "75002",
                "administrative_area_level_1": "Île-de-France",
                "formatted_address": "75002 Paris, France",
                "country": "France",
            },
            "tags": [],
            "questions": questions,
        }
        for vid, num, slug, title, status, lang, questions in rows
    }


GENERATED_TITLES = ("Commercial terrain", "Comptable", "Infirmier", "Chef de projet", "Magasinier", "Designer UX")
GENERATED_CITIES = (("Lyon", "69002"), ("Nantes", "44000"), ("Lille", "59000"), ("Bordeaux", "33000"))
GENERATED_CONTRACTS = ("CDI", "CDD", "Stage", "Alternance", "Freelance", "Intérim", "Saisonnier")
# assumption (undocumented integer): 1 = online, 0 = offline / closed, 2 = archived.
VACANCY_STATUSES = (0, 1, 2)


def _generated_vacancies(count: int) -> dict[str, dict[str, Any]]:
    """`count` more vacancies (option `extra_vacancies`), so a listing has pages: statuses
    online / offline / archived in turn, some unpublished, dates a day apart, a text question
    on every third."""
    out = {}
    for i in range(count):
        vid = "Gn" + hashlib.sha256(f"vacancy-{i}".encode()).hexdigest()[:14]
        status = (1, 1, 0, 1, 2)[i % 5]
        title = f"{GENERATED_TITLES[i % len(GENERATED_TITLES)]} {i + 1} H/F"
        slug = f"{vid.lower()}-{'-'.join(title.lower().split()[:2])}"
        city, zip_code = GENERATED_CITIES[i % len(GENERATED_CITIES)]
        when = dt.datetime(2026, 2, 1, 9, tzinfo=dt.UTC) + dt.timedelta(days=i)
        contract = GENERATED_CONTRACTS[i % len(GENERATED_CONTRACTS)]
        questions = [_question(f"qg{i:04d}Tx", "Votre motivation", "text", 1, size=200)] if i % 3 == 0 else []
        out[vid] = {
            "id": vid,
            "vacancy_id": 2000 + i,
            "slug": slug,
            "title": title,
            "reference": f"GEN-{i + 1:03d}",
            "status": status,
            "published": status == 1 and i % 4 != 3,
            "language": "fr_FR",
            "company_id": COMPANY_ID,
            "mensuality": "m",
            "currency": "EUR",
            "remote": "notime",
            "contract_type_id": GENERATED_CONTRACTS.index(contract) + 1,
            "contract_type": contract,
            "partial": i % 6 == 5,
            "mission": f"<p>{title}</p>",
            "apply_url": f"https://{COMPANY_SLUG}.flatchr.io/vacancy/{slug}" if status == 1 else None,
            "created_at": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "updated_at": (when + dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "address": {
                "locality": city,
                "postal_code": zip_code,
                "formatted_address": f"{zip_code} {city}, France",
                "country": "France",
            },
            "tags": [],
            "questions": questions,
        }
    return out


def _encoded_id() -> str:
    """Flatchr-style encoded id: 16 alphanumerics."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


class FlatchrError(Exception):
    """An HTTP error in the Boom envelope."""

    PHRASES = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        413: "Payload Too Large",
        415: "Unsupported Media Type",
        429: "Too Many Requests",
    }

    def __init__(
        self, status: int, message: str, *, keys: list[str] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.keys = keys
        self.headers = headers or {}

    def response(self) -> Response[Any]:
        body: dict[str, Any] = {
            "statusCode": self.status,
            "error": self.PHRASES.get(self.status, "Error"),
            "message": self.message,
        }
        if self.keys:
            body["validation"] = {"source": "payload", "keys": self.keys}
        return Response(content=body, status_code=self.status, headers=self.headers)


def _bad(message: str, key: str) -> FlatchrError:
    """A validation error; messages name the key, never echo the value (no PII in logs)."""
    return FlatchrError(400, message, keys=[key])


class FlatchrSandbox:
    """All state of one emulator instance."""

    def __init__(
        self,
        api_key: str,
        *,
        max_file_bytes: int = 5 * MB,
        resume_required: bool = True,
        email_required: bool = True,
        files_rate_per_s: float = 1.0,
        extra_vacancies: int = 0,
    ) -> None:
        self.seed_api_key = self.api_key = api_key
        self.extra_vacancies = extra_vacancies
        self.max_file_bytes = max_file_bytes
        self.resume_required = resume_required
        self.email_required = email_required
        self.files_interval = 1.0 / files_rate_per_s if files_rate_per_s > 0 else 0.0
        self.reset()

    def reset(self) -> None:
        self.api_key = self.seed_api_key
        self.vacancies = {**_seed_vacancies(), **_generated_vacancies(self.extra_vacancies)}
        self.candidates: dict[int, dict[str, Any]] = {}
        self.applicants: dict[str, dict[str, Any]] = {}
        self.medias: dict[str, dict[str, Any]] = {}
        self.create_calls = 0
        self.test_calls = 0
        self.last_file_call = 0.0
        self.next_candidate = 2001
        self.next_applicant_num = 5001

    # -- auth ---------------------------------------------------------------------------------

    def token_of(self, request: Request[Any, Any, Any], body_token: Any = None) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        if isinstance(body_token, str) and body_token:
            return body_token
        return request.query_params.get("token")

    def authorize(self, request: Request[Any, Any, Any], company_id: str | None = None, body_token: Any = None) -> None:
        token = self.token_of(request, body_token)
        if not token:
            raise FlatchrError(401, "Missing authentication")
        if not secrets.compare_digest(token.encode(), self.api_key.encode()):
            raise FlatchrError(401, "Invalid token")
        if company_id is not None and company_id != COMPANY_ID:
            raise FlatchrError(403, "You are not allowed to access this company")

    # -- reads --------------------------------------------------------------------------------

    def vacancy_view(self, vacancy: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        view = {k: v for k, v in vacancy.items() if k not in ("questions", "address", "tags")}
        for extra in ("questions", "address", "tags"):
            if extra in fields:
                view[extra] = vacancy[extra]
        return view

    def search(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for app in self.applicants.values():
            cand = self.candidates[app["candidate_id"]]
            vac = self.vacancies[app["vacancy"]]
            if app["archived"]:
                continue
            if filters.get("email") and str(filters["email"]).lower() != (cand["email"] or "").lower():
                continue
            if filters.get("vacancy") and filters["vacancy"] != app["vacancy"]:
                continue
            if filters.get("lastname") and str(filters["lastname"]).lower() != cand["lastname"].lower():
                continue
            if filters.get("firstname") and str(filters["firstname"]).lower() != cand["firstname"].lower():
                continue
            column = next(c for c in COLUMNS if c["id"] == app["column_id"])
            out.append(
                {
                    "applicant": app["id"],
                    "vacancy": vac["title"],
                    "vacancy_id": vac["vacancy_id"],
                    "column": column["title"],
                    "external_id": "",
                    "firstname": cand["firstname"],
                    "lastname": cand["lastname"],
                    "email": cand["email"],
                    "phone": cand["phone"],
                    "created_at": app["created_at_short"],
                    "source": app["source_label"],
                }
            )
        return out

    # -- create -------------------------------------------------------------------------------

    def validate_create(self, body: Any) -> dict[str, Any]:
        """Check a create body; returns what `create` needs. Raises FlatchrError."""
        if not isinstance(body, dict):
            raise FlatchrError(400, "Invalid request payload JSON format")
        for key in body:
            if key not in CREATE_KEYS:
                raise _bad(f'"{key}" is not allowed', key)
        slug = body.get("vacancy")
        if not isinstance(slug, str) or not slug:
            raise _bad('"vacancy" is required', "vacancy")
        vacancy = next((v for v in self.vacancies.values() if v["slug"] == slug and v["status"] == 1), None)
        if vacancy is None:
            raise FlatchrError(404, "Vacancy not found")
        for key in ("firstname", "lastname"):
            value = body.get(key)
            if not isinstance(value, str) or not value.strip():
                raise _bad(f'"{key}" is required', key)
            if not re.search(r"[^\W\d_]", value):
                raise _bad(f'"{key}" must contain letters', key)
        email = body.get("email")
        if email is None and self.email_required:
            raise _bad('"email" is required', "email")
        if email is not None and (not isinstance(email, str) or not EMAIL.match(email)):
            raise _bad('"email" must be a valid email', "email")
        phone = body.get("phone")
        if phone is not None and (isinstance(phone, bool) or not isinstance(phone, str | int)):
            raise _bad('"phone" must be a string', "phone")
        resume = self._validate_resume(body)
        offerer_id = self._validate_offerer(body.get("offerer_id"))
        source_id = body.get("source_id")
        if source_id is not None and (not isinstance(source_id, str) or source_id not in CUSTOM_SOURCES):
            raise _bad('"source_id" is not a source of this company', "source_id")
        if offerer_id is not None and source_id is not None:
            raise _bad('"offerer_id" conflicts with forbidden peer "source_id"', "source_id")
        answers = self._validate_answers(vacancy, body.get("answers"))
        return {
            "vacancy": vacancy,
            "email": email,
            "phone": None if phone is None else str(phone),
            "resume": resume,
            "offerer_id": offerer_id,
            "source_id": source_id,
            "answers": answers,
        }

    def _validate_resume(self, body: dict[str, Any]) -> dict[str, Any] | None:
        cv_type = body.get("type")
        resume = body.get("resume")
        if cv_type is None and resume is None:
            if self.resume_required:
                raise _bad('"resume" is required', "resume")
            return None
        if cv_type == "link":
            if not isinstance(resume, str) or not re.match(r"^(https?://)?[\w.-]+\.[a-z]{2,}/", resume):
                raise _bad('"resume" must be a valid uri', "resume")
            return {"kind": "link", "url": resume}
        if cv_type != "document":
            raise _bad('"type" must be one of [document, link]', "type")
        if not isinstance(resume, dict) or not isinstance(resume.get("data"), str):
            raise _bad('"resume.data" is required', "resume.data")
        try:
            raw = base64.b64decode(resume["data"], validate=True)
        except (binascii.Error, ValueError):
            raise _bad('"resume.data" must be a valid base64 string', "resume.data") from None
        if not raw:
            raise _bad('"resume.data" is not allowed to be empty', "resume.data")
        if len(raw) > self.max_file_bytes:
            raise FlatchrError(413, f"Resume exceeds the maximum size of {self.max_file_bytes} bytes")
        declared = resume.get("contentType")
        if declared is not None and not isinstance(declared, str):
            raise _bad('"resume.contentType" must be a string', "resume.contentType")
        content_type = declared or "application/pdf"
        if content_type not in CV_CONTENT_TYPES:
            raise FlatchrError(415, "Unsupported resume content type")
        name = resume.get("fileName")
        if not isinstance(name, str) or not name:
            raise _bad('"resume.fileName" is required', "resume.fileName")
        return {
            "kind": "document",
            "name": name,
            "content_type": content_type,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "size": len(raw),
        }

    def _validate_offerer(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad('"offerer_id" must be a number', "offerer_id")
        if value not in OFFERERS:
            raise _bad('"offerer_id" is not a known job board', "offerer_id")
        return value

    def _validate_answers(self, vacancy: dict[str, Any], answers: Any) -> list[dict[str, Any]]:
        if answers is None:
            answers = []
        if not isinstance(answers, list):
            raise _bad('"answers" must be an array', "answers")
        by_text = {q["text"]: q for q in vacancy["questions"]}
        tags = {t["tag_id"]: t for t in TAGS}
        stored: list[dict[str, Any]] = []
        given: dict[str, str] = {}
        for i, answer in enumerate(answers):
            key = f"answers.{i}"
            if not isinstance(answer, dict):
                raise _bad(f'"{key}" must be an object', key)
            target = answer.get("question", answer.get("questions"))  # 2020 samples say "questions"
            value = answer.get("value")
            if not isinstance(value, str):
                raise _bad(f'"{key}.value" must be a string', f"{key}.value")
            if isinstance(target, int) and not isinstance(target, bool):
                tag = tags.get(target)
                if tag is None:
                    raise _bad(f'"{key}.question" is not a tag of this company', f"{key}.question")
                stored.append({"tag_id": target, "value": value})
                continue
            question = by_text.get(target) if isinstance(target, str) else None
            if question is None:
                raise _bad(f'"{key}.question" is not a question of this vacancy', f"{key}.question")
            self._check_value(question, value, vacancy["language"], key)
            given[question["id"]] = value
            stored.append(
                {"question_id": question["id"], "question": question["text"], "type": question["type"], "value": value}
            )
        for question in vacancy["questions"]:
            if question["required"] and question["id"] not in given and self._applies(question, given):
                raise _bad(f"question {question['id']} is required", "answers")
        return stored

    @staticmethod
    def _applies(question: dict[str, Any], given: dict[str, str]) -> bool:
        parent = question["parent_question"]
        return parent is None or given.get(parent) == question["parent_answer_expected"]

    @staticmethod
    def _check_value(question: dict[str, Any], value: str, language: str, key: str) -> None:
        qtype = question["type"]
        options = [o.strip() for o in question["options"].split(";") if o.strip()]
        where = f"{key}.value"
        if qtype == "file":
            raise _bad(f'"{where}": file questions cannot be answered through this route', where)
        size = question.get("size")
        if qtype in ("text", "textarea") and isinstance(size, int) and size > 0 and len(value) > size:
            raise _bad(f'"{where}" length must be less than or equal to {size} characters long', where)
        if qtype == "yesno":
            allowed = options or (["Oui", "Non"] if language.startswith("fr") else ["Yes", "No"])
            if value not in allowed:
                raise _bad(f'"{where}" must be one of the yes/no options', where)
        elif qtype in ("radio", "select"):
            if value not in options:
                raise _bad(f'"{where}" must be one of the question options', where)
        elif qtype == "checkbox":
            parts = [p.strip() for p in value.split(";")]
            if not value or any(p not in options for p in parts):
                raise _bad(f'"{where}" must be options of the question separated by ";"', where)
        elif qtype == "number":
            try:
                float(value.replace(",", "."))
            except ValueError:
                raise _bad(f'"{where}" must be a number', where) from None
        elif qtype == "date":
            fmt = "%Y-%m-%d" if ISO_DATE.match(value) else "%d/%m/%Y" if FR_DATE.match(value) else None
            try:
                if fmt is None:
                    raise ValueError
                dt.datetime.strptime(value, fmt)
            except ValueError:
                raise _bad(f'"{where}" must be a valid date', where) from None

    def create(self, body: dict[str, Any], checked: dict[str, Any]) -> None:
        vacancy = checked["vacancy"]
        email = checked["email"]
        for app in self.applicants.values():
            cand = self.candidates[app["candidate_id"]]
            if (
                not app["archived"]
                and app["vacancy"] == vacancy["id"]
                and email
                and (cand["email"] or "").lower() == email.lower()
            ):
                raise FlatchrError(409, "Applicant already exists for this vacancy")
        candidate = next(
            (c for c in self.candidates.values() if email and (c["email"] or "").lower() == email.lower()), None
        )
        if candidate is None:
            candidate = {
                "id": self.next_candidate,
                "firstname": body["firstname"],
                "lastname": body["lastname"],
                "email": email,
                "phone": checked["phone"],
                "consent": True,
                "created_at": _now_iso(),
            }
            self.candidates[candidate["id"]] = candidate
            self.next_candidate += 1
        applicant_id = _encoded_id()
        offerer_id, source_id = checked["offerer_id"], checked["source_id"]
        source_label = (
            OFFERERS[offerer_id]
            if offerer_id is not None
            else CUSTOM_SOURCES[source_id]
            if source_id is not None
            else "API"
        )
        self.applicants[applicant_id] = {
            "id": applicant_id,
            "applicant_id": self.next_applicant_num,
            "candidate_id": candidate["id"],
            "vacancy": vacancy["id"],
            "vacancy_id": vacancy["vacancy_id"],
            "column_id": COLUMNS[0]["id"],
            "offerer_id": offerer_id,
            "source_id": source_id,
            "source_label": source_label,
            "comment": body.get("comment"),
            "urls": body.get("urls"),
            "answers": checked["answers"],
            "newsletter": bool(body.get("legalNewsletterPartners")),
            "archived": False,
            "created_at": _now_iso(),
            "created_at_short": time.strftime("%d/%m/%y"),
        }
        self.next_applicant_num += 1
        resume = checked["resume"]
        if resume is not None:
            media_id = _encoded_id()
            self.medias[media_id] = {
                "id": media_id,
                "applicant": applicant_id,
                "tag": "cv",
                **resume,
                "created_at": _now_iso(),
            }

    # -- records ------------------------------------------------------------------------------

    def records(self) -> dict[str, Any]:
        return {
            "company_id": COMPANY_ID,
            "company_slug": COMPANY_SLUG,
            "vacancies": list(self.vacancies.values()),
            "offerers": [{"id": k, "name": v} for k, v in OFFERERS.items()],
            "sources": [{"id": k, "name": v} for k, v in CUSTOM_SOURCES.items()],
            "columns": COLUMNS,
            "tags": TAGS,
            "candidates": list(self.candidates.values()),
            "applicants": list(self.applicants.values()),
            "files": list(self.medias.values()),
            "create_calls": self.create_calls,
            "test_calls": self.test_calls,
        }


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def _json_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise FlatchrError(400, "Invalid request payload JSON format") from None


def create_app(api_key: str = "sandbox", **options: Any) -> Any:
    """The emulator app. Options: max_file_bytes, resume_required, email_required, files_rate_per_s,
    extra_vacancies (that many more generated vacancies, for listing pages)."""
    sb = FlatchrSandbox(api_key, **options)

    async def create_candidate(request: Request[Any, Any, Any], *, dry_run: bool) -> Response[Any]:
        body = await _json_body(request)
        sb.authorize(request, body_token=body.get("token") if isinstance(body, dict) else None)
        checked = sb.validate_create(body)
        if dry_run:
            sb.test_calls += 1
            return Response(content={"response": "test ok"}, status_code=200)
        sb.create_calls += 1
        sb.create(body, checked)
        return Response(content={"response": "applicant created"}, status_code=200)

    @post("/vacancy/candidate/json", status_code=200)
    async def post_candidate(request: Request[Any, Any, Any]) -> Response[Any]:
        return await create_candidate(request, dry_run=False)

    @post("/vacancy/candidate/test", status_code=200)
    async def post_candidate_test(request: Request[Any, Any, Any]) -> Response[Any]:
        return await create_candidate(request, dry_run=True)

    @get("/vacancy/{vacancy_id:str}", sync_to_thread=False)
    def get_vacancy(request: Request[Any, Any, Any], vacancy_id: str) -> Response[Any]:
        sb.authorize(request)
        vacancy = sb.vacancies.get(vacancy_id)
        if vacancy is None:
            raise FlatchrError(404, "Vacancy not found")
        fields = set((request.query_params.get("fields") or "").split(","))
        return Response(content=sb.vacancy_view(vacancy, fields))

    @get("/company/{company_id:str}/vacancies", sync_to_thread=False)
    def list_vacancies(request: Request[Any, Any, Any], company_id: str) -> Response[Any]:
        sb.authorize(request, company_id)
        fields = set((request.query_params.get("fields") or "").split(","))
        status = request.query_params.get("status")
        if status is not None and not status.strip().lstrip("-").isdigit():
            raise FlatchrError(400, '"status" must be a number', keys=["status"])
        offer = request.query_params.get("offer_id")
        if offer is not None and not offer.strip().isdigit():
            raise FlatchrError(400, '"offer_id" must be a number', keys=["offer_id"])
        rows = [
            sb.vacancy_view(v, fields)
            for v in sb.vacancies.values()
            if (status is None or v["status"] == int(status))
            and (offer is None or (int(offer) == 98 and v["published"]))
        ]
        return Response(content=rows)

    @post("/_sandbox/flatchr/api-key", status_code=200)
    async def regenerate_key(request: Request[Any, Any, Any]) -> Response[Any]:
        """Sandbox only: the company's API key is regenerated (the old one is refused at once)."""
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("api_key"), str) or not body["api_key"]:
            raise _bad('"api_key" is required', "api_key")
        sb.api_key = body["api_key"]
        return Response(content={"api_key": "regenerated"})

    @post("/_sandbox/flatchr/vacancies/{vacancy_id:str}/questions", status_code=201)
    async def add_question(vacancy_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
        """Sandbox only: add a question to a vacancy now (as a recruiter would in Flatchr), so a
        test can watch a cached question list expire. Body: ``text``, ``type``, optional
        ``required``, ``options`` (";"-separated), ``parent_question``, ``parent_answer_expected``."""
        vacancy = sb.vacancies.get(vacancy_id)
        body = await _json_body(request)
        if vacancy is None:
            raise FlatchrError(404, "Vacancy not found")
        if not isinstance(body, dict) or not body.get("text") or not body.get("type"):
            raise _bad('"text" and "type" are required', "text")
        question = _question(
            _encoded_id(),
            str(body["text"]),
            str(body["type"]),
            len(vacancy["questions"]) + 1,
            required=bool(body.get("required", False)),
            options=str(body.get("options") or ""),
            parent=body.get("parent_question"),
            expected=body.get("parent_answer_expected"),
        )
        vacancy["questions"].append(question)
        return Response(content=question, status_code=201)

    @get("/company/{feed:str}", sync_to_thread=False)
    def public_feed(feed: str) -> Response[Any]:
        """careers host: ``GET /company/{slug}.json``, the published vacancies, no auth."""
        if feed != f"{COMPANY_SLUG}.json":
            raise FlatchrError(404, "Company not found")
        items = [
            {
                "id": v["id"],
                "offer_id": 98,
                "external_id": None,
                "published": True,
                "created_at": v["created_at"],
                "vacancy": sb.vacancy_view(v, {"address"}),
                "vacancy_id": v["vacancy_id"],
            }
            for v in sb.vacancies.values()
            if v["status"] == 1
        ]
        return Response(content={"items": items})

    @post("/company/{company_id:str}/search/applicants", status_code=200)
    async def search_applicants(request: Request[Any, Any, Any], company_id: str) -> Response[Any]:
        sb.authorize(request, company_id)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise FlatchrError(400, "Invalid request payload JSON format")
        for key in ("email", "vacancy", "firstname", "lastname"):  # Joi: strings, or absent
            if key in body and not isinstance(body[key], str):
                raise _bad(f'"{key}" must be a string', key)
        return Response(content=sb.search(body))

    @get("/company/{company_id:str}/columns", sync_to_thread=False)
    def list_columns(request: Request[Any, Any, Any], company_id: str) -> Response[Any]:
        sb.authorize(request, company_id)
        return Response(content=COLUMNS)

    @get("/company/{company_id:str}/tags", sync_to_thread=False)
    def list_tags(request: Request[Any, Any, Any], company_id: str) -> Response[Any]:
        sb.authorize(request, company_id)
        return Response(content=TAGS)

    def applicant_or_404(vacancy_id: str | None, applicant_id: str) -> dict[str, Any]:
        app = sb.applicants.get(applicant_id)
        if app is None or (vacancy_id is not None and app["vacancy"] != vacancy_id):
            raise FlatchrError(404, "Applicant not found")
        return app

    @put("/company/{company_id:str}/vacancy/{vacancy_id:str}/applicant/{applicant_id:str}", status_code=200)
    async def move_applicant(
        request: Request[Any, Any, Any], company_id: str, vacancy_id: str, applicant_id: str
    ) -> Response[Any]:
        sb.authorize(request, company_id)
        app = applicant_or_404(vacancy_id, applicant_id)
        body = await _json_body(request)
        column_id = body.get("column_id") if isinstance(body, dict) else None
        if not any(c["id"] == column_id for c in COLUMNS):
            raise _bad('"column_id" is not a column of this company', "column_id")
        app["column_id"] = column_id
        cand = sb.candidates[app["candidate_id"]]
        return Response(content={**{k: v for k, v in app.items() if k != "answers"}, "candidate": cand})

    @delete(
        "/company/{company_id:str}/vacancy/{vacancy_id:str}/applicant/{applicant_id:str}",
        status_code=200,
        sync_to_thread=False,
    )
    def archive_applicant(
        request: Request[Any, Any, Any], company_id: str, vacancy_id: str, applicant_id: str
    ) -> Response[Any]:
        sb.authorize(request, company_id)
        applicant_or_404(vacancy_id, applicant_id)["archived"] = True
        return Response(content={"response": "applicant archived"})

    @get("/company/{company_id:str}/applicant/{applicant_id:str}/medias", sync_to_thread=False)
    def list_medias(request: Request[Any, Any, Any], company_id: str, applicant_id: str) -> Response[Any]:
        sb.authorize(request, company_id)
        applicant_or_404(None, applicant_id)
        rows = []
        for media in sb.medias.values():
            if media["applicant"] != applicant_id:
                continue
            name = media.get("name") or media.get("url", "").rsplit("/", 1)[-1]
            rows.append(
                {
                    "id": media["id"],
                    "tag": media["tag"],
                    "created_by": None,
                    "created_at": media["created_at"],
                    "author": None,
                    "attachment": {
                        "id": media["id"],
                        "name": name,
                        "key": media["id"],
                        "url": f"/company/{COMPANY_ID}/files/expire?key={media['id']}"
                        if media["kind"] == "document"
                        else media["url"],
                        "created_at": media["created_at"],
                    },
                }
            )
        return Response(content=rows)

    @get("/company/{company_id:str}/files/expire", sync_to_thread=False)
    def file_link(request: Request[Any, Any, Any], company_id: str) -> Response[Any]:
        sb.authorize(request, company_id)
        now = time.monotonic()
        if sb.files_interval and now - sb.last_file_call < sb.files_interval:
            raise FlatchrError(429, "Too many requests", headers={"Retry-After": "1"})
        sb.last_file_call = now
        media = sb.medias.get(request.query_params.get("key", ""))
        if media is None or media["kind"] != "document":
            raise FlatchrError(404, "File not found")
        expires = int(time.time()) + 300
        return Response(content={"url": f"https://files.sandbox.invalid/{media['id']}?expires={expires}"})

    def on_flatchr_error(_: Request[Any, Any, Any], exc: FlatchrError) -> Response[Any]:
        return exc.response()

    return sandbox_app(
        name="flatchr",
        routes=[
            post_candidate,
            post_candidate_test,
            get_vacancy,
            list_vacancies,
            add_question,
            regenerate_key,
            public_feed,
            search_applicants,
            list_columns,
            list_tags,
            move_applicant,
            archive_applicant,
            list_medias,
            file_link,
        ],
        records=sb.records,
        reset=sb.reset,
        exception_handlers={FlatchrError: on_flatchr_error},
        request_max_body_size=12 * MB,
    )
