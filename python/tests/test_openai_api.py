"""bitnet_gpu.openai_api without a web server: OpenAI's request and response
shapes, server-sent events and error objects, on tiny-a; tool calls beside what
`bitnet-gpu serve` answers to the same requests. (test_serve.py sends the same
kinds of requests through Ray Serve with the openai client.)"""
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import jsonschema
import pytest

from bitnet_gpu import BatchEngine, BitnetError, Engine
from bitnet_gpu.openai_api import ApiError, OpenAIServer

from conftest import CLI


@pytest.fixture(scope="module")
def api(model_path):
    with Engine(model_path, threads=1) as e:
        yield OpenAIServer(e, "tiny-a")


def events(call):
    """The data of each server-sent event, "[DONE]" last."""
    out = []
    for event in call.events():
        assert event.startswith("data: ") and event.endswith("\n\n")
        data = event[len("data: "):-2]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_models(api):
    assert api.models() == {"object": "list", "data": [
        {"id": "tiny-a", "object": "model", "created": api.created, "owned_by": "bitnet-gpu"}]}


def test_completion(api):
    want = api.engine.generate("2+2=", max_tokens=16, greedy=True)  # max_tokens: OpenAI's default
    r = api.start({"model": "tiny-a", "prompt": "2+2=", "temperature": 0}, chat=False).response()
    assert r["id"].startswith("cmpl-") and r["object"] == "text_completion" and r["model"] == "tiny-a"
    assert r["choices"] == [{"index": 0, "text": want.text, "logprobs": None, "finish_reason": "length"}]
    # The engine was just fed this prompt: all of it but its last token is cached.
    assert r["usage"] == {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21,
                          "prompt_tokens_details": {"cached_tokens": 4}}
    # The same prompt as token ids, and as a batch of one.
    for prompt in (want.prompt_ids, [want.prompt_ids], ["2+2="]):
        r2 = api.start({"model": "tiny-a", "prompt": prompt, "temperature": 0}, chat=False).response()
        assert r2["choices"][0]["text"] == want.text


def test_chat_completion_equals_cli(api, cli):
    want = cli("--chat", "--system", "Be brief.", "-p", "Hi there", "-n", 10, "--greedy")
    body = {"model": "tiny-a", "max_tokens": 10, "temperature": 0, "messages": [
        {"role": "developer", "content": "Be brief."},  # OpenAI's newer name for system
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]}
    r = api.start(body, chat=True).response()
    assert r["id"].startswith("chatcmpl-") and r["object"] == "chat.completion"
    assert r["choices"] == [{"index": 0, "message": {"role": "assistant", "content": want["text"]},
                             "logprobs": None, "finish_reason": "length"}]
    assert r["usage"]["prompt_tokens"] == len(want["prompt_ids"]) and r["usage"]["completion_tokens"] == 10


@pytest.mark.parametrize("chat", [False, True], ids=["completion", "chat"])
def test_stream_equals_response(api, chat):
    body = {"model": "tiny-a", "max_tokens": 12, "seed": 3, "top_k": 50, "min_p": 0.01, "repeat_penalty": 1.05}
    body.update({"messages": [{"role": "user", "content": "Hi"}]} if chat else {"prompt": "Hi"})
    whole = api.start(body, chat).response()
    evs = events(api.start({**body, "stream": True, "stream_options": {"include_usage": True}}, chat))
    assert evs[-1] == "[DONE]"
    chunks, usage = evs[:-2], evs[-2]
    # The second of the same prompt: all but its last token from the engine's cache.
    assert usage["choices"] == [] and usage["usage"] == {
        **whole["usage"], "prompt_tokens_details": {"cached_tokens": whole["usage"]["prompt_tokens"] - 1}}
    assert {c["id"] for c in chunks} == {usage["id"]} and len(chunks) > 3
    if chat:
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert text == whole["choices"][0]["message"]["content"]
    else:
        text = "".join(c["choices"][0]["text"] for c in chunks)
        assert text == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_penalties_and_logit_bias_as_the_c_server_answers(api, c_server):
    """OpenAI's frequency_penalty, presence_penalty and logit_bias give the C server's reply."""
    body = {"model": "tiny-a", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0,
            "frequency_penalty": -1.5, "presence_penalty": -2, "logit_bias": {"1820": 8, "13": -100}}
    ours = api.start(body, chat=False).response()["choices"][0]["text"]
    status, theirs = c_server(body, chat=False)
    assert status == 200 and ours == theirs["choices"][0]["text"]
    assert ours != api.start({**body, "frequency_penalty": 0, "presence_penalty": 0, "logit_bias": None},
                             chat=False).response()["choices"][0]["text"]


def test_cache_prompt(api):
    """The same prompt twice: the second from the engine's cache but for its last token;
    cache_prompt false (null: the default) feeds all of it; the text is the same."""
    body = {"model": "tiny-a", "prompt": "Once upon a time", "max_tokens": 6, "temperature": 0}
    first = api.start({**body, "cache_prompt": False}, chat=False).response()
    again = api.start({**body, "cache_prompt": None}, chat=False).response()
    fresh = api.start({**body, "cache_prompt": False}, chat=False).response()
    n = first["usage"]["prompt_tokens"]
    assert [r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in (first, again, fresh)] == [0, n - 1, 0]
    assert first["choices"] == again["choices"] == fresh["choices"]


