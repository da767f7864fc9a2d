"""bitnet_gpu.BatchEngine on tiny-a: many generations at once give what an
Engine gives each alone (greedy and seeded, tokens and text), from many
threads; streams, stop strings, cancellation (the slot is free at once), the
prompt cache, errors, JSON Schema replies, and the OpenAI routes over it."""
import json
import threading

import pytest

from bitnet_gpu import BatchEngine, BitnetError, Engine, Piece
from bitnet_gpu.openai_api import ApiError, OpenAIServer

PROMPTS = ["2+2=", "The capital of France is", "Once upon a time", "def fib(n):", "Hi", "A"]
SAMPLED = dict(temperature=0.9, top_k=20, top_p=0.9, min_p=0.02, seed=11)


@pytest.fixture(scope="module")
def engine(model_path):
    with Engine(model_path, threads=1) as e:
        yield e


@pytest.fixture(scope="module")
def batch(model_path):
    with BatchEngine(model_path, slots=3, threads=2) as b:
        yield b


def test_describes_itself(batch, engine):
    assert batch.slots == 3 and batch.n_ctx == engine.n_ctx and batch.backend == "cpu"
    assert batch.info == engine.info and batch.add_bos
    assert batch.tokenize("Hello") == engine.tokenize("Hello")


def test_many_threads_same_as_alone(batch, engine):
    """12 requests from 12 threads through 3 slots: each equals Engine's alone."""
    kinds = [dict(greedy=True), SAMPLED]
    want = {(p, k): engine.generate(p, max_tokens=12, **kinds[k]) for p in PROMPTS for k in range(2)}
    got, errors = {}, []

    def client(p, k):
        try:
            got[(p, k)] = batch.generate(p, max_tokens=12, **kinds[k])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=key) for key in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    for key, w in want.items():
        g = got[key]
        assert (g.ids, g.text, g.finish_reason, g.prompt_ids) == (w.ids, w.text, w.finish_reason, w.prompt_ids), key
        assert g.timings.prompt_tokens + g.timings.cached_tokens == len(g.prompt_ids)
        assert g.timings.generated_tokens == w.timings.generated_tokens


def drafted_same_as_alone(engine, b):
    """Requests to b from several threads, greedy, sampled and with logprobs, each equal to
    Engine's alone without drafts; b's lookup_stats()."""
    prompts = ["one two three four, one two three four, one two three", "a b c a b c a b", *PROMPTS[:2]]
    kinds = [dict(greedy=True), SAMPLED, dict(greedy=True, logprobs=True, top_logprobs=2)]
    want = {(p, k): engine.generate(p, max_tokens=40, **kinds[k]) for p in prompts for k in range(3)}
    got, errors = {}, []

    def one(p, k):
        try:
            got[(p, k)] = b.generate(p, max_tokens=40, **kinds[k])
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=one, args=key) for key in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for key, w in want.items():
        assert (got[key].ids, got[key].text, got[key].logprobs) == (w.ids, w.text, w.logprobs), key
    return b.lookup_stats()


def test_lookup_same_as_alone(model_path, engine):
    """BatchEngine(lookup=8): Engine's tokens; on texts that repeat themselves, drafts are taken."""
    with BatchEngine(model_path, slots=3, threads=2, lookup=8) as b:
        drafted, accepted, passes = drafted_same_as_alone(engine, b)
    assert 0 < accepted < drafted and passes > 0
    with pytest.raises(BitnetError, match="lookup drafts 0..32 tokens"):
        BatchEngine(model_path, slots=1, lookup=40)


def test_draft_model_same_as_alone(model_path, engine):
    """BatchEngine(draft_model=...): the model drafting for itself gives Engine's tokens, most
    drafts taken; lookup beside it is refused."""
    with BatchEngine(model_path, slots=3, threads=2, draft_model=model_path, draft=8, draft_p_min=0) as b:
        drafted, accepted, passes = drafted_same_as_alone(engine, b)
    assert drafted / 2 < accepted <= drafted and passes > 0
    with pytest.raises(ValueError, match="choose one"):
        BatchEngine(model_path, slots=1, lookup=4, draft_model=model_path)
    with pytest.raises(BitnetError, match="p_min must be in 0..1"):
        BatchEngine(model_path, slots=1, draft_model=model_path, draft_p_min=2)


