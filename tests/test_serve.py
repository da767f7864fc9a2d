#!/usr/bin/env python3
"""test_serve.py - `bitnet-gpu serve` on 127.0.0.1, through the official openai client.

The server runs the tiny-a fixture on a free port (--port 0; it prints the one it
got). Covered: chat and completion, streaming and not, through the openai client
(pinned in python/requirements-test.txt; BITNET_WANT_PYTHON=1 scripts/deps.sh
puts it in .venv); greedy text equal to
`bitnet-gpu generate --greedy` for the same prompt, alone and under a bounded
load of 32 clients x 8 requests (no slot leaked: /health); seeded sampling equal
to generate's; stop strings; usage counts; /v1/models, /health, /tokenize,
/detokenize; raw malformed requests (bad JSON, wrong types, huge bodies,
slowloris-style partial requests, clients that hang up mid-request); the prompt
cache (cached_tokens, cache_prompt); n choices (choice i as the reply of seed + i,
the prompt fed once); several prompts in one completion; echo with the prompt's
logprobs (against bitnet.cpp's golden logits), as lm-evaluation-harness reads
them, and vLLM's /tokenize and /tokenizer_info; logprobs in both shapes; OpenAI parameters
it does not implement refused; JSON mode (response_format json_object) and
structured replies (json_schema, judged by the jsonschema package); tool calls
(tools, tool_choice, tool messages); /metrics
(read by prometheus-client's parser); the API
key; SIGTERM and SIGINT with requests running (exit 0, which under ASan also
means no leak). Skips, saying why, without the fixture or the client.
Run by CTest with BITNET_CLI and BITNET_FIXTURES set.
"""
import http.client
import datetime
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.realpath(os.path.join(HERE, "..", ".venv"))
try:
    import jsonschema
    import openai
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    if os.path.exists(os.path.join(VENV, "bin", "python3")) and os.path.realpath(sys.prefix) != VENV:
        py = os.path.join(VENV, "bin", "python3")  # BITNET_WANT_PYTHON=1 scripts/deps.sh made it
        os.execv(py, [py, *sys.argv])
    print("SKIP: the openai, prometheus-client or jsonschema Python package is not installed "
          "(BITNET_WANT_PYTHON=1 scripts/deps.sh puts them in .venv)")
    sys.exit(77)

CLI = os.path.abspath(os.environ.get("BITNET_CLI", "build/bitnet-gpu"))
FIXTURES = os.environ.get("BITNET_FIXTURES") or os.path.join(HERE, "..", "..", "shared", "fixtures")
MODEL = os.path.join(FIXTURES, "tiny-a", "tiny-a.gguf")
SHIPPED = os.path.join(HERE, "..", "models", "bitnet-austen-6m.gguf")  # the trained model, no fixture needed
CTX = 256
PROMPTS = ["2+2=", "The capital of France is", "Once upon a time", "def fib(n):"]


