"""The Flatchr emulator over real HTTP: auth, create validation, duplicates, file limits, reads."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.sandbox.flatchr import COMPANY_ID, COMPANY_SLUG
from tests.support.emulators import EmulatorFactory

AUTH = {"Authorization": "Bearer sandbox"}
PY_SLUG = "vq5r6pyxam9ammvp-developpeur-python-h-f"
EN_SLUG = "bx8kql2mn4pr7stz-account-executive"
CLOSED_SLUG = "zc3vb6nm9qw2er5t-stage-marketing-h-f"
PDF = b"%PDF-1.4\n% test\n"


@pytest.fixture
def client(emulator: EmulatorFactory) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator("flatchr", max_file_bytes=1000).url, timeout=5) as c:
        yield c


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "vacancy": EN_SLUG,
        "firstname": "Ana",
        "lastname": "Lopez",
        "email": "ana@example.com",
        "phone": "+33123456789",
        "token": "sandbox",
        "type": "document",
        "resume": {
            "data": base64.b64encode(PDF).decode(),
            "fileName": "cv.pdf",
            "contentType": "application/pdf",
        },
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def python_answers(**values: str) -> list[dict[str, str]]:
    answers = {"Pourquoi ce poste ?": "Motivé", "Avez-vous le permis de conduire ?": "Non", **values}
    return [{"question": q, "value": v} for q, v in answers.items()]


def create(client: httpx.Client, payload: dict[str, Any], **kw: Any) -> httpx.Response:
    return client.post("/vacancy/candidate/json", json=payload, **kw)


def records(client: httpx.Client) -> dict[str, Any]:
    return client.get("/_sandbox/records").json()


# -- auth ---------------------------------------------------------------------------------------


def test_create_needs_the_api_key(client: httpx.Client) -> None:
    response = create(client, body(token=None))
    assert response.status_code == 401 and response.json()["error"] == "Unauthorized"
    assert create(client, body(token="nope")).status_code == 401
    assert create(client, body(token=None), headers=AUTH).status_code == 200


def test_api_routes_take_bearer_or_query_token_and_check_the_company(client: httpx.Client) -> None:
    assert client.get(f"/company/{COMPANY_ID}/columns").status_code == 401
    assert client.get(f"/company/{COMPANY_ID}/columns", headers=AUTH).status_code == 200
    assert client.get(f"/company/{COMPANY_ID}/columns", params={"token": "sandbox"}).status_code == 200
    assert client.get("/company/OtherCompany0001/columns", headers=AUTH).status_code == 403


# -- create validation --------------------------------------------------------------------------


def test_create_answers_without_an_id_and_records_everything(client: httpx.Client) -> None:
    response = create(client, body(offerer_id=8, comment="Hello"))
    assert response.status_code == 200 and response.json() == {"response": "applicant created"}
    data = records(client)
    [applicant] = data["applicants"]
    [file] = data["files"]
    assert applicant["offerer_id"] == 8 and applicant["source_label"] == "Indeed"
    assert file["sha256"] == hashlib.sha256(PDF).hexdigest() and file["size"] == len(PDF)
    assert "data" not in file and data["create_calls"] == 1


@pytest.mark.parametrize(
    ("overrides", "status", "key"),
    [
        ({"surname": "x"}, 400, "surname"),
        ({"vacancy": None}, 400, "vacancy"),
        ({"firstname": "1234"}, 400, "firstname"),
        ({"lastname": ""}, 400, "lastname"),
        ({"email": "not-an-email"}, 400, "email"),
        ({"email": None}, 400, "email"),
        ({"type": None, "resume": None}, 400, "resume"),
        ({"type": "pdf"}, 400, "type"),
        ({"resume": {"data": "***", "fileName": "cv.pdf"}}, 400, "resume.data"),
        ({"resume": {"data": base64.b64encode(PDF).decode()}}, 400, "resume.fileName"),
        ({"offerer_id": 99999}, 400, "offerer_id"),
        ({"source_id": "unknown"}, 400, "source_id"),
        ({"offerer_id": 8, "source_id": "src_cooptation"}, 400, "source_id"),
    ],
)
def test_create_validation(client: httpx.Client, overrides: dict[str, Any], status: int, key: str) -> None:
    payload = body()
    for k, v in overrides.items():
        if v is None:
            payload.pop(k, None)
        else:
            payload[k] = v
    response = create(client, payload)
    assert response.status_code == status, response.text
    assert response.json()["validation"]["keys"] == [key]
    assert records(client)["applicants"] == []


def test_vacancy_must_be_open(client: httpx.Client) -> None:
    assert create(client, body(vacancy=CLOSED_SLUG)).status_code == 404
    assert create(client, body(vacancy="no-such-slug")).status_code == 404


def test_file_limits(client: httpx.Client) -> None:
    big = {
        "data": base64.b64encode(b"x" * 1001).decode(),
        "fileName": "cv.pdf",
        "contentType": "application/pdf",
    }
    assert create(client, body(resume=big)).status_code == 413
    exe = {
        "data": base64.b64encode(PDF).decode(),
        "fileName": "cv.exe",
        "contentType": "application/x-msdownload",
    }
    assert create(client, body(resume=exe)).status_code == 415
    assert create(client, body(type="link", resume="https://files.example.com/cv.pdf")).status_code == 200
    assert records(client)["files"][0]["url"] == "https://files.example.com/cv.pdf"


def test_bad_json(client: httpx.Client) -> None:
    response = client.post(
        "/vacancy/candidate/json", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["statusCode"] == 400


# -- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "value", "ok"),
    [
        ("Ville souhaitée", "Lyon", True),
        ("Ville souhaitée", "Marseille", False),
        ("Langages maîtrisés", "Python;SQL", True),
        ("Langages maîtrisés", "Python;Cobol", False),
        ("Années d'expérience", "3,5", True),
        ("Années d'expérience", "beaucoup", False),
        ("Disponible à partir du", "2026-03-01", True),
        ("Disponible à partir du", "01/03/2026", True),
        ("Disponible à partir du", "2026-02-30", False),
        ("Portfolio (fichier)", "x", False),
        ("Question inconnue", "x", False),
    ],
)
def test_answer_values_by_type(client: httpx.Client, question: str, value: str, ok: bool) -> None:
    response = create(client, body(vacancy=PY_SLUG, answers=python_answers(**{question: value})))
    assert response.status_code == (200 if ok else 400), response.text
    if not ok:
        assert value not in response.text  # errors never echo the answer


def test_yesno_and_required_and_conditional_questions(client: httpx.Client) -> None:
    assert create(client, body(vacancy=PY_SLUG, answers=[])).status_code == 400
    license_yes = python_answers(**{"Avez-vous le permis de conduire ?": "Oui"})
    assert create(client, body(vacancy=PY_SLUG, answers=license_yes)).status_code == 400  # "since" needed
    with_since = [*license_yes, {"question": "Depuis quelle date ?", "value": "2015-01-01"}]
    assert create(client, body(vacancy=PY_SLUG, answers=with_since)).status_code == 200
    english = [{"question": "Do you speak French?", "value": "Oui"}]
    assert create(client, body(email="b@example.com", answers=english)).status_code == 400
    english = [{"question": "Do you speak French?", "value": "Yes"}]
    assert create(client, body(email="b@example.com", answers=english)).status_code == 200


def test_candidate_tag_answers_and_legacy_questions_key(client: httpx.Client) -> None:
    answers = [{"question": 1183, "value": "Bac +5"}, {"questions": "Preferred region", "value": "North"}]
    assert create(client, body(answers=answers)).status_code == 200
    assert create(client, body(email="c@example.com", answers=[{"question": 42, "value": "x"}])).status_code == 400


# -- duplicates and reads -----------------------------------------------------------------------


def test_duplicate_rule(client: httpx.Client) -> None:
    assert create(client, body()).status_code == 200
    again = create(client, body(email="ANA@example.com"))
    assert again.status_code == 409 and again.json()["error"] == "Conflict"
    assert create(client, body(vacancy=PY_SLUG, answers=python_answers())).status_code == 200
    data = records(client)
    assert len(data["applicants"]) == 2 and len(data["candidates"]) == 1


def test_search_medias_and_archive(client: httpx.Client) -> None:
    create(client, body())
    rows = client.post(f"/company/{COMPANY_ID}/search/applicants", json={"email": "Ana@Example.com"}, headers=AUTH)
    [row] = rows.json()
    assert row["vacancy"] == "Account Executive" and row["source"] == "API"
    vacancy_filter = {"email": "ana@example.com", "vacancy": "Vq5r6pYxam9AmMvP"}
    assert client.post(f"/company/{COMPANY_ID}/search/applicants", json=vacancy_filter, headers=AUTH).json() == []
    medias = client.get(f"/company/{COMPANY_ID}/applicant/{row['applicant']}/medias", headers=AUTH).json()
    assert medias[0]["tag"] == "cv" and medias[0]["attachment"]["name"] == "cv.pdf"
    archive = client.delete(
        f"/company/{COMPANY_ID}/vacancy/Bx8KqL2mN4pR7sTz/applicant/{row['applicant']}", headers=AUTH
    )
    assert archive.status_code == 200
    assert (
        client.post(f"/company/{COMPANY_ID}/search/applicants", json={"email": "ana@example.com"}, headers=AUTH).json()
        == []
    )
    assert create(client, body()).status_code == 200  # archived applicants do not block a new one


def test_move_applicant(client: httpx.Client) -> None:
    create(client, body())
    [row] = client.post(f"/company/{COMPANY_ID}/search/applicants", json={}, headers=AUTH).json()
    url = f"/company/{COMPANY_ID}/vacancy/Bx8KqL2mN4pR7sTz/applicant/{row['applicant']}"
    assert client.put(url, json={"column_id": "nope"}, headers=AUTH).status_code == 400
    moved = client.put(url, json={"column_id": "G6KzqPnNLyp31m0l"}, headers=AUTH)
    assert moved.status_code == 200 and moved.json()["candidate"]["email"] == "ana@example.com"


def test_vacancy_reads(client: httpx.Client) -> None:
    vacancy = client.get("/vacancy/Vq5r6pYxam9AmMvP", headers=AUTH).json()
    assert "questions" not in vacancy and vacancy["slug"] == PY_SLUG
    vacancy = client.get("/vacancy/Vq5r6pYxam9AmMvP", params={"fields": "questions,address"}, headers=AUTH).json()
    types = {q["type"] for q in vacancy["questions"]}
    assert types == {"textarea", "yesno", "date", "radio", "checkbox", "number", "text", "file"}
    assert client.get("/vacancy/unknown", headers=AUTH).status_code == 404
    assert len(client.get(f"/company/{COMPANY_ID}/vacancies", headers=AUTH).json()) == 3
    assert len(client.get(f"/company/{COMPANY_ID}/vacancies", params={"status": "1"}, headers=AUTH).json()) == 2
    feed = client.get(f"/company/{COMPANY_SLUG}.json").json()
    assert {i["vacancy"]["slug"] for i in feed["items"]} == {PY_SLUG, EN_SLUG}


def test_file_link_is_rate_limited(client: httpx.Client) -> None:
    create(client, body())
    media = records(client)["files"][0]["id"]
    url = f"/company/{COMPANY_ID}/files/expire"
    assert client.get(url, params={"key": media, "extension": "pdf"}, headers=AUTH).status_code == 200
    limited = client.get(url, params={"key": media, "extension": "pdf"}, headers=AUTH)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    time.sleep(1.05)
    assert client.get(url, params={"key": "nope"}, headers=AUTH).status_code == 404


def test_dry_run_route_validates_without_storing(client: httpx.Client) -> None:
    assert client.post("/vacancy/candidate/test", json=body()).json() == {"response": "test ok"}
    assert client.post("/vacancy/candidate/test", json=body(firstname="")).status_code == 400
    data = records(client)
    assert data["applicants"] == [] and data["test_calls"] == 1


def test_faults_and_reset(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"script": ["error"], "error_status": 503})
    assert create(client, body()).status_code == 503
    assert create(client, body()).status_code == 200
    assert records(client)["faults_injected"] == {"error": 1}
    client.post("/_sandbox/reset")
    data = records(client)
    assert data["applicants"] == [] and len(data["vacancies"]) == 3 and data["faults_injected"] == {}
