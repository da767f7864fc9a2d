"""bitnet_gpu.openai_api without a web server: OpenAI's request and response
shapes, server-sent events and error objects, on tiny-a. (test_serve.py sends
the same kinds of requests through Ray Serve with the openai client.)"""
import json

import pytest

from bitnet_gpu import Engine
from bitnet_gpu.openai_api import ApiError, OpenAIServer


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
    ({"model": "tiny-a", "prompt": "x", "n": 2}, False, 400, "n", "'n' is not supported"),
    ({"model": "tiny-a", "prompt": "x", "logprobs": 2}, False, 400, "logprobs", "not supported"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, True,
     400, "tools", "not supported"),
    ({"model": "tiny-a", "prompt": "x", "temperature": "hot"}, False, 400, "temperature", "must be a number"),
    ({"model": "tiny-a", "prompt": "x", "top_p": 2}, False, 400, None, "top-p must be in (0, 1] (got 2)"),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": "x"}], "min_p": 1}, True, 400, None,
     "min-p must be in [0, 1) (got 1)"),
    ({"model": "tiny-a", "prompt": "x", "max_tokens": 0}, False, 400, "max_tokens", "integer >= 1"),
    ({"model": "tiny-a", "prompt": "x", "seed": -1}, False, 400, "seed", "'seed' must be in"),
    ({"model": "tiny-a", "prompt": "x", "stop": 3}, False, 400, "stop", "'stop' must be"),
    ({"model": "tiny-a", "prompt": "x", "cache_prompt": 1}, False, 400, "cache_prompt", "must be a boolean"),
    ({"model": "tiny-a", "prompt": ["a", "b"]}, False, 400, "prompt", "one prompt per request"),
    ({"model": "tiny-a", "prompt": [1, 128256]}, False, 400, "prompt", "token id 128256 is outside the vocabulary"),
    ({"model": "tiny-a", "prompt": [[-1]]}, False, 400, "prompt", "token id -1 is outside the vocabulary"),
    ({"model": "tiny-a", "prompt": "word " * 600}, False, 400, "prompt", "maximum context length is 512"),
    ({"model": "tiny-a", "messages": []}, True, 400, "messages", "non-empty list"),
    ({"model": "tiny-a", "messages": [{"role": "tool", "content": "x"}]}, True, 400, "messages",
     'chat: unknown role "tool"'),
    ({"model": "tiny-a", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, True, 400,
     "messages", "only text content parts"),
    ([1, 2], False, 400, None, "must be a JSON object"),
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
    call = api.start({"model": "tiny-a", "prompt": "2+2=", "max_tokens": 500, "stream": True}, chat=False)
    events = call.events()
    next(events)
    call.cancel()  # what the server does when the connection drops
    rest = list(events)
    assert rest[-1] == "data: [DONE]\n\n" and len(rest) < 100
    assert call.stream.result.finish_reason == "cancelled" and len(call.stream.result.ids) < 100
