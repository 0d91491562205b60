"""final/deploy/kubernetes: parsed and checked against final/ itself, since no cluster runs here."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
import yaml
from helpers import ROOT

FINAL = ROOT / "final"
MANIFESTS = FINAL / "deploy" / "kubernetes"
# Settings holding credentials: in the Secret, never in the ConfigMap.
SECRET_SETTINGS = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
# final/app/config.py: production refuses a shorter SECRET_KEY at start-up.
MIN_SECRET_KEY_BYTES = 32


def load(name: str) -> dict[str, Any]:
    """Parse one manifest (one document per file)."""
    document: dict[str, Any] = yaml.safe_load((MANIFESTS / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """Every manifest listed in kustomization.yaml, by kind."""
    kustomization = load("kustomization.yaml")
    by_kind = {}
    for name in kustomization["resources"]:
        document = load(name)
        assert document["kind"] not in by_kind, f"two manifests of kind {document['kind']}"
        by_kind[document["kind"]] = document
    return by_kind


def settings_names() -> set[str]:
    """The environment variables final/ reads: the fields of Settings, upper-cased."""
    tree = ast.parse((FINAL / "app" / "config.py").read_text(encoding="utf-8"))
    (settings,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    return {
        statement.target.id.upper()
        for statement in settings.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    } - {"MODEL_CONFIG"}


def dockerfile_command() -> list[str]:
    """final/Dockerfile's CMD, as an argv."""
    text = (FINAL / "Dockerfile").read_text(encoding="utf-8")
    (command,) = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    argv: list[str] = json.loads(command)
    return argv


def option(argv: list[str], name: str) -> str:
    """The value after an option in an argv."""
    return argv[argv.index(name) + 1]


def health_routes() -> set[str]:
    """The paths final/app/routes/health.py serves: its prefix and each route's path."""
    source = (FINAL / "app" / "routes" / "health.py").read_text(encoding="utf-8")
    (prefix,) = re.findall(r'APIRouter\(prefix="([^"]+)"', source)
    return {prefix + path for path in re.findall(r'@router\.get\(\s*"([^"]+)"', source)}


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a Deployment or a Job."""
    spec: dict[str, Any] = document["spec"]["template"]["spec"]
    return spec


def api_container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Deployment's one container."""
    (container,) = pod_spec(manifests["Deployment"])["containers"]
    assert isinstance(container, dict)
    return container


def probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's HTTP probes, by kind."""
    kinds = ("startupProbe", "livenessProbe", "readinessProbe")
    return {kind: container[kind]["httpGet"] for kind in kinds if kind in container}


def test_every_manifest_in_the_directory_is_listed_in_the_kustomization() -> None:
    files = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(load("kustomization.yaml")["resources"]) == sorted(files)


def test_liveness_and_readiness_ask_routes_final_serves(
    manifests: dict[str, dict[str, Any]],
) -> None:
    found = probes(api_container(manifests))
    assert found["livenessProbe"]["path"] == "/health/live"
    assert found["readinessProbe"]["path"] == "/health/ready"
    routes = health_routes()
    for kind, probe in found.items():
        assert probe["path"] in routes, f"{kind} asks {probe['path']}, not one of {routes}"


def test_the_probes_send_a_host_final_accepts(manifests: dict[str, dict[str, Any]]) -> None:
    # The kubelet sends the pod's IP as Host, which TRUSTED_HOSTS would refuse with 400.
    trusted = manifests["ConfigMap"]["data"]["TRUSTED_HOSTS"].split(",")
    for kind, probe in probes(api_container(manifests)).items():
        hosts = [h["value"] for h in probe.get("httpHeaders", []) if h["name"].lower() == "host"]
        assert len(hosts) == 1, f"{kind} sends no Host header (or several): {hosts}"
        assert hosts[0] in trusted, f"{kind} sends Host {hosts[0]}, not one of {trusted}"


def test_the_container_port_is_the_one_the_image_exposes_and_serves(
    manifests: dict[str, dict[str, Any]],
) -> None:
    (exposed,) = re.findall(r"^EXPOSE (\d+)$", (FINAL / "Dockerfile").read_text(), re.MULTILINE)
    (port,) = api_container(manifests)["ports"]
    assert port["containerPort"] == int(exposed) == int(option(dockerfile_command(), "--port"))
    for kind, probe in probes(api_container(manifests)).items():
        assert probe["port"] in (port["name"], port["containerPort"]), kind


def test_the_grace_period_outlasts_the_drain_and_the_graceful_shutdown(
    manifests: dict[str, dict[str, Any]],
) -> None:
    graceful = int(option(dockerfile_command(), "--timeout-graceful-shutdown"))
    pre_stop = api_container(manifests)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep", pre_stop
    # The preStop hook's time counts against the grace period too.
    grace = pod_spec(manifests["Deployment"])["terminationGracePeriodSeconds"]
    assert grace > int(pre_stop[1]) + graceful, (grace, pre_stop, graceful)


