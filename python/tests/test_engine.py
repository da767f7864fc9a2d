"""bitnet_gpu.Engine on tiny-a: the same tokens as the CLI, streaming equal to
non-streaming, stop strings, C errors raised with their message, the GIL
released while generating, engines and threads that do not interfere, and
deterministic freeing."""
import contextlib
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import types
import warnings

import pytest

from bitnet_gpu import BatchEngine, BitnetError, Engine, Piece, default_model_path
from bitnet_gpu.engine import SHIPPED_MODEL

from conftest import CLI

SAMPLED = dict(temperature=0.9, top_k=20, top_p=0.9, min_p=0.02, repeat_penalty=1.1, seed=7)
SAMPLED_FLAGS = ["--temp", 0.9, "--top-k", 20, "--top-p", 0.9, "--min-p", 0.02, "--repeat-penalty", 1.1, "-s", 7]


@pytest.fixture(scope="module")
def engine(model_path):
    with Engine(model_path, threads=1) as e:
        yield e


def mappings(path):
    """How many times this process maps path (the engine mmaps the model). The
    kernel lists it resolved, and the default fixture path has a ".." in it."""
    path = os.path.realpath(path)
    with open("/proc/self/maps") as f:
        return sum(line.rstrip().endswith(path) for line in f)


@contextlib.contextmanager
def no_forced_gil_switch():
    """A switch interval longer than any test: a thread runs only when the one
    holding the GIL gives it up itself (a blocking call, a foreign call)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(30)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def test_engine_describes_itself(engine):
    assert engine.info.arch == "bitnet-b1.58" and engine.info.n_layer == 2 and engine.info.n_vocab == 128256
    assert engine.backend == "cpu" and engine.n_ctx == 512 and engine.add_bos
    assert engine.backend_note.startswith("auto: ")
    assert engine.load_ms > 0


def test_greedy_equals_cli(engine, cli, golden):
    for case in golden:
        want = cli("-p", case["prompt"], "-n", 16, "--greedy")
        got = engine.generate(case["prompt"], max_tokens=16, greedy=True)
        assert got.prompt_ids == want["prompt_ids"] == case["prompt_ids"]
        assert got.ids == want["generated_ids"]
        assert got.text == want["text"]
        assert got.finish_reason == want["stop"] == "length"
        assert got.timings.prompt_tokens + got.timings.cached_tokens == len(got.prompt_ids)
        assert got.timings.generated_tokens == 16


def test_sampling_equals_cli(engine, cli):
    want = cli("-p", "The capital of France is", "-n", 24, *SAMPLED_FLAGS)
    got = engine.generate("The capital of France is", max_tokens=24, **SAMPLED)
    assert (got.ids, got.text) == (want["generated_ids"], want["text"])
    # The library's defaults (temperature 0.8, seed 42, ...) are the CLI's.
    assert engine.generate("Hi", max_tokens=12).ids == cli("-p", "Hi", "-n", 12)["generated_ids"]


def test_penalties_and_logit_bias(engine, cli):
    """frequency_penalty and presence_penalty are the CLI's flags; a logit_bias dict
    reaches the sampler (+100 forces its token, -inf bans one), and bad ones are refused."""
    want = cli("-p", "Once upon a time", "-n", 12, "--greedy", "--frequency-penalty", -1.5, "--presence-penalty", -2)
    got = engine.generate("Once upon a time", max_tokens=12, greedy=True, frequency_penalty=-1.5,
                          presence_penalty=-2)
    assert got.ids == want["generated_ids"]
    assert got.ids != engine.generate("Once upon a time", max_tokens=12, greedy=True).ids
    assert engine.generate("2+2=", max_tokens=3, greedy=True, logit_bias={1820: 100}).ids == [1820] * 3
    first = engine.generate("2+2=", max_tokens=1, greedy=True).ids[0]
    assert engine.generate("2+2=", max_tokens=1, greedy=True, logit_bias={first: float("-inf")}).ids[0] != first
    for bad in ({-1: 1.0}, {engine.info.n_vocab: 1.0}, {5: "x"}, [(5, 1.0)]):
        with pytest.raises(BitnetError, match="logit_bias"):
            engine.generate("2+2=", max_tokens=1, logit_bias=bad)
    with pytest.raises(BitnetError, match="logit bias of token 5"):
        engine.generate("2+2=", max_tokens=1, logit_bias={5: float("nan")})


def test_lookup_gives_the_same_tokens(engine, model_path, cli):
    """Engine(lookup=N) is `generate --lookup N`: the tokens of one step at a time
    (greedy, sampled, with logprobs, streamed), with drafts taken and refused on a
    text that repeats itself; N out of 0..32 is refused."""
    prompt = "one two three four, one two three four, one two three"
    with Engine(model_path, threads=1, lookup=8) as e:
        for kw in (dict(greedy=True), SAMPLED, dict(greedy=True, logprobs=True, top_logprobs=3)):
            want, got = engine.generate(prompt, max_tokens=48, **kw), e.generate(prompt, max_tokens=48, **kw)
            assert (got.ids, got.text, got.logprobs) == (want.ids, want.text, want.logprobs)
            assert want.timings.lookup_passes == 0
        got = e.generate(prompt, max_tokens=48, greedy=True)
        t = got.timings
        assert 0 < t.lookup_accepted < t.lookup_drafted and 0 < t.lookup_passes < t.generated_tokens
        streamed = [p.id for p in e.generate(prompt, max_tokens=48, greedy=True, stream=True) if p.id >= 0]
        assert streamed == got.ids
        want = cli("-p", prompt, "-n", 48, "--greedy", "--lookup", 8)
        assert got.ids == want["generated_ids"]
        assert (t.lookup_drafted, t.lookup_accepted, t.lookup_passes) == tuple(
            want["timings"][k] for k in ("lookup_drafted", "lookup_accepted", "lookup_passes"))
    for bad in (-1, 33):
        with pytest.raises(BitnetError, match="lookup drafts 0..32 tokens"):
            Engine(model_path, threads=1, lookup=bad)


def test_draft_model_gives_the_same_tokens(engine, model_path, cli, tmp_path):
    """Engine(draft_model=...) is `generate -md FILE`: the tokens of the model alone
    (greedy, sampled, with logprobs); the model drafting for itself has every
    greedy draft taken up to the reply's end; another vocabulary, or lookup
    beside it, is refused."""
    prompt = "It is a truth universally acknowledged"
    with Engine(model_path, threads=1, draft_model=model_path, draft=8, draft_p_min=0) as e:
        for kw in (dict(greedy=True), SAMPLED, dict(greedy=True, logprobs=True, top_logprobs=3)):
            want, got = engine.generate(prompt, max_tokens=40, **kw), e.generate(prompt, max_tokens=40, **kw)
            assert (got.ids, got.text, got.logprobs) == (want.ids, want.text, want.logprobs)
            assert got.timings.lookup_drafted > 0
        t = e.generate(prompt, max_tokens=40, greedy=True).timings
        # every draft taken, but for those past the end of the reply (it ends its turn here)
        assert 0 < t.lookup_accepted <= t.lookup_drafted and t.lookup_passes + t.lookup_accepted + 1 == t.generated_tokens
        want = cli("-p", prompt, "-n", 40, "--greedy", "-md", model_path, "--draft-max", 8, "--draft-p-min", 0)
        assert (t.lookup_drafted, t.lookup_accepted, t.lookup_passes) == tuple(
            want["timings"][k] for k in ("lookup_drafted", "lookup_accepted", "lookup_passes"))
    other = tmp_path / "builtin-vocab.gguf"
    subprocess.run([CLI, "make-model", "-o", str(other)], check=True,
                   stdout=subprocess.DEVNULL)
    with pytest.raises(BitnetError, match="vocabularies differ"):
        Engine(model_path, threads=1, draft_model=other)
    with pytest.raises(ValueError, match="choose one"):
        Engine(model_path, threads=1, lookup=4, draft_model=model_path)


def test_regex_and_choices(engine, cli):
    """regex= and choices= hold the reply whole, as `generate --regex` does (the same greedy
    tokens); sampled replies match too and end by themselves; one format at a time; a bad
    expression raises BitnetError naming its offset."""
    import re
    number = r" [0-9]{1,3} (apples|pears)\."
    r = engine.generate("She bought", max_tokens=40, greedy=True, regex=number)
    assert re.fullmatch(number, r.text) and r.finish_reason == "eog", r.text
    want = cli("-p", "She bought", "-n", 40, "--greedy", "--regex", number)
    assert (r.ids, r.finish_reason) == (want["generated_ids"], want["stop"])
    for seed in range(4):
        for kw in (dict(regex=number), dict(choices=["yes", "no", "a (small) cat"])):
            got = engine.generate("Well", max_tokens=40, temperature=1.3, seed=seed, **kw)
            ok = re.fullmatch(number, got.text) if "regex" in kw else got.text in kw["choices"]
            assert ok and got.finish_reason == "eog", got.text
    pieces = list(engine.generate("Well", max_tokens=40, greedy=True, choices=["yes", "no"], stream=True))
    assert "".join(p.text for p in pieces) in ("yes", "no")
    assert engine.generate("Well", max_tokens=8, greedy=True).text not in ("yes", "no")  # lifted after
    with pytest.raises(BitnetError, match="at offset 1"):
        engine.generate("x", regex="a(?=b)")
    with pytest.raises(ValueError, match="give one"):
        engine.generate("x", regex="a", json_schema=True)
    with pytest.raises(ValueError, match="one or more strings"):
        engine.generate("x", choices=[])


def test_failing_draft_model(engine, model_path, broken_model):
    """A draft model whose passes fail (logits that are not finite) costs its drafts, not the
    generation: the tokens of the model alone, draft_note says why, a RuntimeWarning says it once."""
    prompt = "It is a truth universally acknowledged"
    want = engine.generate(prompt, max_tokens=24, greedy=True)
    with Engine(model_path, threads=1, draft_model=broken_model, draft=4, draft_p_min=0) as e:
        assert e.draft_note is None
        with pytest.warns(RuntimeWarning, match="the draft model failed"):
            got = e.generate(prompt, max_tokens=24, greedy=True)
        assert got.ids == want.ids and got.timings.lookup_drafted == 0
        assert "NaN or an infinity" in e.draft_note
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once
            assert e.generate(prompt, max_tokens=24, greedy=True).ids == want.ids
    with Engine(broken_model, threads=1) as e, pytest.raises(BitnetError, match="NaN or an infinity"):
        e.generate(prompt, max_tokens=4, greedy=True)


def test_default_model(model_path, tmp_path, monkeypatch):
    """With no model_path: $BITNET_MODEL, else ./models/ggml-model-i2_s.gguf, else the model the
    package ships (pip installed it beside the library), which runs as the CLI runs it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BITNET_MODEL", raising=False)
    assert default_model_path() == SHIPPED_MODEL and os.path.isfile(SHIPPED_MODEL)
    with Engine(threads=1) as e:
        assert e.model_path == SHIPPED_MODEL and e.info.n_vocab == 4096
        got = e.generate("It is a truth", max_tokens=8, greedy=True).ids
    if CLI and os.access(CLI, os.X_OK):
        r = subprocess.run([CLI, "generate", "-m", SHIPPED_MODEL, "-p", "It is a truth", "-n", "8", "--greedy",
                            "-t", "1", "--no-cpu-start", "--json"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert got == json.loads(r.stdout)["generated_ids"]
    (tmp_path / "models").mkdir()
    os.symlink(model_path, tmp_path / "models" / "ggml-model-i2_s.gguf")
    assert default_model_path() == os.path.join("models", "ggml-model-i2_s.gguf")
    with BatchEngine(slots=1, threads=1) as b:
        assert b.info.n_vocab == 128256  # tiny-a, through the link
    monkeypatch.setenv("BITNET_MODEL", str(tmp_path / "none.gguf"))
    with pytest.raises(BitnetError, match="BITNET_MODEL=.*none.gguf is not a file"):
        Engine()


def test_chat_template(model_path, cli):
    """chat_template overrides the model file's chat format, as the CLI's --chat-template."""
    want = cli("--chat", "--chat-template", "llama3", "-p", "Why?", "-n", 1, "--greedy")["prompt_ids"]
    with Engine(model_path, threads=1, chat_template="llama3") as e:
        assert e.chat_template == "llama3"
        assert e.chat_prompt([{"role": "user", "content": "Why?"}]) == want
    with Engine(model_path, threads=1) as e:
        assert e.chat_template == "bitnet" and e.chat_prompt([{"role": "user", "content": "Why?"}]) != want
    with pytest.raises(BitnetError, match="chat template 'chatml'"):
        Engine(model_path, threads=1, chat_template="chatml")


def test_chat_equals_cli(engine, cli):
    want = cli("--chat", "--system", "You are terse.", "-p", "Why is the sky blue?", "-n", 12, "--greedy")
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Why is the sky blue?"}]
    got = engine.chat(messages, max_tokens=12, greedy=True)
    assert got.prompt_ids == want["prompt_ids"] == engine.chat_prompt(messages)
    assert (got.ids, got.text) == (want["generated_ids"], want["text"])


def test_chat_reads_messages_as_the_server(engine, cli):
    # OpenAI's text parts and "developer" role, as `bitnet-gpu serve` reads them.
    want = cli("--chat", "--system", "You are terse.", "-p", "Why is the sky blue?", "-n", 6, "--greedy")
    messages = [{"role": "developer", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "Why is the sky "},
                                             {"type": "text", "text": "blue?"}]}]
    got = engine.chat(messages, max_tokens=6, greedy=True)
    assert got.prompt_ids == want["prompt_ids"] == engine.chat_prompt(messages)
    assert got.ids == want["generated_ids"]
    assert engine.chat_prompt([types.MappingProxyType(m) for m in messages]) == got.prompt_ids  # any Mapping
    for bad, said in [([{"role": "user", "content": 7}], "text parts"), ([], "non-empty array"),
                      ([{"role": "narrator", "content": "x"}], "narrator"),
                      ([{"role": "user", "content": b"x"}], "not JSON"),
                      ([{"role": "user", "content": "a\udc80"}], "not valid Unicode"),
                      ([{"role": "user", "content": "a\0b"}], "NUL")]:
        with pytest.raises(BitnetError, match=said):
            engine.chat(bad, max_tokens=1)


