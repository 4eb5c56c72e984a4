"""deploy/ is checked without a container engine: the compose file against the Compose Specification's
JSON schema (shipped by check-jsonschema), the Kubernetes manifests against the Kubernetes API's
JSON schemas (shipped by kubernetes-validate, strict: unknown fields fail), the KEDA ScaledObject
against its CRD schema (tests/deploy/schemas/), and the settings that matter read back and compared."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.harness import REPO

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.33"
JOB_TIMEOUT_S = 45


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_file_matches_the_compose_spec() -> None:
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    errors = sorted(_validator(schema).iter_errors(compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_runs_redis_with_aof_on_a_volume_web_and_two_workers() -> None:
    services = compose()["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--appendfsync") + 1] in ("everysec", "always")
    assert any(v.startswith("redis-data:/data") for v in services["redis"]["volumes"])
    assert "redis-data" in compose()["volumes"]
    assert services["web"]["command"][:2] == ["applyrelay", "web"]
    assert services["worker"]["command"] == ["applyrelay", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert int(services["worker"]["stop_grace_period"].rstrip("s")) > JOB_TIMEOUT_S
    assert services["web"]["environment"]["APPLYRELAY_JOB_TIMEOUT_S"] == str(JOB_TIMEOUT_S)
    assert services["web"]["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize(("source", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_matches_its_schema(source: str, doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        schema = json.loads((REPO / "tests/deploy/schemas/keda-scaledobject-v1alpha1.json").read_text())
        errors = list(_validator(schema).iter_errors(doc))
        assert not errors, [e.message for e in errors]
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_web_probes_service_and_non_root() -> None:
    web = find("Deployment", "applyrelay-web")
    pod = web["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = find("Service", "applyrelay-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_workers_get_time_to_finish_and_scale_on_queue_depth() -> None:
    worker = find("Deployment", "applyrelay-worker")
    pod = worker["spec"]["template"]["spec"]
    config = find("ConfigMap", "applyrelay")["data"]
    assert int(config["APPLYRELAY_JOB_TIMEOUT_S"]) == JOB_TIMEOUT_S
    assert pod["terminationGracePeriodSeconds"] >= JOB_TIMEOUT_S + 15
    assert pod["containers"][0]["command"] == ["applyrelay", "worker"]
    assert config["REDIS_SENTINELS"] and config["REDIS_SENTINEL_MASTER"]
    tomllib.loads(config["applyrelay.toml"])
    keda = find("ScaledObject", "applyrelay-worker")
    assert keda["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "applyrelay_queue_due_jobs" in keda["spec"]["triggers"][0]["metadata"]["query"]
    hpa = find("HorizontalPodAutoscaler", "applyrelay-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]


def test_a_bad_manifest_is_caught() -> None:
    """The check has teeth: a misspelt field fails strict validation."""
    web = json.loads(json.dumps(find("Deployment", "applyrelay-web")))
    web["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)
    bad = compose()
    bad["services"]["worker"]["stop_grace_periods"] = "60s"
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    assert list(_validator(schema).iter_errors(bad))
    keda = json.loads(json.dumps(find("ScaledObject", "applyrelay-worker")))
    del keda["spec"]["scaleTargetRef"]
    keda_schema = json.loads((REPO / "tests/deploy/schemas/keda-scaledobject-v1alpha1.json").read_text())
    assert list(_validator(keda_schema).iter_errors(keda))


def test_dockerfile_is_slim_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in re.sub(r"\\\n", " ", text).splitlines() if line and not line.startswith("#")]
    froms = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    assert froms and all(re.match(r"python:3\.\d+-slim$", f) for f in froms)
    [user] = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert user.split(":")[0] not in ("root", "0")
    [health] = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert "/health" in health
    for line in instructions:  # every COPY source exists (README.md: pyproject's readme, added by the lead)
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert source == "README.md" or (REPO / source).exists(), source
    assert Path(REPO / ".dockerignore").read_text()
    # the connect page's guides: docs/connectors copied where APPLYRELAY_GUIDES_DIR points
    [copy] = [line.split() for line in instructions if line.startswith("COPY docs/connectors ")]
    assert re.search(rf"APPLYRELAY_GUIDES_DIR={re.escape(copy[-1])}\b", text)
    assert "!docs/connectors" in Path(REPO / ".dockerignore").read_text().splitlines()


def test_compose_keeps_attachments_in_its_minio_and_kubernetes_in_s3() -> None:
    """Several containers (hosts) share one blob store: S3-compatible, never local files."""
    services = compose()["services"]
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["APPLYRELAY_BLOBS"].startswith("s3://") and env["APPLYRELAY_S3_ENDPOINT"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
        assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    bucket = env["APPLYRELAY_BLOBS"].removeprefix("s3://").split("/")[0]
    assert f"local/{bucket}" in services["minio-init"]["command"][0]
    assert "minio-data" in compose()["volumes"]
    config = find("ConfigMap", "applyrelay")["data"]
    assert config["APPLYRELAY_BLOBS"].startswith("s3://") and config["AWS_REGION"]
    secret = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text())["stringData"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret)