def test_the_pods_run_as_the_image_user_on_a_read_only_root(
    manifests: dict[str, dict[str, Any]],
) -> None:
    (uid,) = re.findall(r"useradd .*--uid (\d+)", (FINAL / "Dockerfile").read_text())
    for kind in ("Deployment", "Job"):
        pod = pod_spec(manifests[kind])
        assert pod["securityContext"]["runAsNonRoot"] is True, kind
        assert pod["securityContext"]["runAsUser"] == int(uid), kind
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, kind
            assert context["allowPrivilegeEscalation"] is False, kind
            assert context["capabilities"]["drop"] == ["ALL"], kind


def test_every_container_has_resource_requests_and_a_memory_limit(
    manifests: dict[str, dict[str, Any]],
) -> None:
    for kind in ("Deployment", "Job"):
        for container in pod_spec(manifests[kind])["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), kind
            assert "memory" in resources["limits"], kind


def test_every_configured_name_is_a_setting_of_final(
    manifests: dict[str, dict[str, Any]],
) -> None:
    known = settings_names()
    configured = {
        "ConfigMap": set(manifests["ConfigMap"]["data"]),
        "Secret": set(manifests["Secret"]["stringData"]),
    }
    for kind in ("Deployment", "Job"):
        configured[kind] = {
            variable["name"]
            for container in pod_spec(manifests[kind])["containers"]
            for variable in container.get("env", [])
        }
    for kind, names in configured.items():
        assert names <= known, f"{kind} sets {sorted(names - known)}, which final/ never reads"


def test_every_configmap_and_secret_value_is_a_string(
    manifests: dict[str, dict[str, Any]],
) -> None:
    # The API server refuses a ConfigMap whose YAML says 10 or false rather than "10".
    for kind, field in (("ConfigMap", "data"), ("Secret", "stringData")):
        values = manifests[kind][field]
        not_strings = {name: value for name, value in values.items() if not isinstance(value, str)}
        assert not not_strings, f"{kind} has values YAML reads as other types: {not_strings}"


def test_the_secrets_are_in_the_secret_and_only_there(
    manifests: dict[str, dict[str, Any]],
) -> None:
    secret = manifests["Secret"]
    assert set(secret["stringData"]) == SECRET_SETTINGS
    assert not SECRET_SETTINGS & set(manifests["ConfigMap"]["data"])
    # Placeholders, and a SECRET_KEY that production refuses: a forgotten one fails loudly.
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    assert len(secret["stringData"]["SECRET_KEY"].encode()) < MIN_SECRET_KEY_BYTES


def test_the_deployment_and_the_job_read_the_configmap_and_the_secret(
    manifests: dict[str, dict[str, Any]],
) -> None:
    wanted = {
        ("configMapRef", manifests["ConfigMap"]["metadata"]["name"]),
        ("secretRef", manifests["Secret"]["metadata"]["name"]),
    }
    for kind in ("Deployment", "Job"):
        for container in pod_spec(manifests[kind])["containers"]:
            sources = {
                (ref, source[ref]["name"])
                for source in container["envFrom"]
                for ref in ("configMapRef", "secretRef")
                if ref in source
            }
            assert sources == wanted, kind


def test_the_service_and_the_budget_select_the_deployment_pods(
    manifests: dict[str, dict[str, Any]],
) -> None:
    deployment = manifests["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    selectors = {
        "Service": manifests["Service"]["spec"]["selector"],
        "PodDisruptionBudget": manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector.items() <= labels.items(), f"{kind} selects {selector}, pods are {labels}"
    # The migration Job's pods are not API pods: neither may select them.
    job_labels = manifests["Job"]["spec"]["template"]["metadata"]["labels"]
    for kind, selector in selectors.items():
        assert not selector.items() <= job_labels.items(), f"{kind} selects the migration pods"


def test_the_autoscaler_scales_the_deployment_and_keeps_the_budget_possible(
    manifests: dict[str, dict[str, Any]],
) -> None:
    autoscaler = manifests["HorizontalPodAutoscaler"]
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = autoscaler["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment"
    assert target["name"] == manifests["Deployment"]["metadata"]["name"]
    # With minAvailable equal to the minimum, no node could ever be drained.
    minimum = manifests["PodDisruptionBudget"]["spec"]["minAvailable"]
    assert autoscaler["spec"]["minReplicas"] > minimum


def test_the_migration_job_runs_alembic_from_the_deployment_image(
    manifests: dict[str, dict[str, Any]],
) -> None:
    job = manifests["Job"]
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == ["alembic", "upgrade", "head"]
    assert container["image"] == api_container(manifests)["image"]
    # A failed migration must fail the Job, not loop in place.
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_the_service_routes_to_the_named_container_port(
    manifests: dict[str, dict[str, Any]],
) -> None:
    (port,) = manifests["Service"]["spec"]["ports"]
    (container_port,) = api_container(manifests)["ports"]
    assert port["targetPort"] in (container_port["name"], container_port["containerPort"])
