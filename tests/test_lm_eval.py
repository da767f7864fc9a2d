#!/usr/bin/env python3
"""test_lm_eval.py - EleutherAI's lm-evaluation-harness against `bitnet-gpu serve`.

lm-eval's local-completions model, with its remote tokenizer (the server's
/tokenizer_info, /tokenize and /detokenize), token-id prompts, echo and prompt
logprobs, runs two tasks made here from the trained model's reference
(tests/data/bitnet-austen-6m.ref.json: the PyTorch twin's greedy ids, written by
train/reference.py, independent of this runtime):
- austen_greedy_ll (loglikelihood): the context is a reference prompt, the
  continuation its reference greedy ids, so lm-eval's acc (is_greedy: every
  continuation token is the likeliest at its position) must be 1;
- austen_next_token (loglikelihood): the reference's best and second best next
  token after each prompt, so is_greedy must be true for the one and false for
  the other, and their log-likelihoods must differ by the reference's margin;
- austen_greedy_gen (generate_until): the target is the same greedy text, so
  exact_match must be 1.
A case's continuation is its first N_GEN greedy ids; cases where the
reference's margin is under 0.05 at one of them (the fixtures' rule: there a
correct runtime may pick the second best) are left out, and so are those whose
text lm-eval would tokenize to other ids.
Requests carry two prompts each (--batch_size 2). Runs on the model the
repository ships, so it needs no fixture; skips, saying
why, where lm-eval is not installed (BITNET_WANT_PYTHON=1 scripts/deps.sh puts
it in .venv). Run by CTest with BITNET_CLI set.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_serve  # noqa: E402  (re-runs this under .venv's Python when the packages are there)

try:
    import lm_eval  # noqa: F401
except ImportError:
    print("SKIP: the lm-eval Python package is not installed (BITNET_WANT_PYTHON=1 scripts/deps.sh puts it in .venv)")
    sys.exit(77)

MODEL = os.path.join(HERE, "..", "models", "bitnet-austen-6m.gguf")
REFERENCE = os.path.join(HERE, "data", "bitnet-austen-6m.ref.json")
MIN_MARGIN = 0.05
N_GEN = 6


def task_yaml(name, output_type, data, extra):
    return "\n".join([
        f"task: {name}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {data}",
        "test_split: test",
        f"output_type: {output_type}",
        "doc_to_text: '{{context}}'",
        "doc_to_target: '{{continuation}}'",
        "target_delimiter: ''",
        *extra,
        "metadata:",
        "  version: 1",
        "",
    ])


class LmEvalTest(unittest.TestCase):
    def test_greedy_reference(self):
        srv = test_serve.Server("--parallel", "4", model=MODEL, ctx=512)
        try:
            self.run_tasks(srv)
        finally:
            rc = srv.stop()
        self.assertEqual(rc, 0, srv.output())

    def tokenize(self, srv, text):
        """As lm-eval's remote tokenizer asks: no BOS added, special tokens' text parsed."""
        status, _, raw = srv.request("POST", "/tokenize", {"prompt": text, "add_special_tokens": False})
        self.assertEqual(status, 200, raw)
        return json.loads(raw)["tokens"]

    def run_tasks(self, srv):
        _, _, raw = srv.request("GET", "/tokenizer_info")
        bos = json.loads(raw)["bos_token"]
        with open(REFERENCE) as f:
            cases = json.load(f)["cases"]
        docs, nexts = [], []
        for case in cases:
            # The next token: the reference's best and second best at the first step.
            step = case["steps"][0]
            if step["margin"] >= MIN_MARGIN:
                for rank in (0, 1):
                    tok = step["top10"][rank][0]
                    _, _, raw = srv.request("POST", "/detokenize", {"tokens": [tok]})
                    context, continuation = bos + case["prompt"], json.loads(raw)["prompt"]
                    if self.tokenize(srv, context + continuation) == case["prompt_ids"] + [tok]:
                        nexts.append({"context": context, "continuation": continuation, "rank": rank,
                                      "margin": step["margin"]})
            if min(step["margin"] for step in case["steps"][:N_GEN]) < MIN_MARGIN:
                continue
            gen = case["generated_ids"][:N_GEN]
            _, _, raw = srv.request("POST", "/detokenize", {"tokens": gen})
            context, continuation = bos + case["prompt"], json.loads(raw)["prompt"]
            # lm-eval tokenizes context + continuation and the context alone; the cut
            # must fall where the reference's prompt ends.
            if (self.tokenize(srv, context) == case["prompt_ids"]
                    and self.tokenize(srv, context + continuation) == case["prompt_ids"] + gen):
                docs.append({"context": context, "continuation": continuation})
        self.assertGreaterEqual(len(docs), 4, "too few reference cases survive lm-eval's tokenization")
        self.assertGreaterEqual(len(nexts), 8, "too few reference cases survive lm-eval's tokenization")
        with tempfile.TemporaryDirectory() as tmp:
            data, next_data = os.path.join(tmp, "greedy.jsonl"), os.path.join(tmp, "next.jsonl")
            with open(data, "w") as f:
                f.writelines(json.dumps(d) + "\n" for d in docs)
            with open(next_data, "w") as f:
                f.writelines(json.dumps(d) + "\n" for d in nexts)
            with open(os.path.join(tmp, "austen_next_token.yaml"), "w") as f:
                f.write(task_yaml("austen_next_token", "loglikelihood", next_data, [
                    "metric_list:", "  - metric: acc", "    aggregation: mean", "    higher_is_better: true"]))
            with open(os.path.join(tmp, "austen_greedy_ll.yaml"), "w") as f:
                f.write(task_yaml("austen_greedy_ll", "loglikelihood", data, [
                    "metric_list:", "  - metric: acc", "    aggregation: mean", "    higher_is_better: true"]))
            with open(os.path.join(tmp, "austen_greedy_gen.yaml"), "w") as f:
                f.write(task_yaml("austen_greedy_gen", "generate_until", data, [
                    "generation_kwargs:", "  until: ['@@@']", f"  max_gen_toks: {N_GEN}", "  do_sample: false",
                    "metric_list:", "  - metric: exact_match", "    aggregation: mean", "    higher_is_better: true"]))
            out = os.path.join(tmp, "out")
            env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                       HF_HOME=os.path.join(tmp, "hf"))
            args = [sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args",
                    f"model=austen,base_url=http://127.0.0.1:{srv.port}/v1/completions,tokenizer_backend=remote,"
                    "tokenized_requests=True,num_concurrent=2,max_retries=1,max_length=512",
                    "--tasks", "austen_greedy_ll,austen_next_token,austen_greedy_gen", "--include_path", tmp,
                    "--batch_size", "2", "--output_path", out, "--log_samples"]
            r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=600)
            self.assertEqual(r.returncode, 0, r.stdout[-4000:])
            found = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f.startswith("results")]
            self.assertEqual(len(found), 1, r.stdout[-4000:])
            with open(found[0]) as f:
                results = json.load(f)["results"]
            print(json.dumps(results, indent=1), file=sys.stderr)
            samples = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs
                       if f.startswith("samples_austen_next_token")]
            self.assertEqual(len(samples), 1)
            with open(samples[0]) as f:
                scored = {(s["doc"]["context"], s["doc"]["rank"]): s for s in map(json.loads, f)}
            self.assertEqual(results["austen_greedy_ll"]["acc,none"], 1.0)
            self.assertEqual(results["austen_greedy_gen"]["exact_match,none"], 1.0)
        # The next token: the best is the likeliest (is_greedy), the second best is not, and
        # their log-probabilities differ by the reference's margin (within 0.1, the fixtures'
        # logit tolerance).
        self.assertEqual(len(scored), len(nexts))
        for (context, rank), s in scored.items():
            self.assertEqual(s["acc"], int(rank == 0), (context, rank))
            other = scored.get((context, 1 - rank))
            if rank == 0 and other:
                gap = float(s["filtered_resps"][0][0]) - float(other["filtered_resps"][0][0])
                self.assertLess(abs(gap - s["doc"]["margin"]), 0.1, context)


if __name__ == "__main__":
    unittest.main(verbosity=2)
