"""What of the deployment can be checked without Docker: the compose file's services, their
commands (parsed by the real command line), health checks and start order; the Dockerfile's
layer order and checks; and the health command the image runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
OURS = ("bot", "worker", "maker", "gpu-worker")


def test_the_compose_services_and_their_commands():
    services = COMPOSE["services"]
    assert set(services) == {"redis", "bot", "worker", "maker", "flp", "gpu-worker"}
    for name in OURS:
        command = services[name]["command"]
        assert command[0] == "gramophone", name
        build_parser().parse_args(command[1:])  # exits (SystemExit) on a command our CLI does not have
    assert (
        services["gpu-worker"]["command"][1:] == ["worker", "--gpu"]
        and services["maker"]["command"][-1] == "--make"
    )
    assert {"flp", "gpu-worker"} == {
        name for name, service in services.items() if service.get("profiles") == ["gpu"]
    }


def test_services_wait_for_healthy_dependencies():
    services = COMPOSE["services"]
    assert "PONG" in " ".join(services["redis"]["healthcheck"]["test"])
    for name in OURS:
        depends = services[name]["depends_on"]
        assert depends["redis"] == {"condition": "service_healthy"}, name
    assert services["gpu-worker"]["depends_on"]["flp"] == {"condition": "service_healthy"}
    assert "/openapi.json" in " ".join(services["flp"]["healthcheck"]["test"])
    assert services["flp"]["command"] == [
        "bash",
        "scripts/start_api.sh",
    ]  # FLP's launcher: its PATH is in ~/.bashrc
    for name in ("worker", "maker", "gpu-worker"):  # the image's check is the bot's
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_the_dockerfile_installs_dependencies_before_the_code_and_checks_health():
    lines = [
        line.strip() for line in DOCKERFILE.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    first_code = next(i for i, line in enumerate(lines) if re.match(r"COPY (engine|bot) ", line))
    dependencies = next(i for i, line in enumerate(lines) if 'project["dependencies"]' in line)
    assert dependencies < first_code, "a code change would reinstall every dependency"
    assert any(line.startswith("RUN pip install --no-deps .") for line in lines[first_code:])
    assert any(line == "RUN gramophone characters build fox" for line in lines), "the fox is prebuilt"
    (health,) = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert health.endswith('CMD ["gramophone", "health"]')
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    build_parser().parse_args(shlex.split(cmd[4:].replace('"', "").strip("[]").replace(",", " "))[1:])


def test_the_health_command_reads_the_dispatchers_heartbeat(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRAMOPHONE_")}
    env.update(GRAMOPHONE_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT))

    def health() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "engine", "health"], env=env, capture_output=True, text=True, timeout=60
        )

    missing = health()
    assert missing.returncode == 1 and "missing" in missing.stdout
    alive = tmp_path / "bot.alive"
    alive.touch()
    assert health().returncode == 0
    stale = time.time() - 120
    os.utime(alive, (stale, stale))
    stuck = health()
    ago = re.search(r"(\d+) s ago", stuck.stdout)
    assert stuck.returncode == 1 and ago and 120 <= int(ago.group(1)) <= 180, stuck.stdout