def test_stop_and_finish_reasons(api):
    r = api.start({"model": "tiny-a", "prompt": "2+2=", "temperature": 0, "stop": ["H Resp"]}, chat=False).response()
    assert r["choices"][0]["text"] == " Go:" and r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("body, chat, status, param, message", [
    ({"model": "gpt-4", "prompt": "x"}, False, 404, "model", "The model 'gpt-4' does not exist"),
    ({"model": "tiny-a", "prompt": "x", "best_of": 2}, False, 400, "best_of", "'best_of' is not supported"),
    ({"model": "tiny-a", "prompt": "x", "logprobs": 21}, False, 400, "logprobs", "'logprobs' must be an integer in"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, True, 400,
     "top_logprobs", "needs \"logprobs\": true"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "logprobs": 1}, True, 400, "logprobs",
     "'logprobs' must be true or false"),
    ({"model": "tiny-a", "prompt": "x", "echo": "yes"}, False, 400, "echo", "'echo' must be true or false"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "echo": True}, True, 400, "echo",
     "'echo' is for completions"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, True,
     400, "tools", "'tools'"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}]}, True,
     400, "functions", "not supported"),
    ({"model": "tiny-a", "prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}, False,
     400, "tools", "'tools' is for chat completions"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "stop": ["}"],
      "tools": [{"type": "function", "function": {"name": "f"}}]}, True, 400, "stop", "'stop' with 'tools'"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "r", "schema": {"pattern": "a(?!b)"}}}}, True, 400,
     "response_format", "'pattern'"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x\u0000"}]}, True, 400, None, "u0000"),
    ({"model": "tiny-a", "prompt": "x", "temperature": "hot"}, False, 400, "temperature", "must be a number"),
    ({"model": "tiny-a", "prompt": "x", "top_p": 2}, False, 400, None, "top-p must be in (0, 1] (got 2)"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "min_p": 1}, True, 400, None,
     "min-p must be in [0, 1) (got 1)"),
    ({"model": "tiny-a", "prompt": "x", "max_tokens": 0}, False, 400, "max_tokens", "integer >= 1"),
    ({"model": "tiny-a", "prompt": "x", "seed": -1}, False, 400, "seed", "'seed' must be in"),
    ({"model": "tiny-a", "prompt": "x", "stop": 3}, False, 400, "stop", "'stop' must be"),
    ({"model": "tiny-a", "prompt": "x", "cache_prompt": 1}, False, 400, "cache_prompt", "must be a boolean"),
    ({"model": "tiny-a", "prompt": ["a", 5]}, False, 400, "prompt", "a list of those (a prompt each)"),
    ({"model": "tiny-a", "prompt": ["a"] * 65, "n": 2}, False, 400, "prompt", "at most 128 choices"),
    ({"model": "tiny-a", "prompt": [1, 128256]}, False, 400, "prompt", "token id 128256 is outside the vocabulary"),
    ({"model": "tiny-a", "prompt": [[-1]]}, False, 400, "prompt", "token id -1 is outside the vocabulary"),
    ({"model": "tiny-a", "prompt": "word " * 600}, False, 400, "prompt", "maximum context length is 512"),
    ({"model": "tiny-a", "messages": []}, True, 400, "messages", "non-empty array"),
    ({"model": "tiny-a", "messages": [{"role": "tool", "content": "x"}]}, True, 400, "messages",
     "'tool_call_id'"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, True, 400,
     "messages", "a string or an array of text parts"),
    ({"model": "tiny-a", "messages": [{"role": "robot", "content": "x"}]}, True, 400, "messages",
     'chat: unknown role "robot"'),
    ([1, 2], False, 400, None, "must be a JSON object"),
    ({"model": "tiny-a", "prompt": "x", "presence_penalty": 2.5}, False, 400, "presence_penalty", "[-2, 2]"),
    ({"model": "tiny-a", "prompt": "x", "frequency_penalty": "x"}, False, 400, "frequency_penalty", "a number"),
    ({"model": "tiny-a", "prompt": "x", "logit_bias": {"5": 101}}, False, 400, "logit_bias", "[-100, 100]"),
    ({"model": "tiny-a", "prompt": "x", "logit_bias": {"x": 1}}, False, 400, "logit_bias", "token ids"),
    ({"model": "tiny-a", "prompt": "x", "logit_bias": {"05": 1}}, False, 400, "logit_bias", "token ids"),
    ({"model": "tiny-a", "prompt": "x", "repeat_last_n": 2**32 + 5}, False, 400, "repeat_last_n", "[-1, 2147483647]"),
    ({"model": "tiny-a", "prompt": "x", "logit_bias": {"128256": 1}}, False, 400, None, "logit_bias: 128256"),
])
def test_errors(api, body, chat, status, param, message):
    with pytest.raises(ApiError) as e:
        api.start(body, chat)
    error = e.value.body["error"]
    assert e.value.status == status and error["param"] == param and message in error["message"]
    assert error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"


def test_a_client_that_leaves_stops_the_generation(api):
    call = api.start({"model": "tiny-a", "prompt": "2+2=", "max_tokens": 500, "stream": True, "n": 2}, chat=False)
    events = call.events()
    next(events)
    call.cancel()  # what the server does when the connection drops
    rest = list(events)
    assert rest[-1] == "data: [DONE]\n\n" and len(rest) < 100
    assert call.streams[0].result.finish_reason == "cancelled" and len(call.streams[0].result.ids) < 100
    assert len(call.streams) == 1  # the second choice never started


# ---- tools ------------------------------------------------------------------------

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}, "days": {"type": "integer"},
                                                    "above": {"type": "number", "minimum": -40, "maximum": 60}},
                   "required": ["unit"]}}}
