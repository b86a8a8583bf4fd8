"""compose.yaml without a Docker engine: the Compose Specification's JSON schema, then the
project's own contract: service names, ports and scrape targets agree with DESIGN.md and
prometheus/, every service is health-checked and started in order, every path it mounts or builds
exists, and every variable is in .env.example with no secret written down."""

from __future__ import annotations

import inspect
import json
import re
from graphlib import TopologicalSorter
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    COMPOSE_FILE,
    PROMETHEUS_COMPOSE,
    TEST_GRAFANA_PASSWORD,
    InterpolationError,
    container_ports,
    documented_variables,
    dotenv_from_example,
    env_example,
    environment_of,
    healthcheck_argv,
    interpolate,
    interpolate_tree,
    published_ports,
    raw_compose,
    rendered_compose,
    variables_in,
)
from tests.helpers import REPO
from tests.observability.conftest import in_ci
from tests.observability.contract import design_doc

#: DESIGN.md's "Ports and configuration", as (compose service, port) pairs.
DESIGN_PORTS = {
    "Kafka": [("kafka", 9092)],
    "producer": [("producer", 8001)],
    "alerter": [("alerter", 8002)],
    "dashboard metrics": [("dashboard", 8003)],
    "Flink metrics": [("flink-jobmanager", 9249), ("flink-taskmanager", 9249)],
    "Prometheus": [("prometheus", 9090)],
    "Grafana": [("grafana", 3000)],
    "Streamlit": [("dashboard", 8501)],
}
#: Each service's own port variable, set by compose to the contract's port.
PORT_VARIABLES = {
    "producer": {"ARB_PRODUCER_METRICS_PORT": "8001"},
    "alerter": {"ARB_ALERTER_METRICS_PORT": "8002"},
    "dashboard": {"ARB_DASHBOARD_METRICS_PORT": "8003", "ARB_DASHBOARD_PORT": "8501"},
}
#: Services that run once and exit 0; the others run until stopped.
ONE_SHOT = {"kafka-init"}
#: What the design's data flow needs to start in order (service -> dependency: condition).
REQUIRED_ORDER = {
    "kafka-init": {"kafka": "service_healthy"},
    "flink-taskmanager": {"flink-jobmanager": "service_healthy"},
    "flink-job": {"kafka-init": "service_completed_successfully",
                  "flink-jobmanager": "service_healthy"},
    "alerter": {"kafka-init": "service_completed_successfully"},
    "producer": {"kafka-init": "service_completed_successfully", "flink-job": "service_healthy",
                 "alerter": "service_healthy"},
    "dashboard": {"kafka-init": "service_completed_successfully"},
    "grafana": {"prometheus": "service_healthy"},
}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|WEBHOOK|API_KEY|CREDENTIAL", re.IGNORECASE)
WEBHOOK_LITERAL = re.compile(r"discord(?:app)?\.com/api/webhooks", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return rendered_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's schema, as vendored by check-jsonschema (a dev dependency)."""
    try:
        vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        message = "check-jsonschema is not installed: it ships the Compose Specification schema"
        if in_ci():
            pytest.fail(f"{message}; CI is set, so this is a failure, not a skip")
        pytest.skip(message)
    return json.loads((vendor / "compose-spec.json").read_text())


# --- the file's format -----------------------------------------------------------------------


def test_uses_the_current_compose_format() -> None:
    raw = raw_compose()
    assert "version" not in raw, "the Compose Specification has no top-level version"
    assert raw["name"] == "crypto-arb"


def test_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    schema = compose_schema()
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_schema_check_catches_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema check is not vacuous: a misspelt key fails it."""
    from jsonschema import Draft202012Validator

    broken = json.loads(json.dumps(compose))
    broken["services"]["producer"]["healthchek"] = broken["services"]["producer"]["healthcheck"]
    assert list(Draft202012Validator(compose_schema()).iter_errors(broken))


def test_grafana_admin_password_is_required() -> None:
    with pytest.raises(InterpolationError, match="GRAFANA_ADMIN_PASSWORD"):
        interpolate_tree(raw_compose(), dotenv_from_example())
    grafana = environment_of(rendered_compose()["services"]["grafana"])
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == TEST_GRAFANA_PASSWORD


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d} ${EMPTY-d} ${UNSET-d}", env) == "x d d  d"
    assert interpolate("$$HOME ${SET:+alt} ${EMPTY:+alt}", env) == "$HOME alt "
    with pytest.raises(InterpolationError):
        interpolate("${EMPTY:?needed}", env)


# --- services, health and order --------------------------------------------------------------


def test_the_stack_has_every_piece(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "kafka", "kafka-init", "flink-jobmanager", "flink-taskmanager", "flink-job",
        "producer", "alerter", "dashboard", "prometheus", "grafana",
    }


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        argv = healthcheck_argv(service)
        assert argv[0] in {"CMD", "CMD-SHELL"} and len(argv) > 1, f"{name}: {argv}"
        assert check.get("interval") and check.get("retries"), f"{name}: interval and retries"


def test_http_healthchecks_probe_the_service_own_ports(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for url in re.findall(r"https?://[^\s\"']+", " ".join(healthcheck_argv(service))):
            host, port = re.match(r"https?://([^:/]+):(\d+)", url).groups()
            target = name if host in {"127.0.0.1", "localhost"} else host
            assert target in services, f"{name} probes unknown host {host}"
            assert int(port) in container_ports(services[target]), f"{name} probes {url}"


def test_depends_on_uses_conditions(services: dict[str, dict[str, Any]]) -> None:
    graph = {}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            expected = ("service_completed_successfully" if dependency in ONE_SHOT
                        else "service_healthy")
            assert condition == expected, f"{name} -> {dependency}: {condition}"
        graph[name] = set(depends)
    order = list(TopologicalSorter(graph).static_order())  # raises on a cycle
    assert order.index("kafka") < order.index("kafka-init") < order.index("producer")


def test_start_order_follows_the_data_flow(services: dict[str, dict[str, Any]]) -> None:
    for name, required in REQUIRED_ORDER.items():
        declared = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert required.items() <= declared.items(), f"{name}: {declared}"


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, name


# --- ports, targets and the design contract ---------------------------------------------------


def test_ports_match_the_design(services: dict[str, dict[str, Any]]) -> None:
    for label, pairs in DESIGN_PORTS.items():
        for service, port in pairs:
            assert port in container_ports(services[service]), f"{label}: {service}:{port}"
            published = published_ports(services[service])
            if port in published:
                assert published[port] == port, f"{label}: host port {published[port]}"
    # Kafka's host listener: the host's 9092 reaches the listener advertised as localhost:9092.
    kafka_env = environment_of(services["kafka"])
    assert "HOST://localhost:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    host_port = dict((h, c) for c, h in published_ports(services["kafka"]).items())
    assert f"HOST://:{host_port[9092]}" in kafka_env["KAFKA_LISTENERS"]


def test_design_doc_ports_are_the_ones_checked() -> None:
    doc = design_doc()
    if doc is None:
        pytest.skip("DESIGN.md not found (ARB_DESIGN_DOC, docs/ or ../shared/)")
    text = " ".join(doc.read_text().split())
    match = re.search(r"## Ports and configuration (.*?)\.", text)
    assert match, "DESIGN.md has no 'Ports and configuration' section"
    listed = dict(re.findall(r"([A-Za-z][A-Za-z ]*?) (\d{4,5})", match.group(1)))
    listed = {name.strip(): int(port) for name, port in listed.items()}
    assert listed == {label: pairs[0][1] for label, pairs in DESIGN_PORTS.items()}


def test_services_listen_on_the_ports_compose_publishes(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, variables in PORT_VARIABLES.items():
        env = environment_of(services[name])
        for variable, port in variables.items():
            assert env.get(variable) == port, f"{name}: {variable}={env.get(variable)!r}"
            assert int(port) in container_ports(services[name])
    for name in ("flink-jobmanager", "flink-taskmanager"):
        properties = environment_of(services[name])["FLINK_PROPERTIES"]
        assert "metrics.reporter.prom.port: 9249" in properties, name
        assert ("metrics.reporter.prom.factory.class: "
                "org.apache.flink.metrics.prometheus.PrometheusReporterFactory") in properties
    # python -m services.dashboard starts Streamlit on ARB_DASHBOARD_PORT (checked above).
    command = services["dashboard"]["command"]
    assert command == ["python", "-m", "services.dashboard"]
    assert (REPO / "services" / "dashboard" / "__main__.py").is_file()


def test_prometheus_targets_are_compose_services(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS_COMPOSE.read_text())
    scraped = set()
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in services, f"job {job['job_name']}: no compose service {host}"
                assert int(port) in container_ports(services[host]), f"{target} not listened on"
                scraped.add((host, int(port)))
    metrics = {pair for label, pairs in DESIGN_PORTS.items() for pair in pairs
               if label not in {"Kafka", "Grafana", "Streamlit"}}
    assert metrics <= scraped, f"not scraped: {sorted(metrics - scraped)}"


def test_prometheus_runs_the_compose_config(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in prometheus["command"])
    mounts = bind_mounts(prometheus)
    config = PurePosixPath(flags["config.file"])
    host_dir = mounts[str(config.parent)]
    assert (host_dir / config.name).resolve() == PROMETHEUS_COMPOSE.resolve()
    assert named_mounts(prometheus)[flags["storage.tsdb.path"]] == "prometheus-data"


def test_job_submitter_targets_the_cluster(services: dict[str, dict[str, Any]]) -> None:
    from flink import job as flink_job
    from tests.deploy.test_submit_job import load_submit_job

    submit_job = load_submit_job()
    command = services["flink-job"]["command"]
    url = command[command.index("--rest-url") + 1]
    host, port = re.match(r"http://([^:/]+):(\d+)$", url).groups()
    assert host == "flink-jobmanager" and int(port) in container_ports(services[host])
    assert "--check" in healthcheck_argv(services["flink-job"])
    default_name = inspect.signature(flink_job.run).parameters["job_name"].default
    assert default_name == submit_job.JOB_NAME
    assert submit_job.JOB_SCRIPT == "/app/flink/job.py"


# --- paths, volumes and images ---------------------------------------------------------------


def bind_mounts(service: dict[str, Any]) -> dict[str, Any]:
    """container path -> host path, for host folders and files mounted into the service."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (REPO / source).resolve()
    return mounts


def named_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> named volume."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if not source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def test_build_contexts_and_dockerfiles_exist(services: dict[str, dict[str, Any]]) -> None:
    built = 0
    for name, service in services.items():
        build = service.get("build")
        if not build:
            continue
        built += 1
        context = (REPO / build["context"]).resolve()
        assert context.is_dir(), f"{name}: build context {context}"
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"
        assert service.get("image"), f"{name}: a built image needs a name to be shared"
    assert built == 6


def test_mounted_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.is_relative_to(REPO), f"{name}: mounts {source} outside the repo"


def test_grafana_provisioning_is_mounted_where_it_points(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = bind_mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == (REPO / "grafana" / "provisioning").resolve()
    for providers in (provisioning / "dashboards").glob("*.yml"):
        for provider in yaml.safe_load(providers.read_text())["providers"]:
            path = PurePosixPath(provider["options"]["path"])
            relative = path.relative_to("/etc/grafana/provisioning")
            assert (provisioning / relative).is_dir(), f"{providers.name}: {path}"
    env = environment_of(services["grafana"])
    assert env["PROMETHEUS_URL"] == "http://prometheus:9090"
    home = PurePosixPath(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (provisioning / home.relative_to("/etc/grafana/provisioning")).is_file()
    datasource = (provisioning / "datasources" / "prometheus.yml").read_text()
    assert "${PROMETHEUS_URL}" in datasource


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    services, declared = compose["services"], set(compose["volumes"])
    used = {vol for s in services.values() for vol in named_mounts(s).values()}
    assert used == declared, f"declared but unused or used but undeclared: {used ^ declared}"
    history = PurePosixPath(environment_of(services["alerter"])["ARB_HISTORY_DB"]).parent
    for name in ("alerter", "dashboard"):
        assert named_mounts(services[name]).get(str(history)) == "alert-history", name
        assert environment_of(services[name])["ARB_HISTORY_DB"] == "/data/alerts.db"
    assert named_mounts(services["grafana"])["/var/lib/grafana"] == "grafana-data"
    assert named_mounts(services["kafka"])["/var/lib/kafka/data"] == "kafka-data"
    assert environment_of(services["kafka"])["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    checkpoints = PurePosixPath(environment_of(services["flink-job"])["ARB_CHECKPOINT_DIR"])
    # The cluster writes checkpoints; the submitter's client looks for the newest to restore.
    for name in ("flink-jobmanager", "flink-taskmanager", "flink-job"):
        (mount,) = [t for t, v in named_mounts(services[name]).items() if v == "flink-data"]
        assert checkpoints.is_relative_to(mount), f"{name} cannot reach {checkpoints}"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("build"):
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"


# --- variables and secrets -------------------------------------------------------------------


def test_env_example_lists_every_variable() -> None:
    listed = set(env_example())
    in_compose = variables_in(COMPOSE_FILE.read_text())
    documented = documented_variables(expand_venues=True)
    assert sorted(in_compose - listed) == [], "used in compose.yaml, missing in .env.example"
    assert sorted(documented - listed) == [], "in docs/configuration.md, missing in .env.example"


def test_env_example_keeps_secrets_empty() -> None:
    listed = env_example()
    for secret in ("DISCORD_WEBHOOK_URL", "GRAFANA_ADMIN_PASSWORD"):
        value, is_set = listed[secret]
        assert is_set and value == "", f"{secret} must be present and empty"
    for name, (value, _) in listed.items():
        if SECRET_KEY.search(name):
            assert value == "", f"{name} has a value in .env.example"
    assert not WEBHOOK_LITERAL.search((REPO / ".env.example").read_text())


def test_no_secret_is_written_in_compose() -> None:
    text = COMPOSE_FILE.read_text()
    assert not WEBHOOK_LITERAL.search(text)
    for name, service in raw_compose()["services"].items():
        for key, value in environment_of(service).items():
            if not SECRET_KEY.search(key):
                continue
            match = re.fullmatch(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?])?([^}]*)\}", value)
            assert match, f"{name}: {key} must come from the environment, got {value!r}"
            default = match.group(2)
            # Allowed defaults: nothing, an error message (:?), or an address that cannot exist.
            assert (not default or ":?" in value
                    or re.fullmatch(r"https?://[a-z0-9.-]+\.invalid/?", default)), (
                f"{name}: {key} has a literal default {default!r}")


def test_secrets_reach_only_the_services_that_use_them(
    services: dict[str, dict[str, Any]],
) -> None:
    holders = {name for name, s in services.items() if "DISCORD_WEBHOOK_URL" in environment_of(s)}
    assert holders == {"alerter", "grafana"}
    holders = {name for name, s in services.items()
               if "GRAFANA_ADMIN_PASSWORD" in json.dumps(raw_compose()["services"][name])}
    assert holders == {"grafana"}


def test_passed_variables_are_the_documented_ones(services: dict[str, dict[str, Any]]) -> None:
    """A misspelt variable would be passed and silently ignored: names must be known ones."""
    from tests.test_docs import variables_read_by_code

    known = documented_variables(expand_venues=True) | variables_read_by_code()
    for name, service in services.items():
        for key in environment_of(service):
            if re.match(r"(ARB|DISCORD|DEMO)_", key) or key == "KAFKA_BOOTSTRAP_SERVERS":
                assert key in known, f"{name}: {key} is not a configuration variable"


#: Documented variables compose does not pass, and why.
NOT_PASSED = {
    "ARB_TANSU_BIN": "the embedded broker only runs without Docker",
    "ARB_PROMETHEUS_PORT": "the Prometheus that arb start runs; compose has its own service",
    "ARB_ALERTMANAGER_PORT": "the Alertmanager that arb start runs; compose alerts via Grafana",
    "BIND_ADDRESS": "compose reads it for the published ports; inside, the image sets 0.0.0.0",
    "ENV_FILE": "compose reads .env itself and passes the variables on",
    "FLINK_LIB_DIR": "set by the Flink image, not by .env",
    "ARB_FLINK_WRAPPER_METRICS_PORT": "the local job wrapper's; under compose the cluster runs "
                                      "the job and its reporter serves the metrics",
}


def test_every_documented_variable_reaches_its_service(
    services: dict[str, dict[str, Any]],
) -> None:
    """A variable set in .env must not be silently ignored under compose."""
    passed = {key for service in services.values() for key in environment_of(service)}
    missing = documented_variables(expand_venues=True) - passed - set(NOT_PASSED)
    assert sorted(missing) == [], "pass them in compose.yaml to the service that reads them"