class Server:
    """bitnet-gpu serve on a free port of 127.0.0.1; stderr goes to a log file."""

    def __init__(self, *args, model=MODEL, ctx=CTX):
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"test_serve.{os.getpid()}.log"), "w+")
        self.proc = subprocess.Popen([CLI, "serve", "-m", model, "--port", "0", "-t", "2", "-c", str(ctx), *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 120
        while True:
            self.log.seek(0)
            text = self.log.read()
            if "listening on http://127.0.0.1:" in text:
                self.port = int(text.split("listening on http://127.0.0.1:")[1].split("/")[0])
                break
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"the server did not start:\n{text}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def output(self):
        if not self.log.closed:
            self.log.seek(0)
            self.text = self.log.read()
        return self.text

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.output()
        self.log.close()
        os.unlink(self.log.name)
        return rc

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, r.getheader("Content-Type"), raw

    def health(self):
        status, _, raw = self.request("GET", "/health")
        assert status == 200, raw
        return json.loads(raw)

    def wait_processing(self, n, timeout=10):
        """slots_processing once it is n, or after timeout seconds (a request reaches its slot
        within moments; on a loaded machine that may take longer than any fixed sleep)."""
        deadline = time.monotonic() + timeout
        while self.health()["slots_processing"] != n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.health()["slots_processing"]

    def wait_idle(self, timeout=10):
        """Every slot free and nothing queued, within timeout seconds."""
        deadline = time.time() + timeout
        while True:
            h = self.health()
            if h["slots_processing"] == 0 and h["requests_queued"] == 0:
                return h
            if time.time() > deadline:
                raise AssertionError(f"slots still busy: {h}")
            time.sleep(0.05)


def generate(prompt, n, *extra):
    """What `bitnet-gpu generate` makes of the prompt: (text, prompt token count).
    On the one backend throughout, as the server runs (no start on the CPU while a GPU opens)."""
    r = subprocess.run([CLI, "generate", "-m", MODEL, "-p", prompt, "-n", str(n), "-t", "2", "-c", str(CTX),
                        "--no-cpu-start", "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    return j["text"], len(j["prompt_ids"]), j["stop"]


def raw_exchange(port, data, timeout=10):
    """Sends bytes on a fresh connection and reads until the server closes it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return got


def assert_error(test, status, raw, want_status):
    test.assertEqual(status, want_status, raw)
    e = json.loads(raw)["error"]
    test.assertIsInstance(e["message"], str)
    test.assertIsInstance(e["type"], str)
    test.assertIn("code", e)


@unittest.skipUnless(os.path.exists(MODEL), f"fixture {MODEL} not found (set BITNET_FIXTURES)")
class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--parallel", "8", "--timeout", "3")
        cls.client = openai.OpenAI(base_url=cls.srv.url, api_key="unused", max_retries=0, timeout=120)
        # References: generate --greedy for each prompt, plain and as a chat message.
        cls.ref = {(p, chat): generate(p, 12, "--greedy", *(["--chat"] if chat else []))
                   for p in PROMPTS for chat in (False, True)}

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        if rc != 0:
            raise AssertionError(f"the server exited {rc}:\n{cls.srv.output()}")

    def tearDown(self):
        self.srv.wait_idle()  # whatever a test did, no slot is left behind

    # ---- through the openai client ------------------------------------------------

    def complete(self, prompt, stream, **kw):
        r = self.client.completions.create(model="tiny-a", prompt=prompt, stream=stream,
                                           **{"max_tokens": 12, "temperature": 0, **kw})
        if not stream:
            return r.choices[0].text, r.choices[0].finish_reason, r.usage
        text, finish, usage = "", None, None
        for chunk in r:
            text += chunk.choices[0].text
            finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
        return text, finish, usage

    def chat(self, content, stream, **kw):
        r = self.client.chat.completions.create(model="tiny-a", messages=[{"role": "user", "content": content}],
                                                stream=stream, **{"max_tokens": 12, "temperature": 0, **kw})
        if not stream:
            self.assertEqual(r.choices[0].message.role, "assistant")
            return r.choices[0].message.content, r.choices[0].finish_reason, r.usage
        text, finish, usage = "", None, None
        for chunk in r:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
        return text, finish, usage

    def test_greedy_equals_generate(self):
        for p in PROMPTS:
            for stream in (False, True):
                for chat in (False, True):
                    text, finish, usage = (self.chat if chat else self.complete)(p, stream)
                    want, n_prompt, stop = self.ref[(p, chat)]
                    self.assertEqual(text, want, (p, stream, chat))
                    self.assertEqual(finish, "length" if stop in ("length", "context") else "stop")
                    self.assertEqual(usage.prompt_tokens, n_prompt)
                    self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)

    def test_seeded_sampling_equals_generate(self):
        want, _, _ = generate(PROMPTS[1], 12, "--temp", "0.9", "--seed", "1234", "--top-k", "50", "--top-p",
                              "0.9", "--min-p", "0.02")
        for stream in (False, True):
            text, _, _ = self.complete(PROMPTS[1], stream, temperature=0.9, seed=1234, top_p=0.9,
                                       extra_body={"top_k": 50, "min_p": 0.02})
            self.assertEqual(text, want)

    def test_penalties_and_logit_bias(self):
        """frequency_penalty, presence_penalty and repeat_last_n do what generate's flags do
        (negative ones, which draw the reply back to the window's tokens, change tiny-a's
        reply; positive ones, taken from a row's best entries, too when strong enough);
        a logit_bias of 100 makes its token the greedy pick every time, -100 keeps the
        greedy pick's first token out."""
        for frequency, presence, last_n in (("-1.5", "-2", "32"), ("2", "2", "64")):
            want, _, _ = generate(PROMPTS[2], 12, "--greedy", "--frequency-penalty", frequency, "--presence-penalty",
                                  presence, "--repeat-last-n", last_n)
            if frequency.startswith("-"):  # the penalties change this reply
                self.assertNotEqual(want, self.ref[(PROMPTS[2], False)][0])
            for stream in (False, True):
                text, _, _ = self.complete(PROMPTS[2], stream, frequency_penalty=float(frequency),
                                           presence_penalty=float(presence), extra_body={"repeat_last_n": int(last_n)})
                self.assertEqual(text, want, (frequency, presence, stream))
        status, _, raw = self.srv.request("POST", "/detokenize", {"tokens": [1820]})
        forced = json.loads(raw)["content"]
        for stream in (False, True):
            text, _, _ = self.complete(PROMPTS[0], stream, max_tokens=3, logit_bias={"1820": 100})
            self.assertEqual(text, forced * 3)
        r = subprocess.run([CLI, "generate", "-m", MODEL, "-p", PROMPTS[0], "-n", "1", "--greedy", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        first = json.loads(r.stdout)["generated_ids"][0]
        status, _, raw = self.srv.request("POST", "/detokenize", {"tokens": [first]})
        banned = json.loads(raw)["content"]
        self.assertTrue(self.ref[(PROMPTS[0], False)][0].startswith(banned))
        r = self.client.completions.create(model="tiny-a", prompt=PROMPTS[0], max_tokens=1, temperature=0,
                                           logprobs=0, logit_bias={str(first): -100})
        self.assertNotEqual(r.choices[0].logprobs.tokens[0], banned)

    def test_prompt_cache(self):
        """A prompt a free slot has cached is fed from its last token on, and answers as
        generate does (bit for bit on the CPU); a longer prompt that begins with one
        reuses it; cache_prompt false feeds all of it."""
        want, n_prompt, _ = self.ref[(PROMPTS[3], False)]
        for i in range(2):
            text, _, usage = self.complete(PROMPTS[3], stream=i == 1)
            self.assertEqual(text, want)
            if i:
                self.assertEqual(usage.prompt_tokens_details.cached_tokens, n_prompt - 1)
        text, _, usage = self.complete(PROMPTS[3], False, extra_body={"cache_prompt": False})
        self.assertEqual((text, usage.prompt_tokens_details.cached_tokens), (want, 0))

        def ids(text, bos):
            status, _, raw = self.srv.request("POST", "/tokenize", {"content": text, "add_special": bos})
            return json.loads(raw)["tokens"]
        story, more = ids("Once upon a time, in a land far away, there lived a fox", True), ids(" who sang", False)
        self.complete(story, False, max_tokens=4)  # its slot is fed the story and 3 tokens
        (text, _, cached), (want, _, fresh) = (self.complete(story + more, False, extra_body={"cache_prompt": c})
                                               for c in (True, False))
        self.assertEqual(text, want)
        self.assertGreaterEqual(cached.prompt_tokens_details.cached_tokens, len(story))
        self.assertLess(cached.prompt_tokens_details.cached_tokens, len(story) + len(more))
        self.assertEqual(fresh.prompt_tokens_details.cached_tokens, 0)

    def test_n_choices(self):
        """n: choice i is sampled with the seed + i, so each is what generate (and the server's
        n = 1) makes with that seed, streamed or not; one chunk a choice, each with its index
        and its own finish; usage counts the prompt once and every choice's tokens; the
        choices after the first take the prompt's K/V from the first's slot (the same text as
        feeding it again); more choices than slots take turns; greedy chat choices are alike
        and their tool calls have ids of their own; a client that leaves frees every slot."""
        p, seed = "A fox and a crow met", 77
        sampling = dict(temperature=1.0, top_p=0.9, extra_body={"top_k": 50, "min_p": 0.02})
        flags = ("--temp", "1.0", "--top-p", "0.9", "--top-k", "50", "--min-p", "0.02")
        want = [generate(p, 12, *flags, "--seed", str(seed + i))[0] for i in range(3)]
        self.assertGreater(len(set(want)), 1)
        # The prompt is new to every slot: the later choices can take it only from the first's.
        replies = []
        for cache in (True, False):
            before = self.metrics()
            r = self.client.completions.create(model="m", prompt=p, max_tokens=12, seed=seed, n=3,
                                               **{**sampling, "extra_body": {**sampling["extra_body"],
                                                                             "cache_prompt": cache}})
            self.srv.wait_idle()
            replies.append((r, self.metrics()[("bitnet_prompt_tokens_cached_total", ())] -
                            before[("bitnet_prompt_tokens_cached_total", ())]))
        alone = [self.client.completions.create(model="m", prompt=p, max_tokens=12, seed=seed + i, **sampling)
                 for i in range(3)]
        self.assertEqual([a.choices[0].text for a in alone], want)
        n_prompt, n_gen = alone[0].usage.prompt_tokens, sum(a.usage.completion_tokens for a in alone)
        for (r, cached), cache in zip(replies, (True, False)):
            self.assertEqual([c.index for c in r.choices], [0, 1, 2])
            self.assertEqual([c.text for c in r.choices], want, cache)
            self.assertEqual((r.usage.prompt_tokens, r.usage.completion_tokens), (n_prompt, n_gen))
            if cache:
                self.assertGreaterEqual(cached, 2 * (n_prompt - 1))
            else:
                self.assertEqual(cached, 0)
        chunks = list(self.client.completions.create(model="m", prompt=p, max_tokens=12, seed=seed, n=3,
                                                     stream=True, stream_options={"include_usage": True},
                                                     **sampling))
        texts, finishes = ["", "", ""], [None, None, None]
        for ch in chunks:
            if not ch.choices:
                continue
            self.assertEqual(len(ch.choices), 1)
            i = ch.choices[0].index
            self.assertIsNone(finishes[i])  # nothing of a choice after its finish
            texts[i] += ch.choices[0].text
            finishes[i] = ch.choices[0].finish_reason
        self.assertEqual(texts, want)
        self.assertEqual(finishes, [c.finish_reason for c in r.choices])
        usage = [ch.usage for ch in chunks if ch.usage]
        self.assertEqual(len(usage), 1)
        self.assertEqual(usage[0].completion_tokens, n_gen)
        # Ten greedy choices on eight slots.
        r = self.client.completions.create(model="m", prompt=PROMPTS[1], max_tokens=12, temperature=0, n=10)
        self.assertEqual([c.text for c in r.choices], [self.ref[(PROMPTS[1], False)][0]] * 10)
        # Chat, streamed: each choice opens with its role.
        roles, texts = [0, 0], ["", ""]
        for ch in self.client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPTS[0]}],
                                                      max_tokens=12, temperature=0, n=2, stream=True):
            for c in ch.choices:
                roles[c.index] += c.delta.role == "assistant"
                texts[c.index] += c.delta.content or ""
        self.assertEqual((roles, texts), ([1, 1], [self.ref[(PROMPTS[0], True)][0]] * 2))
        r = self.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Weather in Oslo?"}], max_tokens=150, temperature=0,
            n=2, tools=[self.WEATHER], tool_choice="required", parallel_tool_calls=False)
        self.assertEqual([c.finish_reason for c in r.choices], ["tool_calls"] * 2)
        calls = [[(t.function.name, t.function.arguments) for t in c.message.tool_calls] for c in r.choices]
        self.assertEqual(calls, [calls[0]] * 2)
        ids = [t.id for c in r.choices for t in c.message.tool_calls]
        self.assertEqual(len(set(ids)), 2, ids)
        # A client that leaves: every choice's slot is freed.
        req = json.dumps({"prompt": "x", "max_tokens": 250, "temperature": 0, "n": 3}).encode()
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(req), req))
        self.assertEqual(self.srv.wait_processing(3), 3)
        s.close()
        self.srv.wait_idle(timeout=3)

    def test_logprobs(self):
        """Greedy tokens with their log-probabilities: the chosen token is the likeliest,
        the alternatives come most likely first, the entries' bytes make the text, the
        stream carries the same entries, and asking for them changes no token. (Their
        values are checked against an independent log-softmax in test_batch.)"""
        msgs = [{"role": "user", "content": PROMPTS[2]}]
        plain = self.client.chat.completions.create(model="m", messages=msgs, max_tokens=10, temperature=0)
        r = self.client.chat.completions.create(model="m", messages=msgs, max_tokens=10, temperature=0,
                                                logprobs=True, top_logprobs=3)
        self.assertIsNone(plain.choices[0].logprobs)
        content = r.choices[0].logprobs.content
        self.assertEqual(r.choices[0].message.content, plain.choices[0].message.content)
        # One entry per generated token but the end of the turn, which has none.
        self.assertEqual(len(content), r.usage.completion_tokens - (r.choices[0].finish_reason == "stop"))
        self.assertEqual(b"".join(bytes(e.bytes) for e in content), r.choices[0].message.content.encode())
        for e in content:
            self.assertEqual(len(e.top_logprobs), 3)
            self.assertEqual((e.top_logprobs[0].token, e.top_logprobs[0].logprob), (e.token, e.logprob))
            values = [t.logprob for t in e.top_logprobs]
            self.assertEqual(values, sorted(values, reverse=True))
            self.assertLessEqual(values[0], 0)
        stream = self.client.chat.completions.create(model="m", messages=msgs, max_tokens=10, temperature=0,
                                                     logprobs=True, top_logprobs=3, stream=True)
        streamed = [e for ch in stream if ch.choices and ch.choices[0].logprobs for e in ch.choices[0].logprobs.content]
        self.assertEqual([(e.token, e.logprob) for e in streamed], [(e.token, e.logprob) for e in content])
        # A completion's shape: tokens, token_logprobs, top_logprobs, text_offset.
        c = self.client.completions.create(model="m", prompt=PROMPTS[2], max_tokens=8, temperature=0, logprobs=2)
        lp = c.choices[0].logprobs
        self.assertEqual(len(lp.tokens), c.usage.completion_tokens)
        self.assertEqual(len(lp.token_logprobs), len(lp.tokens))
        self.assertEqual([len(t) for t in lp.top_logprobs], [2] * len(lp.tokens))
        self.assertEqual(lp.text_offset[0], 0)
        self.assertEqual(lp.text_offset, sorted(lp.text_offset))
        for value, top in zip(lp.token_logprobs, lp.top_logprobs):
            self.assertEqual(value, max(top.values()))
        # Streamed, the chunks' entries and offsets make the same lists.
        streamed = {"tokens": [], "token_logprobs": [], "text_offset": []}
        for ch in self.client.completions.create(model="m", prompt=PROMPTS[2], max_tokens=8, temperature=0,
                                                 logprobs=2, stream=True):
            for k in streamed:
                streamed[k] += getattr(ch.choices[0].logprobs, k) if ch.choices[0].logprobs else []
        self.assertEqual(streamed, {k: getattr(lp, k) for k in streamed})

    def test_many_prompts(self):
        """A completion's prompt as an array: of strings, of token-id arrays, or both; with n,
        choice i * n + j is prompt i's choice j, which is what that prompt alone makes with the
        seed + j; usage counts every prompt once."""
        _, _, raw = self.srv.request("POST", "/tokenize", {"content": PROMPTS[1], "add_special": True})
        ids = json.loads(raw)["tokens"]
        hot = dict(temperature=1.0, seed=11, max_tokens=8)
        r = self.client.completions.create(model="m", prompt=[PROMPTS[0], ids, PROMPTS[2]], n=2, **hot)
        self.assertEqual([c.index for c in r.choices], list(range(6)))
        alone = [self.client.completions.create(model="m", prompt=p, **{**hot, "seed": 11 + j})
                 for p in (PROMPTS[0], PROMPTS[1], PROMPTS[2]) for j in range(2)]
        self.assertEqual([c.text for c in r.choices], [a.choices[0].text for a in alone])
        self.assertEqual(r.usage.prompt_tokens, sum(a.usage.prompt_tokens for a in alone[::2]))
        self.assertEqual(r.usage.completion_tokens, sum(a.usage.completion_tokens for a in alone))
        # Greedy, one prompt each: generate's text (a string prompt gets the BOS, as generate's).
        r = self.client.completions.create(model="m", prompt=PROMPTS, max_tokens=12, temperature=0)
        self.assertEqual([c.text for c in r.choices], [self.ref[(p, False)][0] for p in PROMPTS])
        chunks = self.client.completions.create(model="m", prompt=PROMPTS[:2], max_tokens=12, temperature=0,
                                                stream=True)
        texts = ["", ""]
        for ch in chunks:
            for c in ch.choices:
                texts[c.index] += c.text
        self.assertEqual(texts, [self.ref[(p, False)][0] for p in PROMPTS[:2]])

    def golden_cases(self):
        path = os.path.join(FIXTURES, "tiny-a", "tiny-a.golden.json")
        with open(path) as f:
            return json.load(f)["cases"]

    def test_echo_prompt_logprobs(self):
        """echo with logprobs, as lm-evaluation-harness scores a text (prompt: token ids,
        max_tokens 1, logprobs 1): every prompt token comes back, the first with null, then
        the generated one. Against bitnet.cpp: each golden case's prompt followed by its 16
        greedy ids, scored as one prompt; at greedy id i the likeliest token is that id where
        the reference's margin is at least 0.05 (the fixtures' rule), and its value equals
        the best alternative's exactly (lm-eval's is_greedy test); at ids 0 and 1, whose full
        rows the fixtures hold, the log-probability is the reference's log-softmax within
        0.2 (0.1 on each logit). Also: text prompts, streaming, n, max_tokens 0."""
        for case in self.golden_cases():
            n_p, gen = len(case["prompt_ids"]), case["generated_ids"]
            ids = case["prompt_ids"] + gen
            r = self.client.completions.create(model="m", prompt=[ids], max_tokens=1, logprobs=1, echo=True,
                                               temperature=0)
            lp = r.choices[0].logprobs
            self.assertEqual(len(lp.tokens), len(ids) + 1)
            self.assertEqual((lp.token_logprobs[0], lp.top_logprobs[0]), (None, None))
            _, _, raw = self.srv.request("POST", "/detokenize", {"tokens": ids})
            self.assertTrue(r.choices[0].text.startswith(json.loads(raw)["content"]))
            self.assertEqual(lp.text_offset[len(ids)], len(json.loads(raw)["content"].encode()))
            for i, step in enumerate(case["positions"][:16]):
                if step["margin"] < 0.05:
                    break
                value, top = lp.token_logprobs[n_p + i], lp.top_logprobs[n_p + i]
                self.assertEqual(list(top), [lp.tokens[n_p + i]], (case["prompt"], i))
                self.assertEqual(value, max(top.values()), (case["prompt"], i))
            for i, key in enumerate(("logits_f32", "logits_gen1_f32")):
                with open(os.path.join(FIXTURES, "tiny-a", case[key]), "rb") as f:
                    row = memoryview(f.read()).cast("f")
                top = max(row)
                want = row[gen[i]] - top - math.log(math.fsum(math.exp(x - top) for x in row))
                self.assertLess(abs(lp.token_logprobs[n_p + i] - want), 0.2, (case["prompt"], i))
        # A text prompt: the text as given, then the generated text; the BOS the server put
        # before it is in the tokens (null), not in the text, and moves no offset.
        r = self.client.completions.create(model="m", prompt=PROMPTS[1], max_tokens=4, logprobs=2, echo=True,
                                           temperature=0)
        c = r.choices[0]
        self.assertEqual(c.text, PROMPTS[1] + generate(PROMPTS[1], 4, "--greedy")[0])
        self.assertEqual(c.logprobs.tokens[0], "<|begin_of_text|>")
        self.assertEqual(c.logprobs.text_offset[:2], [0, 0])
        self.assertEqual(len(c.logprobs.tokens), r.usage.prompt_tokens + r.usage.completion_tokens)
        self.assertEqual("".join(c.logprobs.tokens[1:]), c.text)
        # Streamed: the same text and entries; n: every choice echoes.
        streamed = {"text": "", "tokens": [], "token_logprobs": []}
        for ch in self.client.completions.create(model="m", prompt=PROMPTS[1], max_tokens=4, logprobs=2,
                                                 echo=True, temperature=0, stream=True):
            streamed["text"] += ch.choices[0].text
            for k in ("tokens", "token_logprobs"):
                streamed[k] += getattr(ch.choices[0].logprobs, k) if ch.choices[0].logprobs else []
        self.assertEqual(streamed, {"text": c.text, "tokens": c.logprobs.tokens,
                                    "token_logprobs": c.logprobs.token_logprobs})
        r = self.client.completions.create(model="m", prompt=PROMPTS[1], max_tokens=4, echo=True, temperature=0, n=2)
        self.assertEqual([x.text for x in r.choices], [c.text] * 2)
        # With logprobs the first choice scores the prompt, and the second takes its entries
        # (and its K/V: the prompt is fed once).
        before = self.metrics()[("bitnet_prompt_tokens_cached_total", ())]
        r = self.client.completions.create(model="m", prompt=PROMPTS[1], max_tokens=4, logprobs=2, echo=True,
                                           temperature=0, n=2)
        self.srv.wait_idle()
        self.assertEqual([(x.text, x.logprobs.token_logprobs, x.logprobs.tokens) for x in r.choices],
                         [(c.text, c.logprobs.token_logprobs, c.logprobs.tokens)] * 2)
        self.assertEqual(self.metrics()[("bitnet_prompt_tokens_cached_total", ())] - before,
                         r.usage.prompt_tokens - 1)
        # The generated token is the end of the text (forced by a bias): it has its entry, last,
        # which lm-eval drops (token_logprobs[ctxlen:-1]), and none of its text.
        ids = self.ref_ids(PROMPTS[1])
        r = self.client.completions.create(model="m", prompt=[ids], max_tokens=1, logprobs=1, echo=True,
                                           temperature=0, logit_bias={"128001": 100})
        ended = r.choices[0]
        self.assertEqual((ended.finish_reason, len(ended.logprobs.tokens)), ("stop", len(ids) + 1))
        self.assertEqual(ended.logprobs.tokens[-1], "<|end_of_text|>")
        self.assertEqual(ended.logprobs.text_offset[-1], len(ended.text.encode()))  # its text is not there
        self.assertLess(ended.logprobs.token_logprobs[-1], 0)
        # max_tokens 0: the prompt alone, scored.
        r = self.client.completions.create(model="m", prompt=PROMPTS[1], max_tokens=0, logprobs=0, echo=True)
        self.assertEqual((r.choices[0].text, r.choices[0].finish_reason), (PROMPTS[1], "length"))
        self.assertEqual(r.choices[0].logprobs.token_logprobs, c.logprobs.token_logprobs[:r.usage.prompt_tokens])
        self.assertEqual(r.usage.completion_tokens, 0)

    def ref_ids(self, text):
        _, _, raw = self.srv.request("POST", "/tokenize", {"content": text, "add_special": True})
        return json.loads(raw)["tokens"]

    def test_vllm_tokenizer_endpoints(self):
        """vLLM's /tokenize form ({"prompt", "add_special_tokens"}: the BOS unless told not,
        special tokens' text parsed), /detokenize's "prompt", and /tokenizer_info, which
        lm-evaluation-harness's remote tokenizer reads."""
        status, _, raw = self.srv.request("GET", "/tokenizer_info")
        info = json.loads(raw)
        self.assertEqual(status, 200)
        self.assertEqual((info["bos_token"], info["eos_token"]), ("<|begin_of_text|>", "<|end_of_text|>"))
        self.assertEqual(info["model_max_length"], CTX)
        _, _, raw = self.srv.request("POST", "/tokenize", {"content": "Hello world"})
        ids = json.loads(raw)["tokens"]
        _, _, raw = self.srv.request("POST", "/tokenize", {"prompt": "Hello world", "add_special_tokens": False})
        self.assertEqual(json.loads(raw), {"tokens": ids, "count": len(ids), "max_model_len": CTX})
        _, _, raw = self.srv.request("POST", "/tokenize", {"prompt": info["bos_token"] + "Hello world",
                                                            "add_special_tokens": False})
        self.assertEqual(json.loads(raw)["tokens"], [128000] + ids)
        _, _, raw = self.srv.request("POST", "/tokenize", {"prompt": "Hello world"})
        self.assertEqual(json.loads(raw)["tokens"], [128000] + ids)
        _, _, raw = self.srv.request("POST", "/detokenize", {"tokens": ids})
        self.assertEqual(json.loads(raw)["prompt"], "Hello world")

    def test_json_object(self):
        """response_format json_object: a reply that ends by itself is one JSON object, streamed or
        not (the random model makes anything but JSON on its own)."""
        whole = 0
        for seed in range(16):
            for stream in (False, True):
                r = self.client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "Give me a JSON object."}], max_tokens=60,
                    temperature=1.0, seed=seed, stream=stream, response_format={"type": "json_object"})
                text, finish = self.text_of(r, stream)
                if finish == "stop":
                    self.assertIsInstance(json.loads(text), dict, text)
                    whole += 1
        print(f"json_object: {whole} of 32 replies whole", file=sys.stderr)
        self.assertGreaterEqual(whole, 4)

    def test_json_schema(self):
        """response_format json_schema: a reply that ends by itself satisfies the schema, as the
        jsonschema package judges it, in chat and completion, streamed or not; a schema the server
        cannot follow, or a malformed one, is a 400 that says why."""
        schema = {"type": "object", "properties": {
            "name": {"type": "string"}, "age": {"type": "integer"},
            "color": {"enum": ["red", "green", "blue"]},
            "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2},
            "code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2,4}$"}},
            "required": ["age", "color", "code"]}
        fmt = {"type": "json_schema", "json_schema": {"name": "pet", "schema": schema, "strict": True}}
        whole = 0
        for seed in range(6):
            for stream in (False, True):
                r = self.client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "A pet, please."}], max_tokens=60,
                    temperature=1.0, seed=seed, stream=stream, response_format=fmt)
                text, finish = self.text_of(r, stream)
                if finish == "stop":
                    jsonschema.validate(json.loads(text), schema)
                    whole += 1
        self.assertGreaterEqual(whole, 4)
        r = self.client.completions.create(model="m", prompt="A pet:", max_tokens=60, temperature=0,
                                           extra_body={"response_format": fmt})
        if r.choices[0].finish_reason == "stop":
            jsonschema.validate(json.loads(r.choices[0].text), schema)
        # The bounds as the request wrote them: no integer lies between these two (printed with
        # cJSON's 15 digits they would read 99 and 100).
        between = {"type": "integer", "minimum": 99.00000000000001, "maximum": 99.99999999999999}
        for bad, says in (({"type": "string", "pattern": "^a(?=b)"}, "'pattern' cannot be followed"),
                          ({"type": "integer", "multipleOf": 2}, "'multipleOf' is not supported"),
                          ({"$ref": "#/$defs/none"}, "'$ref' must be"), ("x", "json_schema must be"),
                          (between, "leave no integer")):
            status, _, raw = self.srv.request("POST", "/v1/chat/completions", {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": bad}}})
            assert_error(self, status, raw, 400)
            self.assertIn(says, json.loads(raw)["error"]["message"])

    def test_schema_aliases(self):
        """llama.cpp's json_schema, vLLM's guided_json (an object or its text) and
        structured_outputs' json hold the reply to the schema as response_format does: the
        same greedy reply. Two formats at once, or the other servers' grammars, are a 400
        that names the field."""
        schema = {"type": "object", "properties": {"n": {"type": "integer"}, "c": {"enum": ["x", "y"]}},
                  "required": ["n", "c"]}
        base = {"prompt": "Data:", "max_tokens": 40, "temperature": 0}
        forms = [{"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": schema}}},
                 {"json_schema": schema}, {"guided_json": schema}, {"guided_json": json.dumps(schema)},
                 {"structured_outputs": {"json": schema}}]
        texts = []
        for form in forms:
            status, _, raw = self.srv.request("POST", "/v1/completions", {**base, **form})
            self.assertEqual(status, 200, raw)
            texts.append(json.loads(raw)["choices"][0]["text"])
        self.assertEqual(texts, [texts[0]] * len(forms))
        self.assertTrue(texts[0].lstrip().startswith("{"), texts[0])
        for body, names in (({"json_schema": schema, "guided_json": schema}, "'guided_json' beside"),
                            ({"response_format": {"type": "json_object"}, "json_schema": schema}, "'json_schema' beside"),
                            ({"guided_json": "{not json"}, "'guided_json' must be a JSON Schema"),
                            ({"json_schema": [1]}, "'json_schema' must be a JSON Schema"),
                            ({"grammar": "root ::= \"a\""}, "'grammar' is not supported"),
                            ({"guided_grammar": "x"}, "'guided_grammar' is not supported"),
                            ({"structured_outputs": {"grammar": "x"}}, "'structured_outputs' is not supported"),
                            ({"structured_outputs": "json"}, "'structured_outputs' is not supported")):
            status, _, raw = self.srv.request("POST", "/v1/completions", {**base, **body})
            assert_error(self, status, raw, 400)
            self.assertIn(names, json.loads(raw)["error"]["message"])
        off = {**base, "max_tokens": 2, "grammar": "", "guided_regex": None, "guided_choice": None,
               "json_schema": None, "structured_outputs": {"json": None}}
        status, _, raw = self.srv.request("POST", "/v1/completions", off)
        self.assertEqual(status, 200, raw)

    def test_guided_regex_and_choice(self):
        """vLLM's guided_choice and guided_regex (and structured_outputs' choice and regex):
        a reply that ends by itself is one of the choices, or a whole match of the expression,
        in chat and completion, streamed or not, greedy and sampled; a bad expression, an empty
        or non-string choice, two formats at once, or tools beside one are a 400 that says why."""
        choices = ["yes", "no", "it depends (on the weather)"]
        number = r"[0-9]{1,3} (apples|pears)\."
        for seed in range(4):
            for stream in (False, True):
                kw = dict(model="m", max_tokens=40, temperature=0 if seed == 0 else 1.2, seed=seed, stream=stream)
                r = self.client.chat.completions.create(messages=[{"role": "user", "content": "Rain?"}],
                                                        extra_body={"guided_choice": choices}, **kw)
                text, finish = self.text_of(r, stream)
                self.assertEqual(finish, "stop", text)
                self.assertIn(text, choices)
                r = self.client.completions.create(prompt="She bought", extra_body={"guided_regex": number}, **kw)
                parts = [r.choices[0]] if not stream else [c.choices[0] for c in r if c.choices]
                text = "".join(c.text for c in parts)
                self.assertEqual([c.finish_reason for c in parts if c.finish_reason], ["stop"], text)
                self.assertRegex(text, "^" + number + "$")
        base = {"prompt": "Well,", "max_tokens": 30, "temperature": 0}
        texts = []
        for form in ({"guided_choice": choices}, {"structured_outputs": {"choice": choices}},
                     {"guided_regex": "yes|no|it depends \\(on the weather\\)"}):
            status, _, raw = self.srv.request("POST", "/v1/completions", {**base, **form})
            self.assertEqual(status, 200, raw)
            texts.append(json.loads(raw)["choices"][0]["text"])
        self.assertEqual(texts, [texts[0]] * 3)
        self.assertIn(texts[0], choices)
        for body, says in (({"guided_regex": "a(?=b)"}, "at offset 1"), ({"guided_regex": 5}, "must be a string"),
                           ({"guided_choice": []}, "one or more strings"), ({"guided_choice": ["a", 1]}, "strings"),
                           ({"guided_choice": "a"}, "one or more strings"),
                           ({"guided_regex": "a", "guided_json": {}}, "'guided_regex' beside"),
                           ({"guided_choice": ["a"], "structured_outputs": {"regex": "b"}}, "beside")):
            status, _, raw = self.srv.request("POST", "/v1/completions", {**base, **body})
            assert_error(self, status, raw, 400)
            self.assertIn(says, json.loads(raw)["error"]["message"])
        status, _, raw = self.srv.request("POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "x"}], "tools": [self.ADD], "guided_choice": ["a"]})
        assert_error(self, status, raw, 400)
        self.assertIn("'tools' beside a regex", json.loads(raw)["error"]["message"])

    def text_of(self, r, stream):
        """A chat reply's text and finish_reason, streamed or not."""
        if not stream:
            return r.choices[0].message.content, r.choices[0].finish_reason
        parts, finish = [], None
        for ch in r:
            if ch.choices:
                parts.append(ch.choices[0].delta.content or "")
                finish = ch.choices[0].finish_reason or finish
        return "".join(parts), finish

    WEATHER = {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}},
                       "required": ["unit"]}}}
    ADD = {"type": "function", "function": {
        "name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}},
                                      "required": ["a"], "additionalProperties": False}}}

    def calls_of(self, r, stream):
        """(tool calls as [(id, name, arguments)], content, finish_reason), streamed or not."""
        if not stream:
            m = r.choices[0].message
            calls = [(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []]
            return calls, m.content, r.choices[0].finish_reason
        calls, content, finish = {}, [], None
        for ch in r:
            if not ch.choices:
                continue
            d = ch.choices[0].delta
            content.append(d.content or "")
            for c in d.tool_calls or []:  # deltas add up by index, as OpenAI streams them
                id_, name, args = calls.get(c.index, ("", "", ""))
                calls[c.index] = (id_ + (c.id or ""), name + (c.function.name or ""),
                                  args + (c.function.arguments or ""))
            finish = ch.choices[0].finish_reason or finish
        return [calls[i] for i in sorted(calls)], "".join(content) or None, finish

    def test_tools(self):
        """tools: with tool_choice "required" (or a function named) and one call allowed, the
        greedy random model still ends with a call whose arguments the function's parameters
        accept, streamed or not; "auto" ends with calls or with text; the calls and their results
        go back in as messages; malformed tools are a 400."""
        ask = [{"role": "user", "content": "What is the weather in Paris?"}]
        for stream in (False, True):
            for choice in ("required", {"type": "function", "function": {"name": "add"}}):
                r = self.client.chat.completions.create(
                    model="m", messages=ask, max_tokens=150, temperature=0, stream=stream,
                    tools=[self.WEATHER, self.ADD], tool_choice=choice, parallel_tool_calls=False)
                calls, content, finish = self.calls_of(r, stream)
                self.assertEqual((finish, content, len(calls)), ("tool_calls", None, 1), (stream, choice))
                id_, name, args = calls[0]
                self.assertTrue(id_.startswith("call_"), id_)
                if choice != "required":
                    self.assertEqual(name, "add")
                tool = {"get_weather": self.WEATHER, "add": self.ADD}[name]
                jsonschema.validate(json.loads(args), tool["function"]["parameters"])
        for seed in range(4):
            r = self.client.chat.completions.create(model="m", messages=ask, max_tokens=150, temperature=1.0,
                                                    seed=seed, tools=[self.WEATHER])
            calls, content, finish = self.calls_of(r, False)
            if finish == "tool_calls":
                self.assertTrue(calls and content is None)
                for _, name, args in calls:
                    self.assertEqual(name, "get_weather")
                    jsonschema.validate(json.loads(args), self.WEATHER["function"]["parameters"])
            else:
                self.assertFalse(calls)
                self.assertIsInstance(content, str)
        # Beside tools, a response_format shapes the answer that calls none; a tool that is not
        # strict has the keywords the server cannot follow (format email) dropped, not refused,
        # and keeps those it can (an integer's minimum, format date).
        loose = {"type": "function", "function": {"name": "count", "parameters": {
            "type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
                                             "day": {"type": "string", "format": "date"},
                                             "mail": {"type": "string", "format": "email"}}, "required": ["n"]}}}
        pet = {"type": "object", "properties": {"kind": {"enum": ["cat", "dog"]}}, "required": ["kind"]}
        for seed in range(3):
            r = self.client.chat.completions.create(
                model="m", messages=ask, max_tokens=150, temperature=1.0, seed=seed, tools=[loose],
                response_format={"type": "json_schema", "json_schema": {"name": "pet", "schema": pet}})
            calls, content, finish = self.calls_of(r, False)
            if finish == "tool_calls":
                args = json.loads(calls[0][2])
                self.assertTrue(isinstance(args["n"], int) and args["n"] >= 1, args)
                if "day" in args:
                    datetime.date.fromisoformat(args["day"])
            elif finish == "stop":
                jsonschema.validate(json.loads(content), pet)
        # The conversation goes on after a call: its result in a "tool" message.
        history = ask + [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"unit":"c"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees"}]
        r = self.client.chat.completions.create(model="m", messages=history, max_tokens=4, tools=[self.WEATHER],
                                                tool_choice="none")
        self.assertEqual(r.choices[0].message.tool_calls, None)
        for body, says in (
                ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "'name'"),
                ({"tools": [self.WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
                 "'tool_choice'"),
                ({"tool_choice": "required"}, "'tool_choice' needs 'tools'"),
                ({"tools": [self.WEATHER], "stop": ["x"]}, "'stop' with 'tools'"),
                ({"tools": [{"type": "function", "function": {"name": "f", "strict": True,
                                                              "parameters": {"format": "x"}}}]},
                 "'format' is not supported"),
                ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
                ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}]},
                 "'arguments'")):
            status, _, raw = self.srv.request("POST", "/v1/chat/completions",
                                              {"messages": [{"role": "user", "content": "x"}], **body})
            assert_error(self, status, raw, 400)
            self.assertIn(says, json.loads(raw)["error"]["message"])
        status, _, raw = self.srv.request("POST", "/v1/completions", {"prompt": "x", "tools": [self.WEATHER]})
        assert_error(self, status, raw, 400)

    def metrics(self):
        """/metrics read by Prometheus's own parser: {(sample name, labels): value}."""
        status, ctype, raw = self.srv.request("GET", "/metrics")
        self.assertEqual((status, ctype), (200, "text/plain; version=0.0.4"))
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(raw.decode()) for s in family.samples}

    def test_metrics(self):
        """One request moves the counters by what its usage says."""
        before = self.metrics()
        _, _, usage = self.complete(PROMPTS[0], False, max_tokens=5, extra_body={"cache_prompt": False})
        self.srv.wait_idle()
        after = self.metrics()

        def moved(name, **labels):
            key = (name, tuple(sorted(labels.items())))
            return after[key] - before[key]
        self.assertEqual(moved("bitnet_requests_total", ended="length"), 1)
        self.assertEqual(sum(moved("bitnet_requests_total", ended=e) for e in ("stop", "cancelled", "error")), 0)
        self.assertEqual(moved("bitnet_prompt_tokens_total"), usage.prompt_tokens)
        self.assertEqual(moved("bitnet_prompt_tokens_cached_total"), 0)
        self.assertEqual(moved("bitnet_generated_tokens_total"), usage.completion_tokens)
        self.assertGreaterEqual(moved("bitnet_steps_total"), usage.completion_tokens)
        self.assertGreater(moved("bitnet_step_seconds_total"), 0)
        self.assertEqual(moved("bitnet_time_to_first_token_seconds_count"), 1)
        self.assertEqual(moved("bitnet_request_duration_seconds_count"), 1)
        self.assertGreaterEqual(moved("bitnet_request_duration_seconds_sum"),
                                moved("bitnet_time_to_first_token_seconds_sum"))
        self.assertEqual([after[(n, ())] for n in ("bitnet_slots", "bitnet_requests_running",
                                                   "bitnet_requests_queued")], [8, 0, 0])
        self.assertEqual(moved("bitnet_json_mask_rows_total", **{"from": "cache"}) +
                         moved("bitnet_json_mask_rows_total", **{"from": "worked_out"}), 0)
        # A JSON request masks a row a token; the same one again finds every row in the
        # mask cache (the schema's compilation is shared).
        rows = []
        for _ in range(2):
            before = after
            _, _, usage = self.complete(PROMPTS[1], False, max_tokens=6, temperature=0,
                                        extra_body={"response_format": {"type": "json_object"}})
            self.srv.wait_idle()
            after = self.metrics()
            rows.append((moved("bitnet_json_mask_rows_total", **{"from": "cache"}),
                         moved("bitnet_json_mask_rows_total", **{"from": "worked_out"}), usage.completion_tokens))
        self.assertEqual(sum(rows[0][:2]), rows[0][2])
        self.assertEqual(rows[1], (rows[0][2], 0, rows[0][2]))

    def test_stop_strings(self):
        full, _, _ = self.ref[(PROMPTS[2], False)]
        stop = full[len(full) // 2:len(full) // 2 + 3]
        for stream in (False, True):
            text, finish, _ = self.complete(PROMPTS[2], stream, stop=[stop, "never there"])
            self.assertEqual(text, full[:full.index(stop)])
            self.assertEqual(finish, "stop")

    def test_max_tokens_capped_by_the_context(self):
        text, finish, usage = self.complete(PROMPTS[0], False, max_tokens=100000)
        self.assertEqual(finish, "length")
        self.assertEqual(usage.completion_tokens, CTX - usage.prompt_tokens + 1)

    def test_models_and_health(self):
        self.assertEqual([m.id for m in self.client.models.list()], ["tiny-a.gguf"])
        h = self.srv.health()
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["slots_total"], 8)

    def test_tokenize_detokenize(self):
        status, ctype, raw = self.srv.request("POST", "/tokenize", {"content": "Hello world", "with_pieces": True})
        self.assertEqual((status, ctype), (200, "application/json"))
        pieces = json.loads(raw)["tokens"]
        self.assertEqual("".join(p["piece"] for p in pieces), "Hello world")
        ids = [p["id"] for p in pieces]
        status, _, raw = self.srv.request("POST", "/tokenize", {"content": "Hello world", "add_special": True})
        self.assertEqual(json.loads(raw)["tokens"][1:], ids)
        status, _, raw = self.srv.request("POST", "/detokenize", {"tokens": ids})
        self.assertEqual(json.loads(raw), {"content": "Hello world", "prompt": "Hello world"})

    # ---- raw and malformed requests ------------------------------------------------

    def test_bad_requests(self):
        cases = [
            ("/v1/completions", b"{not json"),
            ("/v1/completions", b"[1, 2]"),
            ("/v1/completions", {"prompt": {"a": 1}}),
            ("/v1/completions", {"prompt": "x", "temperature": "hot"}),
            ("/v1/completions", {"prompt": "x", "max_tokens": -1}),
            ("/v1/completions", {"prompt": "x", "max_tokens": 1.5}),
            ("/v1/completions", {"prompt": "x", "stream": "yes"}),
            ("/v1/completions", {"prompt": "x", "cache_prompt": 0}),
            ("/v1/completions", {"prompt": "x", "logprobs": 21}),
            ("/v1/completions", {"prompt": "x", "logprobs": True}),
            ("/v1/completions", {"prompt": "x", "echo": "yes"}),
            ("/v1/completions", {"prompt": "x", "max_tokens": 0}),  # 0 only with echo
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "echo": True}),
            ("/v1/completions", {"prompt": []}),
            ("/v1/completions", {"prompt": ["x", 5]}),
            ("/v1/completions", {"prompt": ["x", []]}),
            ("/v1/completions", {"prompt": ["x"] * 65, "n": 2}),  # more than 128 choices
            ("/v1/completions", {"prompt": "x", "best_of": 3}),
            ("/v1/completions", {"prompt": "x", "logit_bias": {"5": 101}}),
            ("/v1/completions", {"prompt": "x", "logit_bias": {"x5": 1}}),
            ("/v1/completions", {"prompt": "x", "logit_bias": {"-5": 1}}),
            ("/v1/completions", {"prompt": "x", "logit_bias": {"999999999": 1}}),
            ("/v1/completions", {"prompt": "x", "logit_bias": {"5": "1"}}),
            ("/v1/completions", {"prompt": "x", "logit_bias": [[5, 1]]}),
            ("/v1/completions", {"prompt": "x", "logit_bias": {"05": 1}}),
            ("/v1/completions", b'{"prompt": "x", "logit_bias": {"5": 1, "5": 2}}'),  # one token twice
            ("/v1/completions", {"prompt": "x", "repeat_last_n": -2}),
            ("/v1/completions", {"prompt": "x", "presence_penalty": 2.5}),
            ("/v1/completions", {"prompt": "x", "frequency_penalty": "high"}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": 1}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                      "tools": [{"type": "function"}]}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                      "response_format": {"type": "json_schema", "json_schema": {}}}),
            ("/v1/completions", {"prompt": "x", "response_format": "json_object"}),
            # cJSON cuts a string at a NUL: refused rather than served cut short.
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a\x00b"}]}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "response_format": {
                "type": "json_schema", "json_schema": {"name": "n", "schema": {"enum": ["a\x00b"]}}}}),
            ("/v1/completions", {"prompt": "x", "tools": {"type": "text"}}),
            ("/v1/completions", {"prompt": "x", "stop": 7}),
            ("/v1/completions", {"prompt": "x", "stop": ["a", 1]}),
            ("/v1/completions", {"prompt": "x", "n": 0}),
            ("/v1/completions", {"prompt": "x", "n": 129}),
            ("/v1/completions", {"prompt": "x", "n": "2"}),
            ("/v1/completions", {"prompt": "x", "n": 1.5}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": True}),
            ("/v1/completions", {"prompt": "x", "top_k": "many"}),
            ("/v1/completions", {"prompt": "x", "top_p": 0}),
            ("/v1/completions", {"prompt": "x", "seed": "s"}),
            ("/v1/completions", {"prompt": [1, 2, 10 ** 9]}),
            ("/v1/completions", {"prompt": "hello " * 400}),  # longer than the context
            ("/v1/chat/completions", {"messages": "hi"}),
            ("/v1/chat/completions", {"messages": []}),
            ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}),
            ("/v1/chat/completions", {"messages": [{"content": "x"}]}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}),
            ("/tokenize", {"content": 5}),
            ("/detokenize", {"tokens": ["a"]}),
            ("/detokenize", {"tokens": [-1]}),
        ]
        for path, body in cases:
            status, ctype, raw = self.srv.request("POST", path, body)
            assert_error(self, status, raw, 400)
            self.assertEqual(ctype, "application/json")
        # The same parameters set to what they would be without them: accepted.
        off = {"prompt": "x", "max_tokens": 1, "echo": False, "best_of": 1, "suffix": "", "logit_bias": {"5": 0},
               "presence_penalty": 0, "frequency_penalty": 0, "tools": [], "functions": None,
               "response_format": {"type": "text", "json_schema": None}}
        status, _, raw = self.srv.request("POST", "/v1/completions", off)
        self.assertEqual(status, 200, raw)
        # llama.cpp's -1: the penalties look at the whole context.
        status, _, raw = self.srv.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2,
                                                                       "repeat_last_n": -1, "presence_penalty": 0.5})
        self.assertEqual(status, 200, raw)
        status, _, raw = self.srv.request("POST", "/v1/completions", {"prompt": "hello " * 400})
        self.assertEqual(json.loads(raw)["error"]["code"], "context_length_exceeded")
        assert_error(self, *self.srv.request("GET", "/v1/nothing")[::2], 404)
        assert_error(self, *self.srv.request("GET", "/v1/completions")[::2], 405)

    def test_huge_bodies(self):
        # Refused from its Content-Length, before the body is read.
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (3 << 20))
        try:
            s.sendall(b"x" * (1 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413"), got)
        self.assertEqual(json.loads(body)["error"]["code"], "body_too_large")
        # Chunked, so no Content-Length to refuse up front: the server hangs up.
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b"y" * (1 << 16))
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(head)
        try:
            for _ in range(64):  # 4 MiB
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.close()
        self.assertEqual(self.srv.health()["status"], "ok")
        # Headers larger than the connection's memory.
        got = raw_exchange(self.srv.port, b"GET /health HTTP/1.1\r\nX: " + b"h" * 100000 + b"\r\n\r\n")
        self.assertNotIn(b"200 OK", got)

    def test_slowloris(self):
        """Partial requests hold no one up, and go after the idle timeout (3 s)."""
        socks = []
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=15)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro"
                      if i % 2 else b"GET /hea")
            socks.append(s)
        text, _, _ = self.complete(PROMPTS[0], False)  # served meanwhile
        self.assertEqual(text, self.ref[(PROMPTS[0], False)][0])
        t0 = time.time()
        for s in socks:
            self.assertIn(s.recv(4096), (b"",))  # closed by the server, nothing answered
            s.close()
        self.assertLess(time.time() - t0, 12)

    def test_client_hangs_up(self):
        """A client that leaves mid-generation frees its slot at once."""
        body = json.dumps({"prompt": "x", "max_tokens": 250, "temperature": 0}).encode()
        for stream in (False, True):
            req = json.dumps({"prompt": "x", "max_tokens": 250, "temperature": 0, "stream": stream}).encode()
            s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(req), req))
            if stream:
                self.assertIn(b"200 OK", s.recv(4096))
            self.assertEqual(self.srv.wait_processing(1), 1)  # (250 tokens outlast the wait)
            s.close()
            self.srv.wait_idle(timeout=3)
        # Half a request, then gone: nothing was started.
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body),
                                                                                               body[:10]))
        s.close()

    # ---- load ---------------------------------------------------------------------

    def test_concurrent_load(self):
        """32 clients x 8 requests: every answer well-formed, greedy ones equal generate's."""
        failures, lock = [], threading.Lock()

        def client(k):
            c = openai.OpenAI(base_url=self.srv.url, api_key="unused", max_retries=0, timeout=300)
            for i in range(8):
                p, chat, stream = PROMPTS[(k + i) % len(PROMPTS)], (k + i) % 2 == 1, (k // 2 + i) % 2 == 1
                try:
                    if chat:
                        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": p}],
                                                      max_tokens=12, temperature=0, stream=stream)
                    else:
                        r = c.completions.create(model="m", prompt=p, max_tokens=12, temperature=0, stream=stream)
                    if stream:
                        parts, usage = [], None
                        for ch in r:
                            if ch.choices:
                                parts.append((ch.choices[0].delta.content if chat else ch.choices[0].text) or "")
                            usage = ch.usage or usage
                        text = "".join(parts)
                    else:
                        text = r.choices[0].message.content if chat else r.choices[0].text
                        usage = r.usage
                    want, n_prompt, _ = self.ref[(p, chat)]
                    if text != want or usage.prompt_tokens != n_prompt:
                        raise AssertionError(f"{text!r} != {want!r} or {usage}")
                except Exception as e:  # noqa: BLE001 - collected and reported below
                    with lock:
                        failures.append(f"client {k} request {i} ({p!r}, chat={chat}, stream={stream}): {e!r}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(32)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        self.assertEqual(failures, [])
        h = self.srv.wait_idle()
        self.assertEqual(h["slots_idle"], 8)
        print(f"\n  256 requests from 32 clients in {time.time() - t0:.1f} s", file=sys.stderr)


@unittest.skipUnless(os.path.exists(MODEL), f"fixture {MODEL} not found (set BITNET_FIXTURES)")
class ServeLifecycleTest(unittest.TestCase):
    def test_alias_and_default_max_tokens(self):
        """--alias names the model in /v1/models and in every response; -n is max_tokens for a
        request that gives none (chat and completion alike), as llama-server's flags are."""
        srv = Server("--alias", "bitnet-test", "-n", "3")
        try:
            status, _, raw = srv.request("GET", "/v1/models")
            self.assertEqual([m["id"] for m in json.loads(raw)["data"]], ["bitnet-test"])
            c = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0)
            r = c.completions.create(model="bitnet-test", prompt=PROMPTS[2], temperature=0)
            self.assertEqual((r.model, r.usage.completion_tokens, r.choices[0].finish_reason),
                             ("bitnet-test", 3, "length"))
            self.assertEqual(r.choices[0].text, generate(PROMPTS[2], 3, "--greedy")[0])
            r = c.chat.completions.create(model="bitnet-test", messages=[{"role": "user", "content": "hi"}],
                                          temperature=0)
            self.assertEqual((r.model, r.usage.completion_tokens), ("bitnet-test", 3))
            self.assertEqual(r.choices[0].message.content, generate("hi", 3, "--greedy", "--chat")[0])
            r = c.completions.create(model="bitnet-test", prompt=PROMPTS[2], temperature=0, max_tokens=5)
            self.assertEqual(r.usage.completion_tokens, 5)  # a request's own max_tokens wins
        finally:
            self.assertEqual(srv.stop(), 0, srv.output())

    def test_chat_template(self):
        """--chat-template: the chat completions take that format, as generate --chat does with it."""
        srv = Server("--chat-template", "llama3")
        try:
            status, _, raw = srv.request("POST", "/v1/chat/completions", {
                "messages": [{"role": "user", "content": PROMPTS[1]}], "max_tokens": 8, "temperature": 0})
            self.assertEqual(status, 200, raw)
            want, n_prompt, _ = generate(PROMPTS[1], 8, "--greedy", "--chat", "--chat-template", "llama3")
            self.assertEqual(json.loads(raw)["choices"][0]["message"]["content"], want)
            self.assertEqual(json.loads(raw)["usage"]["prompt_tokens"], n_prompt)
        finally:
            self.assertEqual(srv.stop(), 0, srv.output())

    def test_tokenizer_info_chat_template(self):
        """/tokenizer_info's chat_template is the model's own Jinja template where chat applies its
        format: rendered as lm-evaluation-harness renders it (jinja2, add_generation_prompt), it gives
        the ids `generate --chat` feeds. Without a template (tiny-a), or with --chat-template naming
        another format, there is none."""
        import tempfile
        try:
            import jinja2.sandbox  # lm-eval's dependency, as the harness renders templates
        except ImportError:
            self.skipTest("the jinja2 package is not installed (BITNET_WANT_PYTHON=1 scripts/deps.sh)")
        vocab = os.path.join(FIXTURES, "llama3", "tokenizer.json")
        with open(os.path.join(FIXTURES, "llama3", "tokenizer_config.json")) as f:
            template = json.load(f)["chat_template"]
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "tiny-llama3.gguf")
            subprocess.run([CLI, "make-model", "-o", model, "--preset", "tiny-llama", "--vocab", vocab],
                           check=True, capture_output=True, timeout=120)
            for flags, want in (((), template), (("--chat-template", "bitnet"), None)):
                srv = Server(*flags, model=model)
                try:
                    info = json.loads(srv.request("GET", "/tokenizer_info")[2])
                finally:
                    self.assertEqual(srv.stop(), 0, srv.output())
                self.assertEqual(info.get("chat_template"), want, flags)
            messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
            text = jinja2.sandbox.ImmutableSandboxedEnvironment().from_string(template).render(
                messages=messages, add_generation_prompt=True, bos_token=info["bos_token"])
            srv = Server(model=model)
            try:
                ids = json.loads(srv.request("POST", "/tokenize", {"prompt": text, "add_special_tokens": False})[2])
            finally:
                self.assertEqual(srv.stop(), 0, srv.output())
            r = subprocess.run([CLI, "generate", "-m", model, "-p", "Hi there", "--system", "Be brief.", "--chat",
                                "-n", "1", "--json", "--no-cpu-start"], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(ids["tokens"], json.loads(r.stdout)["prompt_ids"])
        srv = Server()  # tiny-a: no template
        try:
            self.assertNotIn("chat_template", json.loads(srv.request("GET", "/tokenizer_info")[2]))
        finally:
            self.assertEqual(srv.stop(), 0, srv.output())

    def test_sampling_flags_are_the_defaults(self):
        """serve's sampling flags are what a request leaves out takes, as llama-server's are:
        here a temperature, a seed (so the same request gets the same reply) and a ban on
        the reply's second token, which a request's own logit_bias replaces."""
        flags = ["--temp", "0.9", "--seed", "7", "-l", "68830-inf"]
        srv = Server(*flags)
        try:
            def text(**body):
                status, _, raw = srv.request("POST", "/v1/completions",
                                             {"prompt": PROMPTS[2], "max_tokens": 12, **body})
                self.assertEqual(status, 200, raw)
                return json.loads(raw)["choices"][0]["text"]
            self.assertEqual(text(), generate(PROMPTS[2], 12, *flags)[0])
            self.assertEqual(text(), text())  # the server's seed, not a fresh one
            self.assertEqual(text(logit_bias={}), generate(PROMPTS[2], 12, *flags[:4])[0])
            self.assertNotEqual(text(), text(logit_bias={}))  # the ban mattered
            self.assertNotEqual(text(seed=-1), text(seed=-1))  # -1: a fresh seed each time, as llama-server
            self.assertEqual(text(temperature=0), generate(PROMPTS[2], 12, "--greedy", *flags[4:])[0])
        finally:
            self.assertEqual(srv.stop(), 0, srv.output())

    def test_api_key(self):
        srv = Server("--api-key", "s3cret")
        try:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                status, _, raw = srv.request("POST", "/v1/completions", {"prompt": "x"}, headers)
                assert_error(self, status, raw, 401)
            status, _, _ = srv.request("GET", "/health", None, {"Authorization": "Bearer s3cret"})
            self.assertEqual(status, 200)
            c = openai.OpenAI(base_url=srv.url, api_key="s3cret", max_retries=0)
            self.assertEqual(c.completions.create(model="m", prompt="2+2=", max_tokens=2).usage.completion_tokens, 2)
            with self.assertRaises(openai.AuthenticationError):
                openai.OpenAI(base_url=srv.url, api_key="nope", max_retries=0).models.list()
        finally:
            self.assertEqual(srv.stop(), 0, srv.output())

    def test_signals_stop_cleanly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            srv = Server("--parallel", "2")
            c = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=60)
            results = []

            def run(stream):
                try:
                    r = c.completions.create(model="m", prompt="x", max_tokens=200, temperature=0, stream=stream)
                    results.append("".join(ch.choices[0].text for ch in r) if stream else r.choices[0].text)
                except openai.APIError as e:  # cut off by the shutdown: an error, not a hang
                    results.append(e)

            threads = [threading.Thread(target=run, args=(s,)) for s in (False, True, False)]
            for t in threads:
                t.start()
            time.sleep(0.3)
            self.assertEqual(srv.stop(sig), 0, srv.output())
            for t in threads:
                t.join(30)
                self.assertFalse(t.is_alive())
            self.assertEqual(len(results), 3)
            self.assertIn("stopped", srv.output())
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", srv.port), timeout=2)

    def drafted_texts_match(self, *flags):
        """With flags that draft (--lookup, -md), each request's text, greedy or seeded, streamed or
        not, four at once, is what `generate` makes of it without drafts, on the shipped model (whose
        greedy Austen repeats itself). Returns /metrics' lookup counters."""
        prompts = ["It is a truth universally acknowledged, that a single man in possession of a good fortune",
                   "one, two, three, four, five; one, two, three, four, five; one, two,", "Elizabeth", "The"]
        kinds = [dict(temperature=0), dict(temperature=0.8, seed=11)]

        def reference(prompt, kind):
            flags = ["--greedy"] if kind["temperature"] == 0 else ["--temp", "0.8", "--seed", "11"]
            r = subprocess.run([CLI, "generate", "-m", SHIPPED, "-p", prompt, "-n", "64", "-t", "2", "-c", "512",
                                "--no-cpu-start", "--json", *flags], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)["text"]
        want = {(p, i): reference(p, k) for p in prompts for i, k in enumerate(kinds)}
        srv = Server(*flags, "--parallel", "4", model=SHIPPED, ctx=512)
        try:
            c = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0)
            got, errors = {}, []

            def one(p, i, stream):
                try:
                    r = c.completions.create(model="m", prompt=p, max_tokens=64, stream=stream, **kinds[i])
                    got[(p, i, stream)] = "".join(x.choices[0].text for x in r) if stream else r.choices[0].text
                except Exception as e:  # reported below, with the others
                    errors.append(e)
            for stream in (False, True):
                threads = [threading.Thread(target=one, args=(p, i, stream)) for p in prompts for i in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(120)
            self.assertEqual(errors, [])
            for (p, i, stream), text in got.items():
                self.assertEqual(text, want[(p, i)], (p, i, stream))
            self.assertEqual(len(got), 2 * len(want))
            families = {f.name: f for f in text_string_to_metric_families(srv.request("GET", "/metrics")[2].decode())}
            srv.wait_idle()
            return {n: families[n].samples[0].value for n in ("bitnet_lookup_drafted_tokens",
                                                              "bitnet_lookup_accepted_tokens", "bitnet_lookup_passes")}
        finally:
            self.assertEqual(srv.stop(), 0, srv.output())

    def test_lookup(self):
        """--lookup 8: the texts without it; /metrics counts the drafts taken and refused."""
        value = self.drafted_texts_match("--lookup", "8")
        self.assertGreater(value["bitnet_lookup_accepted_tokens"], 0, value)
        self.assertGreater(value["bitnet_lookup_drafted_tokens"], value["bitnet_lookup_accepted_tokens"])
        self.assertGreater(value["bitnet_lookup_passes"], 0)
        r = subprocess.run([CLI, "serve", "-m", SHIPPED, "--lookup", "33"], stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--lookup", r.stderr)

    def test_draft_model(self):
        """-md: the shipped model drafting for itself gives the texts without drafts, most drafts
        taken; a draft model of another vocabulary is one error."""
        value = self.drafted_texts_match("-md", SHIPPED, "--draft-max", "8", "--draft-p-min", "0")
        self.assertGreater(value["bitnet_lookup_accepted_tokens"], value["bitnet_lookup_drafted_tokens"] / 2, value)
        self.assertGreater(value["bitnet_lookup_passes"], 0)
        with tempfile.TemporaryDirectory() as tmp:
            other = os.path.join(tmp, "builtin-vocab.gguf")  # make-model's own vocabulary
            subprocess.run([CLI, "make-model", "-o", other], check=True, stdout=subprocess.DEVNULL)
            r = subprocess.run([CLI, "serve", "-m", SHIPPED, "-md", other, "--port", "0"], stderr=subprocess.PIPE,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 1)
            self.assertIn("--model-draft: the vocabularies differ", r.stderr)
            # -c past the draft model's own context (512): it drafts within its own.
            long = os.path.join(tmp, "long-context.gguf")  # the shipped vocabulary, 2048 positions
            subprocess.run([CLI, "make-model", "-o", long, "--vocab", SHIPPED, "--ctx", "2048"], check=True,
                           stdout=subprocess.DEVNULL)
            srv = Server("-md", SHIPPED, "--draft-p-min", "0", model=long, ctx=1024)
            try:
                status, _, body = srv.request("POST", "/v1/completions", {"prompt": "It is a truth", "max_tokens": 8})
                self.assertEqual(status, 200, body)
            finally:
                self.assertEqual(srv.stop(), 0, srv.output())

    def test_bad_flags(self):
        r = subprocess.run([CLI, "serve", "-m", MODEL, "--port", "70000"], stderr=subprocess.PIPE, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([CLI, "serve", "--port", "1"], stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "BITNET_MODEL": "/nonexistent/model.gguf"})  # no -m: this one
        self.assertEqual(r.returncode, 2)
        self.assertIn("BITNET_MODEL=/nonexistent/model.gguf", r.stderr)
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = subprocess.run([CLI, "serve", "-m", MODEL, "-c", "64", "--port", str(busy.getsockname()[1])],
                           stderr=subprocess.PIPE, text=True, timeout=120)
        busy.close()
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen", r.stderr)


if __name__ == "__main__":
    if not os.path.exists(MODEL):
        print(f"SKIP: fixture {MODEL} not found (set BITNET_FIXTURES)")
        sys.exit(77)
    unittest.main(verbosity=2)