@pytest.mark.parametrize(
    "kw",
    [dict(greedy=True), SAMPLED, dict(greedy=True, stop=["H Resp", "never"]), dict(greedy=True, stop="Spiele")],
    ids=["greedy", "sampled", "stop-across-tokens", "stop"],
)
def test_stream_equals_completion(engine, kw):
    whole = engine.generate("2+2=", max_tokens=16, **kw)
    stream = engine.generate("2+2=", max_tokens=16, stream=True, **kw)
    pieces = list(stream)
    assert all(isinstance(p, Piece) for p in pieces)
    assert "".join(p.text for p in pieces) == whole.text
    assert [p.id for p in pieces if p.id >= 0] == whole.ids
    assert stream.result == whole.__class__(whole.text, whole.ids, whole.prompt_ids, whole.finish_reason,
                                            stream.result.timings)
    stops = kw.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        assert all(stop not in p.text for p in pieces)


def test_stop_strings(engine):
    full = engine.generate("2+2=", max_tokens=16, greedy=True)
    assert full.text.startswith(" Go:H Responsibility Spiele")
    # A stop string made of two tokens' texts (":H" + " Responsibility"): the text
    # ends before it, and the stream held the "H" of ":H" back until the next
    # token showed it was the stop string's start.
    r = engine.generate("2+2=", max_tokens=16, greedy=True, stop=["H Resp"])
    assert (r.text, r.finish_reason, r.ids) == (" Go:", "stop", full.ids[:3])
    pieces = list(engine.generate("2+2=", max_tokens=16, greedy=True, stop="H Resp", stream=True))
    assert pieces == [Piece(" Go", full.ids[0]), Piece(":", full.ids[1]), Piece("", full.ids[2])]
    r = engine.generate("2+2=", max_tokens=16, greedy=True, stop=["no such text", ""])
    assert (r.text, r.finish_reason) == (full.text, "length")


