"""deploy/kubernetes, checked without a cluster: every rendered manifest validates against its
schema, and the manifests agree with the code, compose.yaml and the Dockerfiles they mirror."""

from __future__ import annotations

import importlib.util
import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from services.common.config import (
    AlerterSettings,
    DashboardSettings,
    DetectionSettings,
    KafkaSettings,
    ProducerSettings,
)
from tests.deploy import k8s_schemas
from tests.deploy.kustomize import Document, KustomizeError, render, strategic_merge
from tests.deploy.support import load_script, parse_dockerfile, rendered_compose
from tests.helpers import REPO
from tests.test_docs import variables_read_by_code

KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.parent.name for p in (KUBERNETES / "overlays").glob("*/kustomization.yaml"))
FLINK_DOCKERFILE = REPO / "docker" / "flink.Dockerfile"
SERVICES = ("producer", "alerter", "dashboard")
WEBHOOK = re.compile(r"discord(?:app)?\.com/api/webhooks/", re.IGNORECASE)
SECRET_KEY = re.compile(r"password|passwd|token|secret|api[_-]?key|webhook", re.IGNORECASE)


generator = load_script(REPO / "scripts" / "generate_k8s_monitoring.py")
RENDERED = {overlay: render(KUBERNETES / "overlays" / overlay) for overlay in OVERLAYS}


