"""docker/compose.yaml as compose would resolve it with default settings: the services, the netem
sidecar's namespace sharing and capability, the environment defaults, and every command parsed by the
real CLI parser, so a renamed option or a port that does not match its healthcheck fails here, not in a
container.

The YAML is read with PyYAML where it is installed, else resolved by `docker compose config`; with
neither, the tests are skipped with that reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from mstvsc_stream.cli import recv, relay, send

DOCKER = Path(__file__).resolve().parents[1] / "docker"
COMPOSE = DOCKER / "compose.yaml"
CAMERA = DOCKER / "compose.camera.yaml"
STREAMING = ("receiver", "sender", "relay")
RESULTS = "/results"

_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(value: object, env: dict[str, str]) -> object:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR and $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        default = match.group(2)
        return env.get(name) or (default if default is not None else "")

    return _VARIABLE.sub(substitute, value)


def load_with_pyyaml(files: list[Path], env: dict[str, str]) -> dict:
    import yaml

    merged: dict = {"services": {}}
    for path in files:  # later files override earlier ones key by key, as compose's -f does for these keys
        document = yaml.safe_load(path.read_text())  # merge keys (<<: *stream) are resolved by the loader
        for name, service in document["services"].items():
            merged["services"].setdefault(name, {}).update(service)
    return interpolate(merged, env)


def load_with_docker(files: list[Path], env: dict[str, str]) -> dict:
    command = ["docker", "compose", *(arg for path in files for arg in ("-f", str(path))), "--profile", "relay",
               "config", "--format", "json"]  # fmt: skip
    clean = {key: value for key, value in os.environ.items() if key not in _names_used(files)}
    result = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _names_used(files: list[Path]) -> set[str]:
    return {m.group(1) or m.group(3) for path in files for m in _VARIABLE.finditer(path.read_text()) if m.group(0) != "$$"}


def _loader():
    try:
        import yaml  # noqa: F401
    except ImportError:
        pass
    else:
        return load_with_pyyaml
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return load_with_docker
    pytest.skip("neither PyYAML nor the docker compose plugin is installed to read docker/compose.yaml")


@pytest.fixture(scope="module")
def resolve():
    loader = _loader()

    def resolve(env: dict[str, str] | None = None, *files: Path) -> dict:
        return loader([COMPOSE, *files], env or {})["services"]

    return resolve


def argv(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def parse(service: dict):
    """The service's command parsed by the CLI that it names."""
    words = argv(service)
    modules = {"mstvsc-send": send, "mstvsc-recv": recv, "mstvsc-relay": relay}
    assert words[0] in modules, words
    return modules[words[0]].build_parser().parse_args(words[1:])


def mount_targets(service: dict) -> set[str]:
    targets = set()
    for volume in service.get("volumes", []):
        targets.add(volume["target"] if isinstance(volume, dict) else volume.split(":")[1])
    return targets


def healthcheck_ports(service: dict) -> list[int]:
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    return [int(port, 16) for port in re.findall(r":([0-9A-F]{4}) ", text)]


def depends(service: dict) -> dict[str, str]:
    value = service.get("depends_on", {})
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {name: spec.get("condition", "service_started") for name, spec in value.items()}


def test_services_and_the_netem_sidecar_share_the_senders_namespace_with_net_admin_only(resolve) -> None:
    services = resolve()
    assert set(services) == {"receiver", "sender", "netem", "relay"}
    netem = services["netem"]
    assert netem["network_mode"] == "service:sender"
    assert netem["cap_add"] == ["NET_ADMIN"]
    assert not netem.get("privileged", False)
    environment = netem["environment"]
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    assert environment["LOSS"] == "30%"
    assert environment.get("NETEM_EXTRA") in ("", None)
    assert environment.get("RATE") in ("", None) and environment["QUEUE_MS"] == "200"  # no bottleneck by default
    assert netem["build"]["dockerfile"] == "docker/Dockerfile.netem"
    # The sidecar's entry point really applies LOSS and NETEM_EXTRA as a netem qdisc on eth0.
    script = (DOCKER / "netem.sh").read_text()
    assert "tc qdisc replace dev \"$dev\" root netem loss $loss $bottleneck ${NETEM_EXTRA:-}" in script
    assert 'bottleneck="rate ${RATE}kbit limit $limit"' in script  # RATE (kbit/s) and its QUEUE_MS queue
    assert "dev=${NETEM_DEV:-eth0}" in script and "loss=${LOSS:-30%}" in script
    assert "COPY docker/netem.sh" in (DOCKER / "Dockerfile.netem").read_text()