def test_prompt_cache(engine):
    """A conversation's next turn feeds only what the engine has not seen: the same
    reply as from an empty context (bit for bit on the CPU), the earlier turn's
    prompt counted as cached; cache_prompt=False feeds it all."""
    turn = [{"role": "user", "content": "Write a story about a fox."}]
    first = engine.chat(turn, max_tokens=8, greedy=True, cache_prompt=False)
    assert first.timings.cached_tokens == 0 and first.timings.prompt_tokens == len(first.prompt_ids)
    turn += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "Shorter."}]
    cached = engine.chat(turn, max_tokens=8, greedy=True)
    fresh = engine.chat(turn, max_tokens=8, greedy=True, cache_prompt=False)
    # What the first call fed (its last token is sampled, not fed) and the new
    # prompt have in common (the reply's first word may merge with the header's
    # space when the turn is rendered again).
    fed, common = first.prompt_ids + first.ids[:-1], 0
    while common < min(len(fed), len(cached.prompt_ids) - 1) and fed[common] == cached.prompt_ids[common]:
        common += 1
    assert cached.timings.cached_tokens == common > len(first.prompt_ids) // 2
    assert cached.timings.prompt_tokens == len(cached.prompt_ids) - cached.timings.cached_tokens
    assert (cached.ids, cached.text) == (fresh.ids, fresh.text) and fresh.timings.cached_tokens == 0
    # The same prompt again: all of it but its last token.
    again = engine.chat(turn, max_tokens=8, greedy=True)
    assert again.timings.cached_tokens == len(again.prompt_ids) - 1 and again.ids == fresh.ids
    # A prompt longer than the context: the error names its whole length.
    with pytest.raises(BitnetError, match=f"prompt of {engine.n_ctx + 1} tokens"):
        engine.generate(again.prompt_ids + [1] * (engine.n_ctx + 1 - len(again.prompt_ids)), max_tokens=1)


