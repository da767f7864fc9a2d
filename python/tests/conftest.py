"""Shared fixtures: the reference model tiny-a (BITNET_FIXTURES) and the CLI
(BITNET_CLI) whose output the package must reproduce. Tests that need one skip,
saying so, when it is absent; like the C tests, a run that skipped anything and
failed nothing exits 77, which CTest shows as "not run"."""
import json
import os
import subprocess

import pytest

FIXTURES = os.environ.get("BITNET_FIXTURES", os.path.join(os.path.dirname(__file__), "../../../shared/fixtures"))
TINY_A = os.path.join(FIXTURES, "tiny-a", "tiny-a.gguf")
CLI = os.environ.get("BITNET_CLI", "")


@pytest.fixture(scope="session")
def model_path():
    if not os.path.exists(TINY_A):
        pytest.skip(f"fixture {TINY_A} not found (set BITNET_FIXTURES)")
    return TINY_A


@pytest.fixture(scope="session")
def golden(model_path):
    with open(os.path.join(os.path.dirname(model_path), "tiny-a.golden.json")) as f:
        return json.load(f)["cases"]


@pytest.fixture(scope="session")
def cli(model_path):
    """cli(*flags) -> `bitnet-gpu generate -m tiny-a -t 1 --no-cpu-start --json FLAGS` as a dict
    (on one backend throughout, as the package's sessions run)."""
    if not (CLI and os.access(CLI, os.X_OK)):
        pytest.skip("the CLI is not built (set BITNET_CLI)")

    def run(*flags):
        cmd = [CLI, "generate", "-m", model_path, "-t", "1", "--no-cpu-start", "--json", *map(str, flags)]
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        # The text is the tokens' bytes, invalid UTF-8 included; the package
        # decodes it with a U+FFFD for each invalid byte (its "bitnet-bytewise").
        return json.loads(r.stdout.decode("utf-8", "bitnet-bytewise"))

    return run


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus == 0 and reporter and reporter.stats.get("skipped"):
        session.exitstatus = 77