@pytest.mark.parametrize("name", STREAMING)
def test_streaming_containers_are_non_root_unprivileged_and_share_the_results_folder(resolve, name: str) -> None:
    service = resolve()[name]
    uid, _, gid = service["user"].partition(":")
    assert int(uid) != 0 and int(gid) != 0
    assert not service.get("cap_add") and not service.get("privileged", False)
    assert service["build"]["dockerfile"] == "docker/Dockerfile"
    assert (DOCKER / "Dockerfile").is_file()
    assert RESULTS in mount_targets(service)


def test_the_sender_streams_the_images_sample_clip_looped_to_the_receivers_port(resolve) -> None:
    services = resolve()
    sender, receiver = parse(services["sender"]), parse(services["receiver"])
    assert sender.input == "/opt/venv/share/mstvsc-stream/sample.mkv"
    assert "/opt/venv/share/mstvsc-stream/sample.mkv" in (DOCKER / "Dockerfile").read_text()
    assert sender.loop and sender.size == (320, 240)
    assert (sender.to.host, sender.to.port) == ("receiver", receiver.listen.port)
    assert str(sender.stats_json).startswith(RESULTS + "/")
    assert depends(services["sender"]) == {"receiver": "service_healthy"}


def test_the_receiver_records_and_reports_into_the_results_folder_once_its_port_is_up(resolve) -> None:
    receiver = resolve()["receiver"]
    args = parse(receiver)
    assert str(args.record) == f"{RESULTS}/run.mkv" and str(args.stats_json) == f"{RESULTS}/run.json"
    assert args.idle_exit == 10
    assert healthcheck_ports(receiver) == [args.listen.port]


def test_settings_from_the_environment_reach_the_commands(resolve) -> None:
    env = {"LOSS": "60%", "SENDER_ARGS": "--frames 120 --no-realtime", "DEST": "relay:6000", "RUN": "loss-60",
           "SIZE": "640x480", "INPUT": "/input/clip.mp4"}  # fmt: skip
    services = resolve(env)
    sender, relay_args = parse(services["sender"]), parse(services["relay"])
    assert (sender.frames, sender.realtime, sender.loop) == (120, False, False)
    assert sender.input == "/input/clip.mp4" and sender.size == (640, 480)
    assert "/input" in mount_targets(services["sender"])
    assert (sender.to.host, sender.to.port) == ("relay", relay_args.listen.port)
    assert str(sender.stats_json) == f"{RESULTS}/loss-60-sender.json"
    assert services["netem"]["environment"]["LOSS"] == "60%"
    assert relay_args.loss == pytest.approx(0.6)


def test_the_relay_stands_in_for_netem_only_when_its_profile_is_asked_for(resolve) -> None:
    services = resolve()
    assert services["relay"]["profiles"] == ["relay"]
    assert all("profiles" not in services[name] for name in ("receiver", "sender", "netem"))
    args = parse(services["relay"])
    receiver = parse(services["receiver"])
    assert (args.to.host, args.to.port) == ("receiver", receiver.listen.port)
    assert args.loss == pytest.approx(0.3) and args.seed == 1
    assert healthcheck_ports(services["relay"]) == [args.listen.port]
    assert str(args.stats_json) == f"{RESULTS}/run-relay.json"


def test_the_camera_override_maps_the_device_and_keeps_the_sender_non_root(resolve) -> None:
    sender = resolve({}, CAMERA)["sender"]
    args = parse(sender)
    assert args.camera == 0 and args.input is None
    devices = [d if isinstance(d, str) else f"{d['source']}:{d['target']}" for d in sender["devices"]]
    assert devices == ["/dev/video0:/dev/video0"]
    assert sender["group_add"] == ["video"]
    assert int(sender["user"].partition(":")[0]) != 0