def test_tokens(engine, golden):
    for case in golden:
        assert engine.tokenize(case["prompt"]) == case["prompt_ids"]
        assert engine.tokenize(case["prompt"], bos=False) == case["prompt_ids"][1:]
        assert engine.detokenize(case["prompt_ids"]) == "<|begin_of_text|>" + case["prompt"]
    assert engine.tokenize("<|eot_id|>", bos=False, special=True) == [128009]
    assert len(engine.tokenize("<|eot_id|>", bos=False)) > 1  # plain text unless special


def test_cpu_start_moves_and_keeps_the_tokens(model_path, golden):
    """cpu_start onto the reference backend, starting on the scalar CPU kernels (which compute its
    arithmetic bit for bit): ready on the CPU at once, the same tokens as on the reference alone
    wherever the move came, and on the reference after wait_backend()."""
    case = golden[0]
    with Engine(model_path, backend="reference", threads=1) as ref:
        want = ref.generate(case["prompt"], max_tokens=8, greedy=True).ids
    with Engine(model_path, backend="reference", threads=1, cpu_kernels="scalar", cpu_start=True) as e:
        assert e.backend == "cpu" and "starting here while reference opens" in e.backend_note
        assert e.generate(case["prompt"], max_tokens=8, greedy=True).ids == want
        e.wait_backend()
        assert e.backend == "reference" and "moved after" in e.backend_note and e.cpu_kernels is None
        assert e.generate(case["prompt"], max_tokens=8, greedy=True).ids == want
        e.wait_backend()  # nothing left to wait for


