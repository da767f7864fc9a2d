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


@pytest.fixture(scope="session")
def broken_model(model_path, tmp_path_factory):
    """tiny-a with a NaN in row 3 of its tied embedding (where `inspect --json`
    puts it): logit 3 of every token is NaN, so each of its forward passes fails."""
    if not (CLI and os.access(CLI, os.X_OK)):
        pytest.skip("the CLI is not built (set BITNET_CLI)")
    info = json.loads(subprocess.run([CLI, "inspect", "--json", model_path], capture_output=True, check=True).stdout)
    embd = next(t for t in info["tensors"] if t["name"] == "token_embd.weight")
    assert embd["type"] == "F16"
    data = bytearray(open(model_path, "rb").read())
    at = embd["offset"] + (3 * embd["shape"][0] + 1) * 2
    data[at:at + 2] = b"\x00\x7e"  # an f16 NaN
    path = tmp_path_factory.mktemp("broken") / "nan-embedding.gguf"
    path.write_bytes(data)
    return path


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus == 0 and reporter and reporter.stats.get("skipped"):
        session.exitstatus = 77