def test_regex_and_choices(batch, engine):
    """regex= and choices= through the batch: Engine's tokens, greedy and seeded."""
    kinds = [dict(greedy=True, regex=r" [0-9]{1,3} (apples|pears)\."), dict(SAMPLED, choices=["yes", "no"]),
             dict(greedy=True, logprobs=True, choices=["perhaps", "no"])]
    want = [engine.generate(p, max_tokens=40, **k) for p in PROMPTS[:3] for k in kinds]
    got = [batch.generate(p, max_tokens=40, **k) for p in PROMPTS[:3] for k in kinds]
    assert [(g.ids, g.text, g.finish_reason) for g in got] == [(w.ids, w.text, w.finish_reason) for w in want]


def test_failing_draft_model(model_path, engine, broken_model):
    """A draft model whose passes fail stops drafting; the requests get Engine's tokens, draft_note
    says why, and a RuntimeWarning says it once."""
    want = [engine.generate(p, max_tokens=12, greedy=True).ids for p in PROMPTS]
    with pytest.warns(RuntimeWarning, match="the draft model failed"):
        with BatchEngine(model_path, slots=3, threads=2, draft_model=broken_model, draft=4, draft_p_min=0) as b:
            got = [b.generate(p, max_tokens=12, greedy=True).ids for p in PROMPTS]
            note = b.draft_note
    assert got == want and "NaN or an infinity" in note