def test_max_tokens_none_runs_to_the_context(model_path):
    with Engine(model_path, threads=1, n_ctx=24) as e:
        r = e.generate("2+2=", max_tokens=None, greedy=True)
        assert r.finish_reason == "context" and len(r.prompt_ids) + len(r.ids) == 25


def test_c_errors_are_raised_with_their_message(engine, model_path, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    cases = [
        (lambda: Engine("/no/such/model.gguf"), "cannot open '/no/such/model.gguf': No such file or directory"),
        (lambda: Engine(junk), "junk.gguf"),
        (lambda: Engine(model_path, backend="tpu"), "unknown backend 'tpu' (use auto, cpu, cuda or reference)"),
        (lambda: Engine(model_path, n_ctx=100000), "context 100000 is outside 1..512"),
        (lambda: engine.generate("x", top_p=2), "top-p must be in (0, 1] (got 2)"),
        (lambda: engine.generate("x", temperature=-1), "temperature must be >= 0 (got -1)"),
        (lambda: engine.generate("x", top_k=-3), "top-k must be >= 0 (got -3)"),
        (lambda: engine.generate([1, 128256]), "token id 128256 is outside the vocabulary (0..128255)"),
        (lambda: engine.generate("word " * 600), "does not fit in the context (512 tokens, 0 used)"),
        (lambda: engine.generate([]), "nothing to generate from: the prompt is empty"),
        (lambda: engine.chat([{"role": "robot", "content": "hi"}]), 'chat: unknown role "robot"'),
        (lambda: engine.detokenize([5, -1]), "-1"),
    ]
    for call, message in cases:
        with pytest.raises(BitnetError) as e:
            call()
        assert message in str(e.value)
    # The engine still works after all that.
    assert engine.generate("2+2=", max_tokens=2, greedy=True).ids == [6122, 95292]


def test_generation_releases_the_gil(engine):
    # A ticker that keeps ticking during a generation shows the C call runs
    # without the GIL (held, as with ctypes.PyDLL, the ticker stops: checked).
    ticks, done = [], threading.Event()
    result = []
    with no_forced_gil_switch():
        worker = threading.Thread(target=lambda: (result.append(engine.generate("2+2=", max_tokens=300)), done.set()))
        worker.start()
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)
        worker.join()
    assert len(result[0].ids) == 300
    assert len(ticks) >= 20, f"the main thread ran {len(ticks)} times during the generation"