def one(documents: list[Document], kind: str, name: str | None = None) -> Document:
    found = [d for d in documents if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def config_env(documents: list[Document]) -> dict[str, str]:
    return dict(one(documents, "ConfigMap", "arb-config")["data"])


def all_documents() -> list[tuple[str, Document]]:
    return [(overlay, doc) for overlay, docs in RENDERED.items() for doc in docs]


def doc_id(item: tuple[str, Document]) -> str:
    overlay, doc = item
    return f"{overlay}:{doc['kind']}/{doc['metadata']['name']}"


# --- schemas -----------------------------------------------------------------------------------


def test_both_overlays_exist() -> None:
    assert OVERLAYS == ["local", "production"]


@pytest.mark.parametrize("item", all_documents(), ids=doc_id)
def test_manifest_validates_against_its_schema(item: tuple[str, Document]) -> None:
    """Core kinds against Kubernetes' schemas, operator kinds against their CRDs, strictly."""
    _, document = item
    k8s_schemas.validate(document)
    if document["kind"] == "FlinkDeployment":
        for part in ("podTemplate",):
            k8s_schemas.validate_pod_template(document["spec"][part])


def test_crd_schemas_reject_unknown_fields() -> None:
    """The tightening works: a misspelt field fails where the CRD alone would accept it."""
    deployment = one(RENDERED["local"], "FlinkDeployment")
    broken = strategic_merge(deployment, {"spec": {"job": {"paralelism": 2}}}, by_key=False)
    with pytest.raises(jsonschema.ValidationError, match="paralelism"):
        k8s_schemas.validate(broken)
    topic = one(RENDERED["local"], "KafkaTopic", "crypto-prices")
    with pytest.raises(jsonschema.ValidationError):
        k8s_schemas.validate(strategic_merge(topic, {"spec": {"partition": 3}}, by_key=False))


def test_core_schemas_reject_unknown_fields() -> None:
    service = one(RENDERED["local"], "Service", "producer")
    broken = strategic_merge(service, {"spec": {"selectr": {"a": "b"}}}, by_key=True)
    with pytest.raises(Exception, match="selectr"):
        k8s_schemas.validate(broken)


def test_every_kept_crd_is_used() -> None:
    """The CRDs' versions are the ones the manifests use (newer CRDs need new apiVersions)."""
    used = {(d["apiVersion"], d["kind"]) for _, d in all_documents()}
    assert set(k8s_schemas.crd_schemas()) <= used


# --- the renderer ------------------------------------------------------------------------------


def test_renderer_refuses_what_it_does_not_support(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(KustomizeError, match="configMapGenerator"):
        render(tmp_path)


def test_strategic_merge_merges_core_lists_by_key_and_replaces_custom_ones() -> None:
    base = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    patch = {"containers": [{"name": "b", "image": "z"}]}
    assert strategic_merge(base, patch, by_key=True)["containers"] == [
        {"name": "a", "image": "x"}, {"name": "b", "image": "z"}]
    assert strategic_merge(base, patch, by_key=False)["containers"] == patch["containers"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_sets_namespace_and_part_of_label(overlay: str) -> None:
    for doc in RENDERED[overlay]:
        assert doc["metadata"]["namespace"] == "crypto-arb"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "crypto-arb"


# --- configuration -----------------------------------------------------------------------------


def known_variables() -> set[str]:
    """What the code reads: literal names, and the per-venue names the producer builds."""
    from services.producer.venues import VENUES

    per_venue = {f"ARB_{venue.upper()}_{suffix}" for venue in VENUES
                 for suffix in ("WS_URL", "SYMBOLS")}
    return variables_read_by_code() | per_venue


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_sets_only_known_settings_with_valid_values(overlay: str) -> None:
    env = config_env(RENDERED[overlay])
    unknown = {name for name in env if name.startswith(("ARB_", "KAFKA_"))} - known_variables()
    assert sorted(unknown) == []
    for settings in (KafkaSettings, DetectionSettings, ProducerSettings, AlerterSettings,
                     DashboardSettings):
        settings.from_env(env)  # raises ConfigError on a value the service would refuse


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_match_the_configuration(overlay: str) -> None:
    documents = RENDERED[overlay]
    kafka = KafkaSettings.from_env(config_env(documents))
    topics = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "KafkaTopic"}
    assert set(topics) == set(kafka.topics) == set(KafkaSettings().topics)
    for name, spec in topics.items():
        assert spec.get("topicName", name) == name
        assert spec["partitions"] == kafka.partitions, name
        assert int(spec["config"]["retention.ms"]) == compose_retention_hours() * 3_600_000
        assert d_cluster(documents, name) == one(documents, "Kafka")["metadata"]["name"]


def d_cluster(documents: list[Document], topic: str) -> str:
    return one(documents, "KafkaTopic", topic)["metadata"]["labels"]["strimzi.io/cluster"]


def compose_retention_hours() -> int:
    return int(rendered_compose()["services"]["kafka"]["environment"]["KAFKA_LOG_RETENTION_HOURS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replication_fits_the_node_pool(overlay: str) -> None:
    documents = RENDERED[overlay]
    brokers = sum(p["spec"]["replicas"] for p in documents if p["kind"] == "KafkaNodePool"
                  and "broker" in p["spec"]["roles"])
    config = one(documents, "Kafka")["spec"]["kafka"]["config"]
    for topic in (d for d in documents if d["kind"] == "KafkaTopic"):
        assert topic["spec"]["replicas"] <= brokers
        assert config["min.insync.replicas"] <= topic["spec"]["replicas"]
    assert config["offsets.topic.replication.factor"] <= brokers


# --- the detection job -------------------------------------------------------------------------


def flink_version() -> str:
    return parse_dockerfile(FLINK_DOCKERFILE).args["FLINK_VERSION"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_job_runs_flink_job_module_as_its_cli_expects(overlay: str) -> None:
    job = one(RENDERED[overlay], "FlinkDeployment")["spec"]["job"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink_version()}.jar"
    args = job["args"]
    module = args[args.index("-pym") + 1]
    assert module == "flink.job"
    spec = importlib.util.find_spec(module)
    assert spec and spec.origin
    source = Path(spec.origin).read_text()
    assert 'if __name__ == "__main__":' in source
    import flink.job

    # main() reads everything from the environment: no user arguments may follow the module.
    assert inspect.signature(flink.job.main).parameters == {}
    assert args[args.index("-pym") + 2:] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_job_parallelism_fits_partitions_and_slots(overlay: str) -> None:
    documents = RENDERED[overlay]
    spec = one(documents, "FlinkDeployment")["spec"]
    env = config_env(documents)
    parallelism = spec["job"]["parallelism"]
    # flink/job.py sets parallelism.default from ARB_FLINK_PARALLELISM, over the operator's.
    assert DetectionSettings.from_env(env).parallelism == parallelism
    assert parallelism <= KafkaSettings.from_env(env).partitions
    slots = int(spec["flinkConfiguration"]["taskmanager.numberOfTaskSlots"])
    assert spec["taskManager"]["replicas"] * slots >= parallelism


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_job_state_is_operator_managed(overlay: str) -> None:
    documents = RENDERED[overlay]
    spec = one(documents, "FlinkDeployment")["spec"]
    conf = spec["flinkConfiguration"]
    assert spec["job"]["upgradeMode"] == "savepoint"
    assert re.match(r"^(file|s3|gs|abfss?|hdfs)://", conf["execution.checkpointing.dir"])
    assert re.match(r"^(file|s3|gs|abfss?|hdfs)://", conf["execution.checkpointing.savepoint-dir"])
    # The job must not configure or restore checkpoints itself (job.py does when this is > 0).
    assert DetectionSettings.from_env(config_env(documents)).checkpoint_interval_ms == 0
    container = one_container(spec["podTemplate"], "flink-main-container")
    if conf["execution.checkpointing.dir"].startswith("file://"):
        mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
        path = conf["execution.checkpointing.dir"].removeprefix("file://")
        assert any(path.startswith(m) for m in mounted), "a file:// dir needs a shared volume"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_job_reports_prometheus_metrics_on_the_configured_port(overlay: str) -> None:
    documents = RENDERED[overlay]
    spec = one(documents, "FlinkDeployment")["spec"]
    port = int(config_env(documents)["ARB_FLINK_METRICS_PORT"])
    conf = spec["flinkConfiguration"]
    assert conf["metrics.reporter.prom.factory.class"].endswith("PrometheusReporterFactory")
    assert int(conf["metrics.reporter.prom.port"]) == port
    container = one_container(spec["podTemplate"], "flink-main-container")
    assert {"name": "metrics", "containerPort": port} in container["ports"]
    assert {"configMapRef": {"name": "arb-config"}} in container["envFrom"]


def one_container(pod_template: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_template["spec"]["containers"] if c["name"] == name)


# --- images ------------------------------------------------------------------------------------


def compose_image(service: str) -> tuple[str, str]:
    name, _, tag = rendered_compose()["services"][service]["image"].rpartition(":")
    return name, tag


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_ones_the_dockerfiles_build(overlay: str) -> None:
    """The repositories compose builds from docker/*.Dockerfile (a registry prefix allowed)."""
    documents = RENDERED[overlay]
    flink_name, flink_tag = compose_image("flink-jobmanager")
    flink = one(documents, "FlinkDeployment")["spec"]
    name, _, tag = flink["image"].rpartition(":")
    assert name == flink_name or name.endswith("/" + flink_name)
    assert tag == flink_tag == flink_version()
    major, minor = flink_version().split(".")[:2]
    assert flink["flinkVersion"] == f"v{major}_{minor}"
    services_name, services_tag = compose_image("producer")
    for service in SERVICES:
        image = one_container(one(documents, "Deployment", service)["spec"]["template"],
                              service)["image"]
        name, _, tag = image.rpartition(":")
        assert name == services_name or name.endswith("/" + services_name), image
        if overlay == "local":
            assert tag == services_tag


# --- services ----------------------------------------------------------------------------------


def compose_health_urls(service: str) -> set[tuple[int, str]]:
    test = rendered_compose()["services"][service]["healthcheck"]["test"]
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/\S*)", " ".join(test))
    return {(int(port), path) for port, path in urls}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_services_start_and_probe_as_compose_does(overlay: str, service: str) -> None:
    documents = RENDERED[overlay]
    compose = rendered_compose()["services"][service]
    container = one_container(one(documents, "Deployment", service)["spec"]["template"], service)
    command = compose["command"]
    assert container["command"] == (shlex.split(command) if isinstance(command, str) else command)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probed = set()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        probed.add((ports[get["port"]], get["path"]))
    assert (ports["metrics"], "/healthz") in probed
    assert probed <= compose_health_urls(service)
    env = config_env(documents)
    assert ports["metrics"] == int(env[f"ARB_{service.upper()}_METRICS_PORT"])
    service_ports = {p["name"]: p["targetPort"] for p in one(documents, "Service",
                                                             service)["spec"]["ports"]}
    assert set(service_ports) <= set(ports)
    assert {"configMapRef": {"name": "arb-config"}} in container["envFrom"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_alert_history_has_one_writer(overlay: str) -> None:
    documents = RENDERED[overlay]
    alerter = one(documents, "Deployment", "alerter")["spec"]
    assert alerter["replicas"] == 1
    assert alerter["strategy"]["type"] == "Recreate"
    claim = next(v["persistentVolumeClaim"]["claimName"]
                 for v in alerter["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v)
    one(documents, "PersistentVolumeClaim", claim)
    history = AlerterSettings.from_env(config_env(documents)).history_db
    mounts = one_container(alerter["template"], "alerter")["volumeMounts"]
    assert any(history.startswith(m["mountPath"] + "/") for m in mounts)


# --- secrets -----------------------------------------------------------------------------------


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _walk(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [pair for i, value in enumerate(node) for pair in _walk(value, f"{path}[{i}]")]
    return [(path, node)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhook_comes_from_a_secret_reference_only(overlay: str) -> None:
    documents = RENDERED[overlay]
    assert not [d for d in documents if d["kind"] == "Secret"], "secrets are created by hand"
    alerter = one_container(one(documents, "Deployment", "alerter")["spec"]["template"], "alerter")
    webhook = next(e for e in alerter["env"] if e["name"] == "DISCORD_WEBHOOK_URL")
    assert set(webhook) == {"name", "valueFrom"}
    assert webhook["valueFrom"]["secretKeyRef"]["key"] == "DISCORD_WEBHOOK_URL"
    for doc in documents:
        for path, value in _walk(doc):
            # env entries are name/value pairs: check the pair's name as the key.
            env_name = _env_name(doc, path)
            if isinstance(value, str) and SECRET_KEY.search(env_name or path.rsplit(".", 1)[-1]):
                assert path.endswith((".name", ".key")), f"{doc_id((overlay, doc))} {path}"


def _env_name(doc: Document, path: str) -> str | None:
    if not path.endswith(".value"):
        return None
    node: Any = doc
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removesuffix(".value")):
        node = node[part[0]] if part[0] else node[int(part[1])]
    return node.get("name") if isinstance(node, dict) else None


def test_no_secret_value_in_any_file() -> None:
    for path in sorted(KUBERNETES.rglob("*")):
        if path.is_file():
            text = path.read_text()
            assert not WEBHOOK.search(text), path
            assert not re.search(r"(?i)(password|token)\s*[:=]\s*\S+", text), path


def test_secret_scan_finds_a_webhook_value() -> None:
    """The scan above is not vacuous: a literal env value for the webhook fails it."""
    documents = RENDERED["local"]
    alerter = one(documents, "Deployment", "alerter")
    leaked = strategic_merge(alerter, {"spec": {"template": {"spec": {"containers": [
        {"name": "alerter", "env": [{"name": "DISCORD_WEBHOOK_URL",
                                     "value": "https://example.invalid/hook"}]}]}}}},
        by_key=True)
    env = one_container(leaked["spec"]["template"], "alerter")["env"]
    index = next(i for i, e in enumerate(env) if e["name"] == "DISCORD_WEBHOOK_URL")
    path = f".spec.template.spec.containers[0].env[{index}].value"
    assert _env_name(leaked, path) == "DISCORD_WEBHOOK_URL"


# --- generated monitoring ----------------------------------------------------------------------


def test_generated_monitoring_is_in_step_with_its_sources() -> None:
    assert generator.stale() == [], "run scripts/generate_k8s_monitoring.py"


def test_staleness_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in generator.rule_files():
        (rules / path.name).write_text(path.read_text().replace("for: 1m", "for: 2m", 1))
    monkeypatch.setattr(generator, "RULES_DIR", rules)
    assert generator.stale() == [generator.PROMETHEUS_RULE_FILE]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitoring_covers_every_source(overlay: str) -> None:
    documents = RENDERED[overlay]
    rule = one(documents, "PrometheusRule")
    assert rule["spec"] == generator.prometheus_rule()["spec"]
    dashboards = {key for d in documents if d["kind"] == "ConfigMap"
                  and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
                  for key in d["data"]}
    assert dashboards == {p.name for p in generator.DASHBOARDS_DIR.glob("*.json")}
    selected = {m["spec"]["selector"].get("matchLabels", {}).get("app")
                for m in documents if m["kind"] == "PodMonitor"}
    assert one(documents, "FlinkDeployment")["metadata"]["name"] in selected


# --- docs --------------------------------------------------------------------------------------


def test_docs_say_validated_not_run_and_are_linked() -> None:
    text = (REPO / "docs" / "kubernetes.md").read_text()
    assert "validated, not run" in text
    for secret in ("kubectl create secret generic arb-discord",):
        assert secret in text
    assert "kubernetes.md" in (REPO / "docs" / "operations.md").read_text()