def test_penalties_and_logit_bias(batch, engine):
    """The penalties and logit biases reach a batch's slots as an Engine's session: the same
    tokens, several requests at once (each keeps its own biases)."""
    kinds = [dict(greedy=True, frequency_penalty=-1.5, presence_penalty=-2),
             dict(greedy=True, logit_bias={1820: 100}), dict(SAMPLED, logit_bias={13: -100, 220: 3.5})]
    want = [engine.generate("Once upon a time", max_tokens=16, **k).ids for k in kinds]
    assert want[1] == [1820] * 16
    got = [None] * len(kinds)

    def run(i):
        got[i] = batch.generate("Once upon a time", max_tokens=16, **kinds[i]).ids
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(kinds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want


def test_stream_stop_and_chat(batch, engine):
    whole = batch.generate("2+2=", max_tokens=16, greedy=True)
    stream = batch.generate("2+2=", max_tokens=16, greedy=True, stream=True)
    pieces = list(stream)
    assert all(isinstance(p, Piece) for p in pieces)
    assert "".join(p.text for p in pieces) == whole.text and [p.id for p in pieces if p.id >= 0] == whole.ids
    assert stream.result.text == whole.text
    stopped = batch.generate("2+2=", max_tokens=16, greedy=True, stop=["H Resp"])
    want = engine.generate("2+2=", max_tokens=16, greedy=True, stop=["H Resp"])
    assert (stopped.text, stopped.finish_reason) == (want.text, "stop")
    msgs = [{"role": "user", "content": "Why is the sky blue?"}]
    assert batch.chat(msgs, max_tokens=8, greedy=True).ids == engine.chat(msgs, max_tokens=8, greedy=True).ids


def test_cancel_frees_the_slot(batch):
    streams = [batch.generate(p, max_tokens=None, greedy=True, stream=True) for p in PROMPTS[:3]]
    for s in streams:
        next(s)  # each has its slot and a first token
        s.close()
        assert s.result.finish_reason == "cancelled"
    # The three slots are free again: three more run to their end.
    done = [batch.generate(p, max_tokens=4, greedy=True) for p in PROMPTS[3:]]
    assert [d.finish_reason for d in done] == ["length"] * 3


def test_prompt_cache(batch, engine):
    first = batch.generate("Once upon a time, in a land far away", max_tokens=6, greedy=True, cache_prompt=False)
    again = batch.generate("Once upon a time, in a land far away", max_tokens=6, greedy=True)
    assert first.timings.cached_tokens == 0 and again.timings.cached_tokens == len(again.prompt_ids) - 1
    assert again.ids == first.ids == engine.generate("Once upon a time, in a land far away", max_tokens=6,
                                                     greedy=True, cache_prompt=False).ids


def test_one_prompt_fed_once(batch, engine):
    """Requests of one prompt at once (an OpenAI request's n choices): the first feeds it, the
    others wait until it has begun generating and copy its K/V (all of it but the last token),
    and each makes what an Engine makes of it alone."""
    prompt = "A prompt that no other test sends, long enough to be worth feeding once"
    with batch._cond:  # all three queued before the scheduler admits one, as an n-choice request's are
        streams = [batch.generate(prompt, max_tokens=5, stream=True, **{**SAMPLED, "seed": seed})
                   for seed in (1, 2, 3)]
    results = []
    for s in streams:
        for _ in s:
            pass
        results.append(s.result)
    n = len(results[0].prompt_ids)
    assert results[0].timings.cached_tokens < n - 1  # at most a start other tests' prompts share
    assert [r.timings.cached_tokens for r in results[1:]] == [n - 1, n - 1]
    for r, seed in zip(results, (1, 2, 3)):
        assert r.ids == engine.generate(prompt, max_tokens=5, cache_prompt=False, **{**SAMPLED, "seed": seed}).ids


def test_bad_arguments_leave_it_working(batch, engine):
    """What Engine refuses or ignores: raised in the caller, never in the scheduler thread."""
    with pytest.raises(TypeError):
        batch.generate([1, 2.5], max_tokens=2)
    got = batch.generate("2+2=", max_tokens=6, greedy=True, stop=["\ud800"])  # can never match
    assert got.ids == engine.generate("2+2=", max_tokens=6, greedy=True, stop=["\ud800"]).ids
    for stream in (False, True):
        r = batch.generate("2+2=", max_tokens=0, stream=stream)
        if stream:
            assert list(r) == []
            r = r.result
        assert (r.ids, r.finish_reason) == ([], "length")
    assert batch.generate("2+2=", max_tokens=3, greedy=True).timings.generated_tokens == 3


def test_close_from_two_threads(model_path):
    b = BatchEngine(model_path, slots=2, threads=1)
    streams = [b.generate(p, max_tokens=None, greedy=True, stream=True) for p in PROMPTS]
    threads = [threading.Thread(target=b.close) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in streams:
        s.close()
        assert s.result.finish_reason == "cancelled"


def test_errors(batch, model_path):
    with pytest.raises(BitnetError, match="does not fit"):
        batch.generate(list(range(1, batch.n_ctx + 2)), max_tokens=1)
    with pytest.raises(BitnetError, match="top-p"):
        batch.generate("x", top_p=2)
    b = BatchEngine(model_path, slots=1, threads=1)
    b.close()
    with pytest.raises(BitnetError, match="closed"):
        b.generate("x")
    with pytest.raises(BitnetError):
        BatchEngine(model_path, slots=1, backend="no-such-backend")


def test_openai_routes_over_a_batch(batch, engine):
    body = {"model": "m", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
    want = OpenAIServer(engine, "m").start(body, chat=False).response()
    got = OpenAIServer(batch, "m").start(body, chat=False).response()
    assert got["choices"] == want["choices"]
    assert got["usage"]["completion_tokens"] == want["usage"]["completion_tokens"]


PET = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                        "kind": {"enum": ["cat", "dog"]}}, "required": ["age", "kind"]}


def test_json_schema(batch, engine):
    """json_schema: a reply that ends by itself satisfies the schema (judged by
    jsonschema), streamed or not, and is an Engine's alone; True asks for one
    JSON object; a schema the library cannot follow raises at once."""
    jsonschema = pytest.importorskip("jsonschema")
    ended = 0
    for seed in range(6):
        r = batch.chat([{"role": "user", "content": "A pet?"}], max_tokens=60, json_schema=PET,
                       temperature=1.0, seed=seed)
        alone = engine.chat([{"role": "user", "content": "A pet?"}], max_tokens=60, json_schema=PET,
                            temperature=1.0, seed=seed)
        assert (r.ids, r.text, r.finish_reason) == (alone.ids, alone.text, alone.finish_reason)
        if r.finish_reason == "eog":
            jsonschema.validate(json.loads(r.text), PET)
            ended += 1
    assert ended >= 3
    s = batch.generate("A pet:", max_tokens=60, json_schema=json.dumps(PET), temperature=0, stream=True)
    text = "".join(p.text for p in s)
    assert text == s.result.text
    if s.result.finish_reason == "eog":
        jsonschema.validate(json.loads(text), PET)
    r = batch.generate("{", max_tokens=40, json_schema=True, temperature=1.0, seed=3)
    if r.finish_reason == "eog":
        assert isinstance(json.loads(r.text), dict)
    with pytest.raises(BitnetError, match="'pattern' cannot be followed"):
        batch.generate("x", json_schema={"type": "string", "pattern": "a(?=b)"})
    with pytest.raises(BitnetError, match="'format' is not supported"):
        engine.generate("x", json_schema={"format": "email"})
    assert engine.generate("x", max_tokens=4, temperature=0).text == batch.generate("x", max_tokens=4,
                                                                                      temperature=0).text


def test_openai_response_format_over_a_batch(batch, engine):
    jsonschema = pytest.importorskip("jsonschema")
    fmt = {"type": "json_schema", "json_schema": {"name": "pet", "schema": PET}}
    body = {"model": "m", "messages": [{"role": "user", "content": "A pet?"}], "max_tokens": 60, "temperature": 0,
            "response_format": fmt}
    got = OpenAIServer(batch, "m").start(body, chat=True).response()
    if got["choices"][0]["finish_reason"] == "stop":
        jsonschema.validate(json.loads(got["choices"][0]["message"]["content"]), PET)
    want = OpenAIServer(engine, "m").start(body, chat=True).response()
    assert got["choices"] == want["choices"]
    for server, bad, says in ((OpenAIServer(batch, "m"), {"type": "json_schema", "json_schema": {
                                  "name": "x", "schema": {"format": "email"}}}, "'format' is not supported"),
                              (OpenAIServer(batch, "m"), {"type": "yaml"}, "'response_format' must be")):
        with pytest.raises(ApiError) as e:
            server.start({**body, "response_format": bad}, chat=True)
        assert e.value.status == 400 and says in e.value.body["error"]["message"]


def test_logprobs(engine, batch):
    """Engine and BatchEngine give the same Logprobs, streamed or not, without changing a token;
    the likeliest alternative first, and a greedy token's is the first alternative's. (The
    values themselves: test_batch's logprobs tests, against fresh sessions' rows.)"""
    kw = dict(max_tokens=10, temperature=1.1, seed=4)
    plain = engine.generate("Once upon a time", **kw)
    assert plain.logprobs is None
    want = engine.generate("Once upon a time", logprobs=True, top_logprobs=5, **kw)
    assert want.ids == plain.ids and [lp.id for lp in want.logprobs] == want.ids
    for lp in want.logprobs:
        assert len(lp.top) == 5 and all(a[1] >= b[1] for a, b in zip(lp.top, lp.top[1:]))
        assert lp.logprob <= lp.top[0][1] <= 0 and (lp.id not in dict(lp.top) or dict(lp.top)[lp.id] == lp.logprob)
    for e in (engine, batch):
        assert e.generate("Once upon a time", top_logprobs=5, **kw).logprobs == want.logprobs
        pieces = list(e.generate("Once upon a time", logprobs=True, top_logprobs=5, stream=True, **kw))
        assert [p.logprob for p in pieces if p.id >= 0] == want.logprobs
        assert all(p.logprob is None for p in pieces if p.id < 0)
        greedy = e.chat([{"role": "user", "content": "Hi"}], 6, greedy=True, logprobs=True, top_logprobs=1)
        assert [(lp.id, lp.logprob) for lp in greedy.logprobs] == [lp.top[0] for lp in greedy.logprobs]
        assert e.generate("Hi", 3, logprobs=True).logprobs[0].top == []
        with pytest.raises(BitnetError, match="top_logprobs"):
            e.generate("Hi", 3, top_logprobs=21)
        with pytest.raises(BitnetError, match="top_logprobs"):
            e.generate("Hi", 3, top_logprobs=-1)
