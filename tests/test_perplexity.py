#!/usr/bin/env python3
"""test_perplexity.py - `bitnet-gpu perplexity` against bitnet.cpp's llama-perplexity.

tests/data/perplexity.golden.json holds bitnet.cpp's perplexity of
tests/data/austen-excerpt.txt (the first paragraphs of train/corpus.py's
validation split: Jane Austen, public domain) after every chunk, for synthetic models that
`make-model` rebuilds here from the arguments kept in the golden, and for the
tiny-a fixture (skipped without BITNET_FIXTURES). scripts/golden/
make-perplexity-golden.sh made it. Ours must agree to a relative 1e-6 (the
mean log-probability to 1e-6 nats) on every CPU kernel set here and for
several pass sizes, whose grouping the CPU's arithmetic does not depend on.
Also: the JSON output, --chunks, and one clear error for a text too short or a
bad flag. Run by CTest with BITNET_CLI and BITNET_FIXTURES set.

BITNET_PERPLEXITY_BACKEND=cuda (scripts/gpu-check.sh) runs the comparison on
CUDA instead, to a relative 5e-3: its attention and head sum in other orders
(the fixtures' tolerance, mean |logit difference| 1e-3); there a missing
fixture is a failure (BITNET_REQUIRE_FIXTURES=1).
"""
import json
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = os.path.abspath(os.environ.get("BITNET_CLI", "build/bitnet-gpu"))
FIXTURES = os.environ.get("BITNET_FIXTURES") or os.path.join(HERE, "..", "..", "shared", "fixtures")
GOLDEN = json.load(open(os.path.join(HERE, "data", "perplexity.golden.json")))
TEXT = os.path.join(HERE, "..", GOLDEN["text"])
BACKEND = os.environ.get("BITNET_PERPLEXITY_BACKEND", "cpu")
RTOL = 1e-6 if BACKEND == "cpu" else 5e-3
REQUIRE_FIXTURES = os.environ.get("BITNET_REQUIRE_FIXTURES") == "1"


def cpu_kernel_sets():
    """The kernel sets this CPU runs: scalar always, avx2 / avx512 / amx (x86-64) or
    neon (AArch64) where supported (on CUDA: the one run, with the default set for the
    CPU's part)."""
    if BACKEND != "cpu":
        return ["auto"]
    sets = ["scalar"]
    for k in ("avx2", "avx512", "amx", "neon"):
        r = subprocess.run([CLI, "generate", "-m", models["bitnet-b158-tiny"], "-p", "a", "-n", "1",
                            "--cpu-kernels", k, "--backend", "cpu"], capture_output=True, text=True)
        if r.returncode == 0:
            sets.append(k)
    return sets


def perplexity(model, *args):
    r = subprocess.run([CLI, "perplexity", "-m", model, "-f", TEXT, "--backend", BACKEND, "-t", "2", "--json", *args],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"perplexity {args} exited {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


tmp = tempfile.TemporaryDirectory()
models = {}
for case in GOLDEN["cases"]:
    if case["model"].startswith("fixture:"):
        path = os.path.join(FIXTURES, case["model"][len("fixture:"):])
        if os.path.exists(path):
            models[case["name"]] = path
        continue
    path = os.path.join(tmp.name, case["name"] + ".gguf")
    subprocess.run([CLI, *case["model"].split(), "-o", path], check=True, capture_output=True)
    models[case["name"]] = path


class PerplexityTest(unittest.TestCase):
    def check(self, case, got):
        want = case["per_chunk"]
        self.assertEqual(got["chunks"], len(want))
        self.assertEqual(got["n_ctx"], case["n_ctx"])
        self.assertEqual(got["tokens_scored"], len(want) * (case["n_ctx"] - case["n_ctx"] // 2 - 1))
        for i, (g, w) in enumerate(zip(got["per_chunk"], want)):
            if abs(g - w) > RTOL * w:
                self.fail(f"{case['name']}: after chunk {i + 1} {g:.6f}, bitnet.cpp {w:.6f}")
        self.assertLessEqual(abs(got["ppl"] - case["ppl"]), RTOL * case["ppl"])
        self.assertEqual(got["backend"], BACKEND)

    def test_against_bitnet_cpp(self):
        kernels = cpu_kernel_sets()
        for case in GOLDEN["cases"]:
            if case["name"] not in models:
                if REQUIRE_FIXTURES:
                    self.fail(f"fixture {case['model']} not found in {FIXTURES}")
                print(f"SKIP {case['name']}: fixture {case['model']} not found (set BITNET_FIXTURES)")
                continue
            for k in kernels:
                for batch in ("128", "7"):
                    with self.subTest(model=case["name"], kernels=k, batch=batch):
                        self.check(case, perplexity(models[case["name"]], "-c", str(case["n_ctx"]),
                                                    "--cpu-kernels", k, "-b", batch))

    def test_chunks_and_text(self):
        case = GOLDEN["cases"][0]
        got = perplexity(models[case["name"]], "-c", str(case["n_ctx"]), "--chunks", "3")
        self.assertEqual((got["chunks"], got["per_chunk"]), (3, got["per_chunk"][:3]))
        self.assertLessEqual(abs(got["per_chunk"][2] - case["per_chunk"][2]), RTOL * case["per_chunk"][2])
        r = subprocess.run([CLI, "perplexity", "-m", models[case["name"]], "-f", TEXT, "-c", "64", "--chunks", "2"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^\[1\][0-9.]+,\[2\][0-9.]+,\nFinal estimate: PPL = [0-9.]+ \+/- [0-9.]+\n$")

    def test_errors(self):
        model = models[GOLDEN["cases"][0]["name"]]
        short = subprocess.run([CLI, "perplexity", "-m", model, "-p", "too short", "-c", "64"],
                               capture_output=True, text=True)
        self.assertEqual(short.returncode, 1)
        self.assertIn("needs at least 128 tokens", short.stderr)
        self.assertEqual(short.stderr.count("error"), 1, short.stderr)
        self.assertTrue(short.stderr.strip().splitlines()[-1].startswith("error: "), short.stderr)
        for bad in (["-b", "0"], ["--chunks", "0"], ["-n", "5"], []):
            r = subprocess.run([CLI, "perplexity", "-m", model, *bad] + (["-f", TEXT] if bad else []),
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertTrue(r.stderr.startswith("error: "), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