def test_two_engines_in_two_threads_progress_together(model_path, engine):
    prompts = ["2+2=", "The capital of France is"]
    want = [engine.generate(p, max_tokens=200, **SAMPLED) for p in prompts]
    engines = [Engine(model_path, threads=1) for _ in prompts]
    times, results = [[], []], [None, None]
    start = threading.Barrier(2)

    def run(i):
        start.wait()
        stream = engines[i].generate(prompts[i], max_tokens=200, stream=True, **SAMPLED)
        for piece in stream:
            times[i].append(time.monotonic())
        results[i] = stream.result

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    with no_forced_gil_switch():  # so that only released GILs let them interleave
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for e in engines:
        e.close()
    for got, w in zip(results, want):
        assert (got.ids, got.text) == (w.ids, w.text)  # no interference
    # Together: each made tokens while the other was making its own.
    a, b = times
    assert sum(a[0] < t < a[-1] for t in b) > 20 and sum(b[0] < t < b[-1] for t in a) > 20


def test_one_engine_shared_by_threads(engine):
    prompts = ["2+2=", "Hello, world!", "The capital of France is", "Привет 日本語"]
    want = {p: engine.generate(p, max_tokens=20, **SAMPLED) for p in prompts}
    got = {}
    threads = [threading.Thread(target=lambda p=p: got.update({p: engine.generate(p, max_tokens=20, **SAMPLED)}))
               for p in prompts * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in prompts:
        assert got[p].ids == want[p].ids  # the calls took turns on the one session


def test_engines_are_freed(model_path):
    base = mappings(model_path)
    e = Engine(model_path, threads=1)
    assert mappings(model_path) > base
    e.close()
    assert mappings(model_path) == base
    e.close()  # twice is fine
    with pytest.raises(BitnetError, match="the engine is closed"):
        e.generate("x")
    with Engine(model_path, threads=1) as e:
        assert mappings(model_path) > base
    assert mappings(model_path) == base
    e = Engine(model_path, threads=1)
    del e  # garbage collection frees too
    gc.collect()
    assert mappings(model_path) == base
    with pytest.raises(BitnetError):  # the model loaded, the session failed: nothing kept
        Engine(model_path, backend="tpu")
    gc.collect()
    assert mappings(model_path) == base


def test_streams_stop_when_closed(model_path):
    base = mappings(model_path)
    e = Engine(model_path, threads=1)
    with e.generate("2+2=", max_tokens=500, stream=True) as stream:
        next(stream)
    assert stream.result.finish_reason == "cancelled" and len(stream.result.ids) < 500
    # A stream its reader drops stops too, and then the engine can go.
    stream = e.generate("2+2=", max_tokens=500, stream=True)
    next(stream)
    del stream
    assert e.generate("2+2=", max_tokens=1, greedy=True).ids == [6122]
    # Closing the engine stops a stream that another thread reads.
    stream = e.generate("2+2=", max_tokens=500, stream=True)
    reader = threading.Thread(target=lambda: list(stream))
    reader.start()
    e.close()
    reader.join()
    assert stream.result.finish_reason == "cancelled"
    assert mappings(model_path) == base


def test_structs_match_bitnet_h():
    """The ctypes structs have bitnet.h's sizes and offsets (a C compiler says)."""
    from bitnet_gpu import _native as N

    src, build = os.environ.get("BITNET_SOURCE_DIR"), os.environ.get("BITNET_BUILD_DIR")
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not (src and build and cc):
        pytest.skip("needs BITNET_SOURCE_DIR, BITNET_BUILD_DIR (set by CTest) and a C compiler")
    structs = {"bn_error": N.Error, "bn_sampling": N.Sampling, "bn_model_info": N.ModelInfo,
               "bn_session_params": N.SessionParams, "bn_timings": N.Timings, "bn_chat_message": N.ChatMsg,
               "bn_batch_params": N.BatchParams, "bn_token_logprob": N.TokenLogprob, "bn_request": N.Request,
               "bn_batch_event": N.BatchEvent, "bn_logit_bias": N.LogitBias, "bn_lookup_stats": N.LookupStats}
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "bitnet.h"', "int main(void) {"]
    want = []
    for name, py in structs.items():
        lines.append(f'printf("%zu\\n", sizeof({name}));')
        want.append(ctypes.sizeof(py))
        for field, _ in py._fields_:
            lines.append(f'printf("%zu\\n", offsetof({name}, {field}));')
            want.append(getattr(py, field).offset)
    lines.append("return 0; }")
    c, exe = os.path.join(build, "python_structs.c"), os.path.join(build, "python_structs")
    with open(c, "w") as f:
        f.write("\n".join(lines))
    subprocess.run([cc, "-I", os.path.join(src, "core"), "-I", os.path.join(build, "include"), c, "-o", exe],
                   check=True)
    assert [int(x) for x in subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()] == want



def test_readme_example(model_path, capsys):
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        readme = f.read()
    code = readme.split("<!-- python-example -->\n```python\n")[1].split("```\n<!-- /python-example -->")[0]
    exec(compile(code.replace("models/ggml-model-i2_s.gguf", model_path), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith(" Go:H Responsibility") and "error: top-p must be in (0, 1] (got 2)" in out
