#!/usr/bin/env python3
"""test_workflows.py BUILD_DIR - every command the GitHub workflows run is one
the tools accept.

Each `run:` of .github/workflows/*.yml is split into simple commands, and each
must be a known setup step (deps, build, CTest, .ci/run; their scripts exist
and parse, their -D options exist in CMakeLists.txt) or a scripts/perf.sh job,
which is run here for real on CPU against BUILD_DIR (with a tiny model instead
of the 2B-4T shape) and must leave JSON that parses. The GPU workflow's script
needs a GPU, so it is only parsed (bash -n), as is every scripts/*.sh.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))

# Setup steps: what they must look like. Anything else must be scripts/perf.sh.
SETUP = [
    r"(sudo (-E )?)?bash (\.ci/run|scripts/deps\.sh)",
    r"scripts/build\.sh build( -D\S+)*",
    r"cmake -S \. -B build( -D\S+)*",
    r"cmake --build build -j\d+",
    r"RUN_PERF_TESTS=1 ctest --test-dir build( -j\d+)?( --output-on-failure)?",
    r"scripts/gpu-check\.sh",  # needs a GPU: parsed only
]
PERF_JSON = {"smoke": ["bench.json"], "nightly": ["bench-2b4t.json", "bench-kernels.json"]}


def run_steps(path):
    """The `run:` values of a workflow, block scalars joined by newlines."""
    lines, steps, i = open(path).read().splitlines(), [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?run:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        indent, value = len(m.group(1)), m.group(2)
        if value in ("|", ">"):
            block = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            value = "\n".join(block)
        steps.append(value.strip())
    return steps


def simple_commands(step):
    return [c.strip() for c in re.split(r"&&|\n", step) if c.strip()]


class WorkflowTest(unittest.TestCase):
    def setUp(self):
        self.cmake = open(os.path.join(ROOT, "CMakeLists.txt")).read()
        self.workflows = sorted(glob.glob(os.path.join(ROOT, ".github", "workflows", "*.yml")))
        self.assertTrue(self.workflows)

    def check_parses(self, script):
        path = os.path.join(ROOT, script)
        self.assertTrue(os.path.isfile(path), f"{script} does not exist")
        r = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, f"{script}: {r.stderr}")

    def check_setup(self, cmd, where):
        self.assertTrue(any(re.fullmatch(p, cmd) for p in SETUP),
                        f"{where}: '{cmd}' is no known setup step; put it in a script the test runs")
        for word in shlex.split(cmd):
            if word.startswith(("scripts/", ".ci/")):
                self.check_parses(word)
            if word.startswith("-DBITNET_"):  # an option CMakeLists.txt has
                name = word[2:].split("=")[0]
                self.assertRegex(self.cmake, rf"(option|set)\({name}\b", f"{where}: no CMake option {name}")

    def test_every_script_parses(self):
        for script in glob.glob(os.path.join(ROOT, "scripts", "*.sh")) + [os.path.join(ROOT, ".ci", "run")]:
            self.check_parses(os.path.relpath(script, ROOT))

    def test_workflow_commands(self):
        perf_modes = []
        for wf in self.workflows:
            for step in run_steps(wf):
                for cmd in simple_commands(step):
                    m = re.fullmatch(r"scripts/perf\.sh (\w+)", cmd)
                    if m:
                        self.assertIn(m.group(1), PERF_JSON, f"{wf}: {cmd}")
                        perf_modes.append(m.group(1))
                    else:
                        self.check_setup(cmd, os.path.basename(wf))
        self.assertEqual(sorted(set(perf_modes)), ["nightly", "smoke"])
        for mode in sorted(set(perf_modes)):
            self.run_perf(mode)

    def run_perf(self, mode):
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, BITNET_BUILD=BUILD, BITNET_PERF_OUT=out, BITNET_PERF_PRESET="tiny")
            r = subprocess.run([os.path.join(ROOT, "scripts", "perf.sh"), mode], env=env, cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, f"perf.sh {mode}:\n{r.stdout}\n{r.stderr}")
            expected = PERF_JSON[mode][:]
            fixtures = os.environ.get("BITNET_FIXTURES", "")
            if mode == "nightly" and os.path.isfile(os.path.join(fixtures, "llama3", "tokenizer.json")):
                expected.append("bench-tokenizer.json")
            for name in expected:
                with open(os.path.join(out, name)) as f:
                    json.load(f)  # one JSON document, nothing else
            print(f"perf.sh {mode}: {', '.join(expected)} parse", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