ADD = {"type": "function", "function": {
    "name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}},
                                  "required": ["a"], "additionalProperties": False}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def chat_body(**fields):
    return {"model": "tiny-a", "messages": ASK, "max_tokens": 150, "temperature": 0, **fields}


def streamed_message(chunks):
    """The message a stream's deltas add up to (tool calls by index, as OpenAI streams them) and its finish."""
    content, calls, finish = None, {}, None
    for c in chunks[:-1]:
        if not c["choices"]:
            continue
        d = c["choices"][0]["delta"]
        if d.get("content") is not None:
            content = (content or "") + d["content"]
        for call in d.get("tool_calls", []):
            calls[call["index"]] = {k: v for k, v in call.items() if k != "index"}
        finish = c["choices"][0]["finish_reason"] or finish
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message, finish


def test_tools(api):
    """With tool_choice "required" (or a function named) and one call allowed, greedy tiny-a ends
    with one call its function's parameters accept, streamed or not; the calls and their results go
    back in as messages; "none" answers in text."""
    for choice in ("required", {"type": "function", "function": {"name": "add"}}):
        body = chat_body(tools=[WEATHER, ADD], tool_choice=choice, parallel_tool_calls=False)
        r = api.start(body, chat=True).response()
        c = r["choices"][0]
        assert c["finish_reason"] == "tool_calls" and c["message"]["content"] is None, c
        (call,) = c["message"]["tool_calls"]
        assert call["id"] == "call_" + r["id"].split("-", 1)[1] + "_0" and call["type"] == "function"
        name, args = call["function"]["name"], json.loads(call["function"]["arguments"])
        assert choice == "required" or name == "add"
        jsonschema.validate(args, {"get_weather": WEATHER, "add": ADD}[name]["function"]["parameters"])
        chunks = events(api.start({**body, "stream": True}, chat=True))
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
        message, finish = streamed_message(chunks)
        assert finish == "tool_calls"
        assert [x["function"] for x in message["tool_calls"]] == [call["function"]]
    history = ASK + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"unit": "c"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees"}]
    r = api.start(chat_body(messages=history, max_tokens=4, tools=[WEATHER], tool_choice="none"), chat=True).response()
    assert "tool_calls" not in r["choices"][0]["message"] and r["choices"][0]["finish_reason"] == "length"
    with pytest.raises(ApiError) as e:
        api.start(chat_body(tools=[WEATHER], stop=["x"]), chat=True)
    assert "'stop' with 'tools'" in e.value.body["error"]["message"]
    with pytest.raises(ApiError) as e:
        api.start(chat_body(tools=[{"type": "function", "function": {"name": "f", "strict": True,
                                                                        "parameters": {"format": "x"}}}]), chat=True)
    assert e.value.body["error"]["param"] == "tools" and "'format' is not supported" in e.value.body["error"]["message"]


@contextlib.contextmanager
def serving(model_path):
    """`bitnet-gpu serve` on a model, one slot, on a free port of 127.0.0.1: its post()."""
    if not (CLI and os.access(CLI, os.X_OK)):
        pytest.skip("the CLI is not built (set BITNET_CLI)")
    log = tempfile.NamedTemporaryFile("w+", prefix="test_openai_api.", suffix=".log", delete=False)
    proc = subprocess.Popen([CLI, "serve", "-m", model_path, "--port", "0", "-t", "1", "-c", "512",
                             "--parallel", "1"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    deadline, said = time.time() + 120, "listening on http://127.0.0.1:"
    while True:
        log.seek(0)
        text = log.read()
        if said in text:
            port = int(text.split(said)[1].split("/")[0])
            break
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the server did not start:\n{text}")
        time.sleep(0.05)

    def post(body, chat=True, path=None):
        """(status, the response's JSON), or for a stream the data of its events. path: another
        endpoint (a GET where body is None)."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        path = path or ("/v1/chat/completions" if chat else "/v1/completions")
        conn.request("GET" if body is None else "POST", path, body=None if body is None else json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read().decode()
        conn.close()
        if not (body or {}).get("stream"):
            return r.status, json.loads(data)
        chunks = [e[len("data: "):] for e in data.split("\n\n") if e]
        return r.status, [c if c == "[DONE]" else json.loads(c) for c in chunks]

    try:
        yield post
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
        os.unlink(log.name)


@pytest.fixture(scope="module")
def c_server(model_path):
    """`bitnet-gpu serve` on tiny-a (serving())."""
    with serving(model_path) as post:
        yield post


def without_ids(choice):
    """A choice with its calls' ids (made from each server's own reply id) left out."""
    message = dict(choice["message"])
    if "tool_calls" in message:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "id"} for c in message["tool_calls"]]
    return {**choice, "message": message}


@pytest.mark.parametrize("fields", [
    {"tools": [WEATHER, ADD], "tool_choice": "required"},
    {"tools": [WEATHER, ADD], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
     "parallel_tool_calls": False},
    {"tools": [WEATHER], "temperature": 1.0, "seed": 3},
    {"tools": [WEATHER], "temperature": 1.0, "seed": 5, "response_format": {
        "type": "json_schema", "json_schema": {"name": "pet", "schema": {
            "type": "object", "properties": {"kind": {"enum": ["cat", "dog"]}}, "required": ["kind"]}}}},
    {"tools": [WEATHER], "messages": ASK + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_9", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"unit": "f", "days": 2}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": [{"type": "text", "text": "54 F"}]},
        {"role": "developer", "content": "Answer in one word."}]},
], ids=["required", "named", "auto", "auto-with-response-format", "history"])
def test_tools_as_the_c_server_answers(api, c_server, fields):
    """The same request to this API and to `bitnet-gpu serve` gets the same reply: the same
    prompt, calls, arguments, content, finish_reason and usage (the library reads both)."""
    body = chat_body(**fields)
    ours = api.start(body, chat=True).response()
    status, theirs = c_server(body)
    assert status == 200, theirs
    assert without_ids(ours["choices"][0]) == without_ids(theirs["choices"][0])
    assert ours["usage"]["prompt_tokens"] == theirs["usage"]["prompt_tokens"]
    assert ours["usage"]["completion_tokens"] == theirs["usage"]["completion_tokens"]


@pytest.mark.parametrize("fields", [
    {"guided_choice": ["yes", "no", "a (small) cat"]},
    {"guided_regex": " [0-9]{1,3} (apples|pears)\\.", "temperature": 1.2, "seed": 5},
    {"structured_outputs": {"choice": ["yes", "no"]}},
    {"guided_json": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
    {"json_schema": {"enum": ["x", "y"]}},
    {"guided_regex": "a(?=b)"}, {"guided_choice": []}, {"guided_regex": "a", "guided_json": {}},
    {"grammar": "root ::= x"}, {"structured_outputs": {"grammar": "x"}},
    {"tools": [WEATHER], "guided_choice": ["a"]},
    {"guided_regex": "^yes$|^no$"}, {"guided_regex": "a)|(b"}, {"guided_choice": ["a", "b\x01"]},
    {"guided_regex": "[", "guided_choice": ["a"]}, {"guided_grammar": "x", "guided_regex": "["},
    {"structured_outputs": {"regex": "[", "grammar": "x"}},
], ids=["choice", "regex", "so-choice", "guided-json", "json-schema", "bad-regex", "no-choices", "two", "grammar",
        "so-grammar", "tools", "anchored", "unbalanced", "control", "bad-and-two", "grammar-and-bad",
        "so-bad-and-grammar"])
def test_reply_formats_as_the_c_server_answers(api, c_server, fields):
    """The other servers' reply formats (vLLM's guided_*, llama.cpp's json_schema) get the C
    server's reply: the same text and finish_reason, or a 400 with the same message."""
    body = chat_body(max_tokens=40, **fields)
    status, theirs = c_server(body)
    try:
        ours = api.start(body, chat=True).response()
    except ApiError as e:
        assert (e.status, e.body["error"]["message"]) == (status, theirs["error"]["message"])
        return
    assert status == 200, theirs
    assert ours["choices"][0]["message"]["content"] == theirs["choices"][0]["message"]["content"]
    assert ours["choices"][0]["finish_reason"] == theirs["choices"][0]["finish_reason"]


@pytest.mark.parametrize("fields", [
    {"tools": [WEATHER, ADD], "tool_choice": "required", "parallel_tool_calls": False},
    {"tools": [WEATHER, ADD], "tool_choice": {"type": "function", "function": {"name": "add"}}},
    {"tools": [WEATHER], "tool_choice": "none", "max_tokens": 8},
    {"tools": [WEATHER], "temperature": 1.0, "seed": 3},
], ids=["required", "named", "none", "auto"])
def test_chat_with_tools_in_python(api, model_path, fields):
    """Engine.chat and BatchEngine.chat with tools= reply as the OpenAI layer (and so the C server) does."""
    body = chat_body(**fields)
    want = api.start(body, chat=True).response()["choices"][0]
    kw = {k: body[k] for k in ("tools", "tool_choice", "parallel_tool_calls", "temperature", "seed") if k in body}
    with BatchEngine(model_path, slots=2, threads=1) as batch:
        for engine in (api.engine, batch):
            got = engine.chat(body["messages"], body["max_tokens"], **kw)
            assert got.finish_reason == ("tool_calls" if want["finish_reason"] == "tool_calls"
                                         else {"stop": "eog", "length": "length"}[want["finish_reason"]])
            if want["finish_reason"] == "tool_calls":
                assert got.text == "" and [c["function"] for c in got.tool_calls] == \
                    [c["function"] for c in want["message"]["tool_calls"]]
                assert all(c["id"].startswith("call_") and c["type"] == "function" for c in got.tool_calls)
            else:
                assert got.tool_calls is None and got.text == want["message"]["content"]
    with pytest.raises(BitnetError, match="stream"):
        api.engine.chat(ASK, 8, tools=[WEATHER], stream=True)
    with pytest.raises(BitnetError, match="'stop' with 'tools'"):
        api.engine.chat(ASK, 8, tools=[WEATHER], stop=["}"])


def same_json(a, b):
    """Equal JSON values, numbers within 1e-12 relative: the C server's cJSON
    prints 15 digits where they round-trip to within its epsilon, not exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12)
    return a == b


def test_cli_logprobs_as_the_c_server_gives_them(api, c_server, cli):
    """`bitnet-gpu generate --json --logprobs N` (a session) gives the logprobs the C server
    (a batch) and the Python Engine give for the same greedy completion."""
    want = cli("-p", "The capital of France is", "-n", 8, "--greedy", "--logprobs", 3)
    assert [e["id"] for e in want["logprobs"]] == want["generated_ids"]
    body = {"model": "tiny-a", "prompt": want["prompt_ids"], "max_tokens": 8, "logprobs": 3, "temperature": 0}
    status, theirs = c_server(body, False)
    assert status == 200, theirs
    lp = theirs["choices"][0]["logprobs"]
    assert same_json([e["logprob"] for e in want["logprobs"]], lp["token_logprobs"])
    assert same_json([[t["logprob"] for t in e["top_logprobs"]] for e in want["logprobs"]],
                     [list(top.values()) for top in lp["top_logprobs"]])  # likeliest first in both
    ours = api.engine.generate(want["prompt_ids"], 8, greedy=True, logprobs=True, top_logprobs=3).logprobs
    assert [x.id for x in ours] == want["generated_ids"]
    assert [[t[0] for t in x.top] for x in ours] == [[t["id"] for t in e["top_logprobs"]] for e in want["logprobs"]]
    assert same_json([[t[1] for t in x.top] for x in ours],  # cJSON prints 15 digits where they round-trip
                     [[t["logprob"] for t in e["top_logprobs"]] for e in want["logprobs"]])


def test_token_names():
    # A completion's names for tokens as tools/serve_reply.c's token_key writes them: text
    # where the bytes are whole UTF-8 characters with no NUL (bn_utf8_whole), else bytes.
    from bitnet_gpu.openai_api import _text, _token_key
    assert _token_key(" caf\u00e9".encode()) == " caf\u00e9"
    assert _token_key(b"\xe6\xbc") == "bytes:\\xe6\\xbc" and _token_key(b"\x00") == "bytes:\\x00"
    assert _text(b"a\xe6\xbc") == "a\ufffd\ufffd" and _text(b"\x00") == "\ufffd"  # a U+FFFD a byte, as bn_text_json


def streamed_pieces(chunks, chat):
    """A stream's text as its chunks carry it: each piece's chunk (neither the opening
    nor the last) has its text, "" too, in "content" or "text"; joined."""
    body = [c for c in chunks[1 if chat else 0:] if c != "[DONE]" and c["choices"]
            and c["choices"][0]["finish_reason"] is None]
    if chat:
        assert all("content" in c["choices"][0]["delta"] for c in body)
        return "".join(c["choices"][0]["delta"]["content"] for c in body)
    return "".join(c["choices"][0]["text"] for c in body)


def streamed_logprobs(chunks, chat):
    """A stream's logprobs joined into what the whole response's choice holds."""
    lps = [c["choices"][0]["logprobs"] for c in chunks if c != "[DONE]" and c["choices"]
           and c["choices"][0]["logprobs"] is not None]
    if chat:
        return {"content": [t for lp in lps for t in lp["content"]]}
    return {k: [x for lp in lps for x in lp[k]] for k in ("tokens", "token_logprobs", "top_logprobs", "text_offset")}


@pytest.mark.parametrize("body, chat", [
    (chat_body(logprobs=True, top_logprobs=3, temperature=1.0, seed=3), True),
    (chat_body(logprobs=True, max_tokens=6), True),
    (chat_body(tools=[WEATHER], tool_choice="required", logprobs=True, top_logprobs=2), True),
    (chat_body(logprobs=True, top_logprobs=20, temperature=1.5, top_k=0, seed=34, max_tokens=16), True),
    ({"model": "tiny-a", "prompt": "The capital of France is", "max_tokens": 16, "logprobs": 20, "temperature": 1.5,
      "top_k": 0, "seed": 34}, False),  # tokens that are pieces of a character: "bytes:" names
    ({"model": "tiny-a", "prompt": "The capital of France is", "max_tokens": 12, "logprobs": 4, "temperature": 1.2,
      "seed": 11}, False),
    ({"model": "tiny-a", "prompt": "2+2=", "max_tokens": 8, "logprobs": 0, "temperature": 0}, False),
], ids=["chat-top3", "chat", "chat-tools", "chat-top20", "completion-bytes", "completion-top4", "completion"])
def test_logprobs_as_the_c_server_gives_them(api, c_server, body, chat):
    """logprobs in OpenAI's two shapes, as `bitnet-gpu serve` gives them for the same
    request, whole and streamed (the values themselves: test_batch's logprobs tests)."""
    ours = api.start(body, chat=chat).response()["choices"][0]
    status, theirs = c_server(body, chat)
    assert status == 200, theirs
    assert same_json(ours["logprobs"], theirs["choices"][0]["logprobs"])
    assert ours["message" if chat else "text"] == theirs["choices"][0]["message" if chat else "text"]
    stream = {**body, "stream": True}
    ours_streamed = streamed_logprobs(events(api.start(stream, chat=chat)), chat)
    status, theirs_streamed = c_server(stream, chat)
    assert status == 200
    assert ours_streamed == ours["logprobs"]
    assert same_json(streamed_logprobs(theirs_streamed, chat), ours["logprobs"])
    if "tools" not in body:  # with tools the reply comes whole
        ours_chunks = events(api.start(stream, chat=chat))
        assert streamed_pieces(ours_chunks, chat) == streamed_pieces(theirs_streamed, chat)
    if not chat and body.get("seed") == 34:
        assert any(t.startswith("bytes:") for t in ours["logprobs"]["tokens"])
        assert any(k.startswith("bytes:") for top in ours["logprobs"]["top_logprobs"] for k in top)


# ---- n: several choices -------------------------------------------------------------

def alone(api, body, chat, i):
    """Choice i of body as the n = 1 reply with seed + i gives it (its calls' ids left out), and that reply's usage."""
    r = api.start({**body, "n": 1, "seed": (body["seed"] + i) % 2**64}, chat).response()
    assert len(r["choices"]) == 1
    choice = without_ids(r["choices"][0]) if chat else r["choices"][0]
    return {**choice, "index": i}, r["usage"]


N_BODIES = [
    ({"model": "tiny-a", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.0, "seed": 7,
      "logprobs": 2}, False),
    # seed + i wraps at 2^64: choice 2 samples with seed 0
    ({"model": "tiny-a", "prompt": "The capital of France is", "max_tokens": 10, "temperature": 1.0,
      "seed": 2**64 - 2}, False),
    (chat_body(max_tokens=12, temperature=1.0, seed=11, logprobs=True, top_logprobs=1), True),
    # each choice's calls its own, parsed (two choices call, one runs out of tokens)
    (chat_body(tools=[WEATHER, ADD], tool_choice="required", temperature=1.0, seed=2), True),
]
N_IDS = ["completion-logprobs", "completion-seed-wraps", "chat-logprobs", "chat-tools"]


@pytest.mark.parametrize("body, chat", N_BODIES, ids=N_IDS)
def test_n_choices_are_the_replies_of_seed_plus_i(api, body, chat):
    """n = 3 with a seed: choice i is the n = 1 reply with seed + i (text or message, logprobs,
    finish_reason); they differ; usage counts the prompt once and the choices' tokens together."""
    want, usages = zip(*(alone(api, body, chat, i) for i in range(3)))
    r = api.start({**body, "n": 3}, chat).response()
    got = [without_ids(c) for c in r["choices"]] if chat else r["choices"]
    assert [c["index"] for c in got] == [0, 1, 2]
    assert got == list(want)
    assert len({json.dumps(c["message" if chat else "text"], sort_keys=True) for c in got}) > 1
    if "tools" in body:
        assert [c["finish_reason"] for c in got] == ["length", "tool_calls", "tool_calls"]
        ids = [t["id"] for c in r["choices"] for t in c["message"].get("tool_calls") or []]
        assert len(ids) >= 2 and len(set(ids)) == len(ids), ids  # no two choices share a call id
    completion = sum(u["completion_tokens"] for u in usages)
    prompt = usages[0]["prompt_tokens"]
    assert r["usage"]["prompt_tokens"] == prompt and r["usage"]["completion_tokens"] == completion
    assert r["usage"]["total_tokens"] == prompt + completion
    # The prompt was fed just before: each choice had all of it but its last token cached.
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] == prompt - 1


def test_n_cached_tokens_are_the_least_of_the_choices(api):
    """After another prompt the first choice feeds most of this one; the second finds all but its
    last token cached: the usage says the first's. cache_prompt false: none."""
    other = {"model": "tiny-a", "prompt": "x", "max_tokens": 1}
    body = {"model": "tiny-a", "prompt": "2+2=", "max_tokens": 3, "temperature": 0}
    api.start(other, chat=False).response()
    alone = api.start(body, chat=False).response()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert alone < 4
    api.start(other, chat=False).response()
    assert api.start({**body, "n": 2}, chat=False).response()["usage"]["prompt_tokens_details"] == {
        "cached_tokens": alone}
    assert api.start({**body, "n": 2, "cache_prompt": False}, chat=False).response()["usage"][
        "prompt_tokens_details"] == {"cached_tokens": 0}


@pytest.mark.parametrize("chat", [False, True], ids=["completion", "chat"])
def test_n_greedy_choices_are_equal(api, chat):
    body = {"model": "tiny-a", "max_tokens": 8, "temperature": 0, "n": 2}
    body.update({"messages": ASK} if chat else {"prompt": "2+2="})
    r = api.start(body, chat).response()
    one = api.start({**body, "n": None}, chat).response()  # null: one choice
    assert len(one["choices"]) == 1 and r["choices"] == [{**one["choices"][0], "index": i} for i in range(2)]
    assert r["usage"]["completion_tokens"] == 2 * one["usage"]["completion_tokens"]


def test_n_without_a_seed_draws_one_for_each_choice(api):
    body = {"model": "tiny-a", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 1.0, "n": 3}
    texts = [c["text"] for c in api.start(body, chat=False).response()["choices"]]
    assert len(texts) == 3 and len(set(texts)) > 1


def by_choice(chunks):
    """A stream's choice chunks by their choice's index (each chunk holds exactly one choice)."""
    out = {}
    for c in chunks:
        assert len(c["choices"]) == 1, c
        out.setdefault(c["choices"][0]["index"], []).append(c)
    return out


@pytest.mark.parametrize("body, chat", [N_BODIES[0], N_BODIES[2], N_BODIES[3]], ids=[N_IDS[0], N_IDS[2], N_IDS[3]])
def test_n_stream(api, body, chat):
    """n = 2 streamed: one choice a chunk; a chat choice opens with its role; each choice's text,
    logprobs and finish are the whole response's; the usage, of both, comes after both."""
    body = {**body, "n": 2}
    whole = api.start(body, chat).response()
    evs = events(api.start({**body, "stream": True, "stream_options": {"include_usage": True}}, chat))
    assert evs[-1] == "[DONE]"
    usage = evs[-2]
    assert usage["choices"] == [] and usage["usage"] == {
        **whole["usage"], "prompt_tokens_details": {"cached_tokens": whole["usage"]["prompt_tokens"] - 1}}
    choices = by_choice(evs[:-2])
    assert sorted(choices) == [0, 1]
    for i, chunks in choices.items():
        want = whole["choices"][i]
        if chat:
            assert chunks[0]["choices"][0]["delta"] == {"role": "assistant",
                                                        "content": None if "tools" in body else ""}
            message, _ = streamed_message(chunks + ["[DONE]"])
            assert without_ids({"message": message}) == without_ids({"message": want["message"]})
        else:
            assert streamed_pieces(chunks, chat) == want["text"]
        if want["logprobs"] is not None:
            assert streamed_logprobs(chunks, chat) == want["logprobs"]
        assert chunks[-1]["choices"][0]["finish_reason"] == want["finish_reason"]
        assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    # Without stream_options: no usage.
    plain = events(api.start({**body, "stream": True}, chat))
    assert all(c == "[DONE]" or "usage" not in c for c in plain)
    assert {c["choices"][0]["index"] for c in plain[:-1]} == {0, 1}


def test_n_on_a_batch_engine(api, model_path):
    """A BatchEngine runs the choices side by side (slots 2, n 3: one waits) and gives Engine's."""
    body, chat = N_BODIES[0]
    want = api.start({**body, "n": 3}, chat).response()["choices"]
    with BatchEngine(model_path, slots=2, threads=1) as batch:
        server = OpenAIServer(batch, "tiny-a")
        assert server.start({**body, "n": 3}, chat).response()["choices"] == want
        chunks = by_choice([c for c in events(server.start({**body, "n": 3, "stream": True}, chat))[:-1]])
        assert [streamed_pieces(chunks[i], chat) for i in range(3)] == [c["text"] for c in want]


def test_n_a_choice_that_fails_fails_the_request(model_path):
    """The second choice fails (the engine is closed after the first): a 500, as for one
    choice; streamed, the first choice's chunks and then the error event, no [DONE]."""
    body = {"model": "tiny-a", "prompt": "2+2=", "max_tokens": 4, "temperature": 0, "n": 2}
    with Engine(model_path, threads=1) as e:
        call = OpenAIServer(e, "tiny-a").start(body, chat=False)
        for _ in call.streams[0]:  # the first choice, whole
            pass
        e.close()
        with pytest.raises(ApiError) as error:
            call.response()
        assert error.value.status == 500 and error.value.body["error"]["message"] == "the engine is closed"
    with Engine(model_path, threads=1) as e:
        it = OpenAIServer(e, "tiny-a").start({**body, "stream": True}, chat=False).events()
        first = []
        for event in it:
            first.append(json.loads(event[len("data: "):]))
            if first[-1]["choices"][0]["finish_reason"]:
                break
        e.close()
        rest = list(it)
    assert first[-1]["choices"][0]["finish_reason"] == "length"
    assert {c["choices"][0]["index"] for c in first} == {0}
    assert [json.loads(x[len("data: "):]) for x in rest] == [
        {"error": {"message": "the engine is closed", "type": "server_error", "param": None, "code": None}}]


@pytest.mark.parametrize("n", [0, 129, "2", True, 2.5, [2]])
def test_n_errors(api, n):
    for chat in (False, True):
        body = {"model": "tiny-a", "n": n, **({"messages": ASK} if chat else {"prompt": "x"})}
        with pytest.raises(ApiError) as e:
            api.start(body, chat)
        assert e.value.status == 400 and e.value.body["error"] == {
            "message": "'n' must be an integer in [1, 128]", "type": "invalid_request_error", "param": "n",
            "code": None}


def test_n_128(api):
    r = api.start({"model": "tiny-a", "prompt": "x", "max_tokens": 1, "n": 128, "seed": 1}, chat=False).response()
    assert [c["index"] for c in r["choices"]] == list(range(128)) and r["usage"]["completion_tokens"] == 128


# ---- several prompts, echo, scoring --------------------------------------------------

ECHO_BODIES = [
    {"model": "tiny-a", "prompt": "The capital of France is", "max_tokens": 4, "logprobs": 2, "echo": True,
     "temperature": 0},
    {"model": "tiny-a", "prompt": [[128000, 17, 10, 17, 28]], "max_tokens": 1, "logprobs": 1, "echo": True,
     "temperature": 0},  # as lm-evaluation-harness scores a text
    {"model": "tiny-a", "prompt": "Once upon a time", "max_tokens": 0, "logprobs": 0, "echo": True},
    {"model": "tiny-a", "prompt": ["2+2=", [128000, 791, 6864]], "max_tokens": 5, "echo": True, "n": 2,
     "temperature": 1.0, "seed": 5},
    {"model": "tiny-a", "prompt": ["2+2=", "Once upon a time", [791, 6864]], "max_tokens": 6, "temperature": 1.0,
     "seed": 9, "logprobs": 1},
    {"model": "tiny-a", "prompt": ["2+2=", [128000, 791, 6864]], "max_tokens": 3, "echo": True, "n": 2,
     "temperature": 1.0, "seed": 5, "logprobs": 2},
]
ECHO_BODIES.append({"model": "tiny-a", "prompt": [[128000, 17, 10, 17, 28]], "max_tokens": 1, "logprobs": 2,
                    "echo": True, "temperature": 0, "logit_bias": {"128001": 100}})  # ends at once: its entry last
ECHO_IDS = ["echo-logprobs", "echo-ids", "echo-max-tokens-0", "echo-prompts-n", "prompts-logprobs",
            "echo-prompts-n-logprobs", "echo-eog"]


@pytest.mark.parametrize("body", ECHO_BODIES, ids=ECHO_IDS)
def test_prompts_and_echo_as_the_c_server_gives_them(api, c_server, body):
    """Several prompts and echo (the prompt's text and, with logprobs, its tokens' entries,
    the first null) as `bitnet-gpu serve` answers the same request, whole and streamed; on
    an Engine and on a BatchEngine. (The values against bitnet.cpp: test_serve.py.)"""
    ours = api.start(body, chat=False).response()
    status, theirs = c_server(body, False)
    assert status == 200, theirs
    assert same_json(ours["choices"], theirs["choices"]) and ours["usage"] == theirs["usage"]
    stream = {**body, "stream": True}
    chunks = by_choice([c for c in events(api.start(stream, chat=False))[:-1]])
    for c in ours["choices"]:
        i = c["index"]
        assert streamed_pieces(chunks[i], False) == c["text"]
        if c["logprobs"] is not None:
            assert streamed_logprobs(chunks[i], False) == c["logprobs"]
    if body.get("echo") and body.get("logprobs") is not None:
        for c in ours["choices"]:
            assert c["logprobs"]["token_logprobs"][0] is None and c["logprobs"]["top_logprobs"][0] is None
        if len(ours["choices"]) == 1:
            lp = ours["choices"][0]["logprobs"]
            assert len(lp["tokens"]) == ours["usage"]["prompt_tokens"] + ours["usage"]["completion_tokens"]


def test_prompts_and_echo_on_a_batch_engine(api, model_path):
    with BatchEngine(model_path, slots=2, threads=1) as batch:
        server = OpenAIServer(batch, "tiny-a")
        for body in ECHO_BODIES:
            assert same_json(server.start(body, False).response()["choices"], api.start(body, False).response()["choices"])


def test_score(api, model_path):
    """Engine.score and BatchEngine.score: each token's Logprob given those before it (the first
    None), as the generation's logprobs give the same token at the same place; the engine keeps
    the text in its prompt cache."""
    e = api.engine
    gen = e.generate("2+2=", 6, greedy=True, logprobs=True, top_logprobs=3)
    scored = e.score(gen.prompt_ids + gen.ids, top_logprobs=3)
    assert scored[0] is None and len(scored) == len(gen.prompt_ids) + len(gen.ids)
    assert scored[len(gen.prompt_ids):] == gen.logprobs
    again = e.generate(gen.prompt_ids + gen.ids, 2, greedy=True)
    assert again.timings.cached_tokens == len(scored) - 1
    with BatchEngine(model_path, slots=2, threads=1) as batch:
        assert batch.score(gen.prompt_ids + gen.ids, top_logprobs=3) == scored
    with pytest.raises(BitnetError):
        batch.score(gen.prompt_ids)  # closed
    # Closed while the score waits for a slot (a long generation holds the only one).
    with BatchEngine(model_path, slots=1, threads=1) as batch:
        long = batch.generate("Once upon a time", 400, stream=True, greedy=True)
        next(iter(long))
        failed = []

        def score():
            try:
                batch.score(gen.prompt_ids)
            except BitnetError as e:
                failed.append(e)
        waiting = threading.Thread(target=score)
        waiting.start()
        time.sleep(0.3)
        batch.close()
        waiting.join(10)
        assert [str(e) for e in failed] == ["the engine is closed"]
    assert [(lp.id, lp.logprob, lp.top) for lp in e.score("2+2=")[1:]] == [(lp.id, lp.logprob, [])
                                                                           for lp in scored[1:5]]
    with pytest.raises(BitnetError):
        e.score([])
    with pytest.raises(BitnetError):
        e.score("x", top_logprobs=21)


@pytest.mark.parametrize("path, body", [
    ("/tokenize", {"content": "Hello world"}),
    ("/tokenize", {"content": "Hello <|eot_id|> caf\u00e9", "add_special": True, "with_pieces": True}),
    ("/tokenize", {"content": "a <|eot_id|>", "parse_special": False}),
    ("/tokenize", {"prompt": "<|begin_of_text|>Hello", "add_special_tokens": False}),  # vLLM's form
    ("/tokenize", {"prompt": "Hello"}),
    ("/tokenize", {"content": 5}),
    ("/tokenize", {"prompt": "x", "add_special_tokens": "no"}),
    ("/detokenize", {"tokens": [128000, 9906, 1917, 128009]}),
    ("/detokenize", {"tokens": [15722]}),  # a piece of a character: U+FFFD
    ("/detokenize", {"tokens": ["a"]}),
    ("/detokenize", {"tokens": [-1]}),
    ("/tokenizer_info", None),
])
def test_tokenizer_endpoints_as_the_c_server_answers(api, c_server, path, body):
    """/tokenize, /detokenize and /tokenizer_info (what lm-evaluation-harness's remote
    tokenizer reads) as `bitnet-gpu serve` answers them, errors too."""
    handle = {"/tokenize": api.tokenize, "/detokenize": api.detokenize}.get(path)
    try:
        ours, status = (handle(body) if handle else api.tokenizer_info()), 200
    except ApiError as e:
        ours, status = e.body, e.status
    their_status, theirs = c_server(body, path=path)
    assert status == their_status
    if status == 200:
        assert ours == theirs
    else:  # the same message (the C server names no param)
        assert ours["error"]["message"] == theirs["error"]["message"]



def test_tokenizer_info_chat_template(model_path, tmp_path):
    """The model's Jinja template in /tokenizer_info where chat() applies its format, as the C
    server gives it: a Llama-3-vocabulary model carries the fixture's template; chat_template
    "bitnet" applies another format, so there is none."""
    if not (CLI and os.access(CLI, os.X_OK)):
        pytest.skip("the CLI is not built (set BITNET_CLI)")
    fixtures = os.path.dirname(os.path.dirname(model_path))
    with open(os.path.join(fixtures, "llama3", "tokenizer_config.json")) as f:
        template = json.load(f)["chat_template"]
    model = str(tmp_path / "tiny-llama3.gguf")
    subprocess.run([CLI, "make-model", "-o", model, "--preset", "tiny-llama", "--vocab",
                    os.path.join(fixtures, "llama3", "tokenizer.json")], check=True, capture_output=True)
    with Engine(model, threads=1) as e:
        assert e.chat_template == "llama3" and e.chat_template_jinja == template
        assert OpenAIServer(e, "m").tokenizer_info()["chat_template"] == template
    with Engine(model, threads=1, chat_template="bitnet") as e:
        assert e.chat_template_jinja is None and "chat_template" not in OpenAIServer(e, "m").tokenizer_info()


def test_echo_text_offset_sentencepiece(tmp_path):
    """A SentencePiece vocabulary puts a space before a text and after each user-defined token in
    it, which the token after carries: with echo, text_offset is still each token's offset in the
    choice's text (a BOS the server added, and those spaces, take no room), for string prompts and
    token ids, from the C server and from this package alike. The vocabulary: the one
    tests/spm_reference.py has the sentencepiece package train, with a user-defined token added."""
    if not (CLI and os.access(CLI, os.X_OK)):
        pytest.skip("the CLI is not built (set BITNET_CLI)")
    pytest.importorskip("sentencepiece")
    pytest.importorskip("gguf")
    source = os.environ.get("BITNET_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    sys.path.insert(0, os.path.join(source, "tests"))
    try:
        import spm_reference
    finally:
        sys.path.pop(0)
    vocab = str(tmp_path / "vocab.gguf")
    spm_reference.write_vocab(spm_reference.train(), vocab, user_defined=["<ud>"])
    model = str(tmp_path / "spm.gguf")
    subprocess.run([CLI, "make-model", "-o", model, "--preset", "tiny-bitnet", "--vocab", vocab], check=True,
                   capture_output=True)
    with Engine(model, threads=1) as e, serving(model) as post:
        assert e.space_prefix
        api = OpenAIServer(e, "m")
        prompts = ["Hello world, hello there", "  two leading spaces", "Hello<ud>world and<ud> more<ud>",
                   e.tokenize("The cat<ud>sat", bos=False)]
        for prompt in prompts:
            body = {"model": "m", "prompt": prompt, "echo": True, "logprobs": 1, "max_tokens": 3, "temperature": 0}
            status, theirs = post(body, chat=False)
            assert status == 200, theirs
            ours = api.start(body, chat=False).response()
            ids = e.tokenize(prompt) if isinstance(prompt, str) else prompt
            skip = 1 if isinstance(prompt, str) and e.add_bos else 0  # the BOS the server added
            echoed = (prompt if isinstance(prompt, str) else e.detokenize(prompt)).encode()
            # the tokenizer's spaces: before the text and after each <ud> (a string), or the one
            # detokenizing drops from the first token (ids)
            want = sum(1 for piece in prompt.split("<ud>") if piece) if isinstance(prompt, str) else 1
            for reply in (ours, theirs):
                choice = reply["choices"][0]
                text, lp = choice["text"].encode(), choice["logprobs"]
                offsets, tokens = lp["text_offset"], [t.encode() for t in lp["tokens"]]
                assert offsets[:skip + 1] == [0] * (skip + 1)
                assert len(ids) + 3 == len(tokens)
                spaces = 0
                for i in range(skip, len(ids)):  # the prompt's tokens (a generated one may be part of a character)
                    piece = text[offsets[i]:offsets[i + 1]]
                    assert piece in (tokens[i], tokens[i][1:]) and tokens[i].endswith(piece), (prompt, i)
                    spaces += len(tokens[i]) - len(piece)
                assert spaces == want, (prompt, spaces)
                assert text.startswith(echoed) and offsets[len(ids)] == len(echoed)  # the first generated token
            assert same_json(ours["choices"], theirs["choices"]) and ours["usage"] == theirs["usage"]
