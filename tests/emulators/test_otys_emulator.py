"""The OTYS OWS emulator on its own, over real HTTP: envelope, sessions, validation, files, faults."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.sandbox.otys import E_FILE_REJECTED, SESSION_EXPIRED, SESSION_UNKNOWN
from tests.support.emulators import Emulator, EmulatorFactory

JOB = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


@pytest.fixture
def client(otys: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=otys.url) as c:
        yield c


def rpc(client: httpx.Client, method: str, *params: Any) -> dict[str, Any]:
    response = client.post("/jservice.php", json={"jsonrpc": "2.0", "method": method, "params": list(params), "id": 7})
    assert response.status_code == 200  # OWS answers errors in an HTTP 200 too
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == 7
    return body


def login(client: httpx.Client) -> str:
    return rpc(client, "loginByUid", "sandbox")["result"]


def person(email: str = "a@example.nl", **extra: Any) -> dict[str, Any]:
    return {"Person": {"firstName": "A", "lastName": "B", "emailPrimary": email, **extra}}


def test_envelope_and_errors(client: httpx.Client) -> None:
    assert rpc(client, "loginByUid", "wrong")["error"]["message"].startswith("Access denied")
    session = login(client)
    assert rpc(client, "Otys.Services.Nope.add", session)["error"]["code"] == -32601
    assert rpc(client, "Otys.Services.CandidateService.add", "bogus", person())["error"]["message"] == SESSION_UNKNOWN
    bad = client.post("/jservice.php", content=b"{nope").json()
    assert bad["error"]["code"] == -32700
    assert client.post("/jservice.php", json={"jsonrpc": "2.0", "id": 1}).json()["error"]["code"] == -32600
    wrapped = client.post(
        "/jservice.php",
        json={
            "jsonrpc": "2.0",
            "id": 2,
            "method": "Otys.Services.LanguageService.wrapRequest",
            "params": ["en", {"method": "check", "params": [session]}],
        },
    ).json()
    assert wrapped["result"]["clientCode"] == "SANDBOX"
    batch = client.post(
        "/jservice.php",
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "check", "params": [session]},
            {"jsonrpc": "2.0", "id": 2, "method": "check", "params": ["x"]},
        ],
    )
    assert [("result" in r, "error" in r) for r in batch.json()] == [(True, False), (False, True)]


def test_session_expiry_on_demand_and_after_n_calls(client: httpx.Client, emulator: EmulatorFactory) -> None:
    session = login(client)
    assert "result" in rpc(client, "check", session)
    client.post("/_sandbox/otys/expire-sessions").raise_for_status()
    assert rpc(client, "check", session)["error"]["message"] == SESSION_EXPIRED
    with httpx.Client(base_url=emulator("otys", session_max_calls=2).url) as c2:
        s2 = login(c2)
        assert "result" in rpc(c2, "check", s2) and "result" in rpc(c2, "check", s2)
        assert rpc(c2, "check", s2)["error"]["message"] == SESSION_EXPIRED
        assert c2.get("/_sandbox/records").json()["logins"] == 1


def test_candidate_validation_duplicates_and_lookup(client: httpx.Client) -> None:
    session = login(client)
    err = rpc(client, "Otys.Services.CandidateService.add", session, {"Person": {"firstName": "A"}})["error"]
    assert "lastName" in err["message"]
    err = rpc(client, "Otys.Services.CandidateService.add", session, person(gender="male"))["error"]
    assert "gender" in err["message"]
    err = rpc(client, "Otys.Services.CandidateService.add", session, {**person(), "availableAt": "2027-01-01"})
    assert "availableAt" in err["error"]["message"]
    uid = rpc(client, "Otys.Services.CandidateService.add", session, person())["result"]
    dup = rpc(client, "Otys.Services.CandidateService.add", session, person("A@example.nl"))["error"]
    assert "Duplicate" in dup["message"]
    query = {
        "what": {"uid": 1},
        "limit": 5,
        "search": {
            "ACTONOMY": {"DATA": {"keywords": {"options": {"searchList": ["emailAddress"]}, "value": '"a@example.nl"'}}}
        },
    }
    assert rpc(client, "Otys.Services.CandidateService.getListEx", session, query)["result"]["listOutput"] == [
        {"uid": uid}
    ]
    assert rpc(client, "Otys.Services.CandidateService.getListEx", session, {"limit": 500})["error"]
    cond = {
        "limit": 5,
        "condition": {"type": "COND", "field": "Person.emailPrimary", "op": "LIKE", "param": "%@example.nl"},
        "getTotalCount": 1,
    }
    assert rpc(client, "Otys.Services.CandidateService.getListEx", session, cond)["result"]["totalCount"] == 1


def test_procedures_stages_and_seed(client: httpx.Client) -> None:
    session = login(client)
    cand = rpc(client, "Otys.Services.CandidateService.add", session, person())["result"]
    bad = rpc(
        client,
        "Otys.Services.ProcedureService.add",
        session,
        {"candidateUid": cand, "vacancyUid": JOB, "ProcedureStatus1": {"uid": "1_42"}},
    )
    assert "ProcedureStatus1" in bad["error"]["message"]
    uid = rpc(
        client,
        "Otys.Services.ProcedureService.add",
        session,
        {"candidateUid": cand, "vacancyUid": JOB, "ProcedureStatus1": {"uid": "1_3"}},
    )["result"]
    again = rpc(client, "Otys.Services.ProcedureService.add", session, {"candidateUid": cand, "vacancyUid": JOB})
    assert "Duplicate" in again["error"]["message"]
    rec = client.get("/_sandbox/records").json()
    [proc] = rec["procedures"]
    assert proc["uid"] == uid and proc["ProcedureStatus1"] == {"uid": "1_3"}
    assert proc["ProcedureStatus2"] == {"uid": "2_1"}  # auto-selected "joined via website"
    assert len(rec["vacancies"]) == 25 and rec["stages"]["1"][0]["code"] == "Applied"
    assert {p["portal"] for p in rec["portals"]} >= {"Indeed", "LinkedIn"}
    qs = rec["questionsets"][0]["Pages"][0]["Questions"]
    assert {q["type"] for q in qs.values()} >= {
        "textField",
        "textarea",
        "dateSelect",
        "file",
        "select",
        "multiSelect",
        "checkbox",
        "radio",
    }
    client.post("/_sandbox/reset").raise_for_status()
    assert client.get("/_sandbox/records").json()["procedures"] == []


def test_files_documents_and_upload_faults(client: httpx.Client) -> None:
    session = login(client)
    cand = rpc(client, "Otys.Services.CandidateService.add", session, person())["result"]
    data = b"%PDF-1.4 hello"
    up = client.post(
        "/fileService.php", files={"file": ("cv.pdf", data, "application/pdf")}, data={"sessionId": session}
    ).json()
    ouid = up["file"]["ouid"]
    doc = rpc(
        client,
        "Otys.Services.AttachedDocumentsService.add",
        session,
        {"candidateUid": cand, "fileUid": ouid, "typeId": 1, "subject": "cv.pdf", "description": "m"},
    )
    assert "result" in doc
    bad_type = rpc(
        client,
        "Otys.Services.AttachedDocumentsService.add",
        session,
        {"candidateUid": cand, "fileUid": ouid, "typeId": 77},
    )
    assert "typeId" in bad_type["error"]["message"]
    listed = rpc(
        client,
        "Otys.Services.AttachedDocumentsService.getListEx",
        session,
        {"limit": 10, "condition": {"type": "COND", "field": "candidateUid", "op": "EQ", "param": cand}},
    )
    assert [d["fileSize"] for d in listed["result"]["listOutput"]] == [len(data)]
    client.post("/_sandbox/otys/upload-faults", json={"extensions": [".docx"], "min_size": 1000, "count": 2})
    refused = client.post(
        "/fileService.php",
        files={"file": ("l.docx", b"PK", "application/octet-stream")},
        data={"sessionId": session},
    ).json()
    assert refused["error"]["code"] == E_FILE_REJECTED
    big = client.post(
        "/fileService.php",
        files={"file": ("big.pdf", b"x" * 2000, "application/pdf")},
        data={"sessionId": session},
    ).json()
    assert "error" in big
    third = client.post(
        "/fileService.php",
        files={"file": ("l.docx", b"PK", "application/octet-stream")},
        data={"sessionId": session},
    ).json()
    assert "file" in third  # count exhausted
    expired = client.post(
        "/fileService.php", files={"file": ("a.txt", b"a", "text/plain")}, data={"sessionId": "nope"}
    ).json()
    assert expired["error"]["message"] == SESSION_UNKNOWN
    rec = client.get("/_sandbox/records").json()
    assert rec["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert all(set(f) == {"ouid", "name", "type", "size", "sha256"} for f in rec["files"])  # never raw bytes
    assert rec["documents"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_rpc_faults_target_one_method(client: httpx.Client) -> None:
    session = login(client)
    client.post(
        "/_sandbox/otys/rpc-faults",
        json={"script": ["error"], "error_status": 502, "path_regex": r"ProcedureService\.add"},
    ).raise_for_status()
    assert "result" in rpc(client, "check", session)  # other methods untouched
    response = client.post(
        "/jservice.php",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "Otys.Services.ProcedureService.add",
            "params": [session, {}],
        },
    )
    assert response.status_code == 502
    client.post("/_sandbox/otys/rpc-faults", json={"script": ["drop_after"], "path_regex": r"CandidateService\.add"})
    with pytest.raises(httpx.HTTPError):
        rpc(client, "Otys.Services.CandidateService.add", session, person())
    rec = client.get("/_sandbox/records").json()
    assert len(rec["candidates"]) == 1  # processed before the drop
    assert rec["rpc_faults_injected"] == {"error": 1, "drop_after": 1}


def test_vacancy_listing_pages_and_filters(client: httpx.Client) -> None:
    session = login(client)
    listing = "Otys.Services.VacancyService.getListEx"
    page = rpc(
        client, listing, session, {"what": {"uid": 1, "title": 1}, "limit": 10, "offset": 20, "getTotalCount": 1}
    )
    assert page["result"]["totalCount"] == 25 and len(page["result"]["listOutput"]) == 5
    assert set(page["result"]["listOutput"][0]) == {"uid", "title"}  # `what` projects
    drafts = {
        "what": {"uid": 1, "status": 1},
        "limit": 200,
        "condition": {"type": "AND", "items": [{"type": "COND", "field": "status", "op": "EQ", "param": "draft"}]},
    }
    rows = rpc(client, listing, session, drafts)["result"]["listOutput"]
    assert rows and {r["status"] for r in rows} == {"draft"}
    since = {
        "what": {"lastModified": 1},
        "limit": 200,
        "condition": {"type": "COND", "field": "lastModified", "op": "GE", "param": "2026-09-25 00:00:00"},
    }
    assert all(r["lastModified"] >= "2026-09-25" for r in rpc(client, listing, session, since)["result"]["listOutput"])
    like = {"limit": 200, "condition": {"type": "COND", "field": "title", "op": "LIKE", "param": "%nurse%"}}
    assert all("Nurse" in r["title"] for r in rpc(client, listing, session, like)["result"]["listOutput"])
    assert rpc(client, listing, session, {"limit": 201})["error"]  # 200 per call


def test_answer_fields_are_checked_as_otys_stores_them(client: httpx.Client) -> None:
    session = login(client)
    add = "Otys.Services.CandidateService.add"
    for field, bad in (
        ("matchCriteria_1", ["11"]),
        ("matchCriteria_1", {"99": 1}),
        ("matchCriteria_9", {"11": 1}),
        ("extraInfo1", 3),
        ("driversLicence", "true"),
        ("availableAt", "2027-01-01"),
    ):
        error = rpc(client, add, session, {**person(), field: bad})["error"]
        assert field in error["message"]
    ok = {**person(), "matchCriteria_1": {"12": 1}, "extraInfo4": "51,52", "driversLicence": True}
    uid = rpc(client, add, session, ok)["result"]
    bad_killer = {"candidateUid": uid, "vacancyUid": JOB, "KillerQuestions": [1]}
    assert (
        "KillerQuestions" in rpc(client, "Otys.Services.ProcedureService.add", session, bad_killer)["error"]["message"]
    )
    [stored] = client.get("/_sandbox/records").json()["candidates"]
    assert stored["matchCriteria_1"] == {"12": 1} and stored["driversLicence"] is True


def test_sandbox_adds_a_question_to_a_vacancy(client: httpx.Client) -> None:
    vacancy = "b2c3d4e5f60718293a4b5c6d7e8f90a1"
    body = {"question": "Region", "type": "select", "fieldName": "matchCriteria_1", "answers": [["11", "North"]]}
    assert client.post(f"/_sandbox/otys/vacancies/{vacancy}/questions", json=body).status_code == 201
    session = login(client)
    qs = rpc(client, "Otys.Services.QuestionSetService.getVacancyQsIdByVacancyOuid", session, vacancy)["result"]
    detail = rpc(client, "Otys.Services.QuestionSetService.getDetail", session, qs)["result"]
    [question] = detail["Pages"][0]["Questions"].values()
    assert question["PossibleAnswersExt"] == [{"uid": "11", "answer": "North"}]
    assert client.post("/_sandbox/otys/vacancies/nope/questions", json=body).status_code == 404
