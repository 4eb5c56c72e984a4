"""The job boards' emulators on their own, over HTTP: HelloWork's status API, Indeed's OAuth
client-credentials tokens and Disposition Sync GraphQL (shape, order, PII refusal, expiry), and
the CLI that serves them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.emulators import Emulator

REPO = Path(__file__).resolve().parents[2]
MUTATION = (
    "mutation Send($input: SendPartnerDispositionInput!) { partnerDisposition { send(input: $input) "
    "{ numberGoodDispositions failedDispositions { identifiedBy { indeedApplyID } rationale } } } }"
)


def disposition(apply_id: str, status: str = "NEW", at: str = "2026-12-01T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "identifiedBy": {"indeedApplyID": apply_id},
        "dispositionStatus": status,
        "rawDispositionStatus": "New",
        "atsName": "applyrelay",
        "statusChangeDateTime": at,
        **extra,
    }


def token(indeed: Emulator, secret: str = "sandbox") -> str:  # noqa: S107 (the emulator's public default)
    response = indeed.http.post(
        "/oauth/v2/tokens",
        data={"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": secret},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] >= 1
    return str(body["access_token"])


def send(indeed: Emulator, bearer: str, dispositions: list[dict[str, Any]]) -> httpx.Response:
    return indeed.http.post(
        "/graphql",
        json={"query": MUTATION, "variables": {"input": {"dispositions": dispositions}}},
        headers={"authorization": f"Bearer {bearer}"},
    )


def test_hellowork_records_valid_statuses_and_refuses_bad_ones(hellowork: Emulator) -> None:
    good = {
        "status": "Entretien",
        "eventDate": "2026-12-01T10:00:00Z",
        "created": "2026-11-30T09:00:00Z",
        "jobId": "2001",
        "source": "HelloWork",
    }
    assert hellowork.http.post("/v1/applications/hw-1/status", json=good).status_code == 200
    assert hellowork.http.post("/v1/applications/hw-1/status", json={**good, "jobId": 2001}).status_code == 400
    assert hellowork.http.post("/v1/applications/hw-1/status", json={"status": "x"}).status_code == 400
    assert hellowork.http.post("/v1/applications/hw-1/status", json={**good, "email": "a@b.c"}).status_code == 400
    records = hellowork.records()
    assert records["statuses"] == [{"applicationId": "hw-1", **good}]
    assert len(records["refused"]) == 3
    hellowork.faults(script=["error"])
    assert hellowork.http.post("/v1/applications/hw-1/status", json=good).status_code == 503


def test_indeed_tokens_and_dispositions(indeed: Emulator) -> None:
    assert indeed.http.post("/oauth/v2/tokens", data={"grant_type": "client_credentials"}).status_code == 401
    bearer = token(indeed)
    assert send(indeed, "not-a-token", [disposition("a" * 64)]).status_code == 401
    ok = send(indeed, bearer, [disposition("a" * 64), disposition("b" * 64, "HIRED", "2026-12-01T11:00:00Z")])
    assert ok.json() == {
        "data": {"partnerDisposition": {"send": {"numberGoodDispositions": 2, "failedDispositions": []}}}
    }
    assert [d["dispositionStatus"] for d in indeed.records()["dispositions"]] == ["NEW", "HIRED"]

    unsorted = send(indeed, bearer, [disposition("c", at="2026-12-02T00:00:00Z"), disposition("d")])
    assert "sorted" in unsorted.json()["errors"][0]["message"]
    bad = send(indeed, bearer, [{**disposition("e"), "dispositionStatus": "MAYBE", "atsName": ""}])
    assert "dispositionStatus" in bad.json()["errors"][0]["message"]
    assert "25" in send(indeed, bearer, [disposition(str(i)) for i in range(26)]).json()["errors"][0]["message"]
    two_ids = send(indeed, bearer, [{**disposition("f"), "identifiedBy": {"indeedApplyID": "f", "ittk": "g"}}])
    assert "exactly one" in two_ids.json()["errors"][0]["message"]


def test_indeed_refuses_personal_data(indeed: Emulator) -> None:
    bearer = token(indeed)
    for leak in (
        {"rawDispositionDetails": "mail ada@example.org"},
        {"rawDispositionDetails": "+33 6 12 34 56 78"},
        {"candidateName": "Ada"},
        {"identifiedBy": {"alternateIdentifier": {"jobSeekerIdentifier": {"emailAddress": "x@y.z"}}}},
    ):
        response = send(indeed, bearer, [{**disposition("h"), **leak}])
        assert "personal data" in response.json()["errors"][0]["message"], leak
    records = indeed.records()
    assert len(records["pii_refused"]) == 4 and records["dispositions"] == []
    numeric_id = send(indeed, bearer, [disposition("12345678901")])  # an all-digit apply id is not a phone
    assert numeric_id.json()["data"]["partnerDisposition"]["send"]["numberGoodDispositions"] == 1


def test_indeed_tokens_expire_and_ids_can_fail(indeed: Emulator) -> None:
    indeed.http.post("/_sandbox/indeed/settings", json={"expire_after_requests": 1, "fail_ids": {"bad": "Unknown"}})
    bearer = token(indeed)
    first = send(indeed, bearer, [disposition("ok"), disposition("bad", at="2026-12-01T10:00:01Z")])
    failed = first.json()["data"]["partnerDisposition"]["send"]
    assert failed["numberGoodDispositions"] == 1 and failed["failedDispositions"][0]["rationale"] == "Unknown"
    assert send(indeed, bearer, [disposition("later")]).status_code == 401  # expired mid-batch
    assert send(indeed, token(indeed), [disposition("later")]).status_code == 200
    indeed.http.post("/_sandbox/indeed/settings", json={"token_ttl_s": 0.2})
    short = token(indeed)
    time.sleep(0.3)
    assert send(indeed, short, [disposition("late")]).status_code == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_cli_serves_both_board_emulators() -> None:
    for name, path in (("hellowork", "/_sandbox/records"), ("indeed", "/_sandbox/records")):
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "sandbox", name, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            assert response.status_code == 200 and "faults_injected" in response.json()
        finally:
            process.terminate()
            process.wait(timeout=10)
