"""The OpenAI HTTP API over an Engine, free of any web framework.

/v1/completions and /v1/chat/completions take OpenAI's request bodies and give
its response shapes (usage counts, server-sent events when streaming, error
objects); /v1/models lists the one model. bitnet_gpu.serve puts this behind
Ray Serve. Parameters OpenAI has and this server cannot honour (best_of,
suffix, ...) are refused, not ignored. A completion's prompt may be several
(an array of strings or of token-id arrays), each with n choices, prompt i's
choice j at index i * n + j. echo begins each choice's text with its prompt's,
and with logprobs its entries with the prompt tokens' (Engine.score: the first
null), as lm-evaluation-harness reads them; max_tokens 0 then scores the prompt
alone. n (1..128 choices in all) asks for several choices of
each prompt, generated one after another (side by side on a BatchEngine, which
feeds their prompt once):
choice i samples with seed + i, so choice 0 is the reply n = 1 gives; a
request without a seed draws a fresh one for each choice (the C server draws
one and goes on from it, seed + i: either way the choices differ). usage counts the prompt once and the choices' tokens together; a stream
sends each choice's chunks, one choice a chunk, and the usage after the last
choice. logprobs come in OpenAI's two shapes,
as the C server gives them. response_format json_object and
json_schema hold the reply (and the other servers' forms of a JSON Schema,
regular expression or choice: json_schema, guided_json, guided_regex,
guided_choice, structured_outputs), and tools are called, as the C server does
it (the library's bn_tools_chat_request: the same messages, schemas and replies).
Absent sampling parameters take the library's defaults (temperature 0.8, top-k
40, top-p 0.95, min-p 0.05);
frequency_penalty, presence_penalty and logit_bias are OpenAI's, applied as
llama.cpp applies them (the penalties over the last repeat_last_n tokens);
top_k, min_p, repeat_penalty and repeat_last_n are accepted as extensions, as
llama.cpp's server does.
"""
import json
import os
import time
import uuid

from dataclasses import dataclass
from typing import List, Optional

from .batch import BatchStream
from .engine import (TOP_LOGPROBS_MAX, BitnetError, Completion, Engine, Logprob, Timings, chat_tools_reply,
                     Regex, chat_tools_request, json_schema_text, reply_format)

# Parameters that would change the answer in ways this server does not
# implement, with the values that mean "off" (null always does).
_UNSUPPORTED = {
    "best_of": (1,),
    "suffix": ("",),
    "functions": ([],),
}
# The other servers' grammars (llama.cpp's GBNF, vLLM's), with their "off" values.
_GRAMMARS = {"grammar": ("",), "guided_grammar": ()}
_FORMATS = ("(JSON Schemas, regular expressions and choices are: response_format, guided_json, guided_regex, "
            "guided_choice)")
_NUMBERS = {"temperature": float, "top_p": float, "min_p": float, "repeat_penalty": float, "top_k": int, "seed": int,
            "frequency_penalty": float, "presence_penalty": float, "repeat_last_n": int}
_FINISH = {"eog": "stop", "stop": "stop", "length": "length", "context": "length", "cancelled": "stop"}
_CHAT_FIELDS = ("stop", "tool_choice", "parallel_tool_calls", "tools", "messages")  # what the library's errors name
N_MAX = 128  # choices a request may ask for, as the C server allows


class ApiError(Exception):
    """An error answered as OpenAI does: an HTTP status and {"error": {...}}."""

    def __init__(self, status, message, type="invalid_request_error", param=None, code=None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}


def _bad(message, param=None, code=None):
    return ApiError(400, message, param=param, code=code)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v):
    return isinstance(v, list) and v and all(_is_int(x) for x in v)


def _sampling(body):
    out = {}
    for name, kind in _NUMBERS.items():
        v = body.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not _is_int(v)):
            raise _bad(f"'{name}' must be {'an integer' if kind is int else 'a number'}", name)
        out[name] = kind(v)
    if out.get("seed", 0) < 0 or out.get("seed", 0) >= 2**64:
        raise _bad("'seed' must be in 0..2^64-1", "seed")
    for name in ("frequency_penalty", "presence_penalty"):  # OpenAI's range
        if not -2 <= out.get(name, 0) <= 2:
            raise _bad(f"'{name}' must be a number in [-2, 2]", name)
    if "repeat_last_n" in out:  # llama.cpp's: -1 is all of the context
        if not -1 <= out["repeat_last_n"] < 2**31:
            raise _bad("'repeat_last_n' must be an integer in [-1, 2147483647]", "repeat_last_n")
        out["repeat_last_n"] %= 2**31  # -1: 2^31 - 1
    bias = body.get("logit_bias")
    if bias is not None:  # OpenAI's {"TOKEN_ID": bias in [-100, 100]}, as the C server reads it
        if not isinstance(bias, dict) or len(bias) > 1024:
            raise _bad("'logit_bias' must be an object of at most 1024 token ids to numbers", "logit_bias")
        out["logit_bias"] = {}
        for key, v in bias.items():  # (a key given twice is gone by now: JSON objects keep the last)
            if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 9
                    and (key[0] != "0" or key == "0")):
                raise _bad("'logit_bias' keys must be token ids", "logit_bias")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not -100 <= v <= 100:
                raise _bad("'logit_bias' values must be numbers in [-100, 100]", "logit_bias")
            out["logit_bias"][int(key)] = float(v)
    return out


def _json_schema(body):
    """response_format as generate()'s json_schema: None (text), True (json_object) or a schema
    ("schema": true, or none given, is any value: {}, as the C server reads it)."""
    rf = body.get("response_format")
    kind = rf.get("type") if isinstance(rf, dict) else None
    if rf is None or kind == "text":
        return None
    if kind == "json_object":
        return True
    spec = rf.get("json_schema")
    if kind == "json_schema" and isinstance(spec, dict) and isinstance(spec.get("name"), str):
        schema = spec.get("schema", {})
        if isinstance(schema, dict) or schema is True:
            return {} if schema is True else schema
    raise _bad("'response_format' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or "
               "{\"type\": \"json_schema\", \"json_schema\": {\"name\", \"schema\"}}", "response_format")


def _reply_format(body):
    """What holds the reply, as the C server reads it: response_format, or the
    other servers' fields for the same (llama.cpp's json_schema; vLLM's
    guided_json, guided_regex, guided_choice and structured_outputs' json, regex
    and choice), one at most: a JSON Schema's text, a Regex, or None. Read in the
    C server's order, so that a body with several faults gets its answer."""
    so = body.get("structured_outputs")
    so_fields = so if isinstance(so, dict) else {}
    forms = [("response_format", "json", _json_schema(body)), ("json_schema", "json", body.get("json_schema")),
             ("guided_json", "json", body.get("guided_json")), ("structured_outputs", "json", so_fields.get("json")),
             ("guided_regex", "regex", body.get("guided_regex")),
             ("guided_choice", "choices", body.get("guided_choice")),
             ("structured_outputs", "regex", so_fields.get("regex")),
             ("structured_outputs", "choices", so_fields.get("choice"))]
    held = None
    for name, kind, v in forms:
        if v is None:
            continue
        if held is not None:
            raise _bad(f"'{name}' beside another reply format (response_format, json_schema, guided_json, "
                       "guided_regex, guided_choice or structured_outputs): give one", name)
        held = _one_format(name, kind, v)
    for name, off in _GRAMMARS.items():
        if body.get(name) is not None and body[name] not in off:
            raise _bad(f"'{name}' is not supported by this server {_FORMATS}", name)
    if so is not None and (not isinstance(so, dict) or {k for k, v in so.items() if v is not None} - {"json", "regex",
                                                                                                       "choice"}):
        raise _bad(f"'structured_outputs' is not supported by this server {_FORMATS}", "structured_outputs")
    return held


def _one_format(name, kind, v):
    """One reply format field (_reply_format) as the library takes it, or a 400."""
    try:
        if kind == "json" and name != "response_format":
            if isinstance(v, str):  # vLLM takes the schema's text too
                try:
                    v = json.loads(v)
                except ValueError:
                    v = None
            if not (isinstance(v, dict) or v is True):
                raise _bad(f"'{name}' must be a JSON Schema: an object, or its JSON text", name)
        if kind == "json":
            return json_schema_text(v)
        if kind == "regex" and not isinstance(v, str):
            raise _bad(f"'{name}' regex must be a string", name)
        if kind == "choices" and not (isinstance(v, list) and v and all(isinstance(c, str) for c in v)):
            raise _bad(f"'{name}' choice must be an array of one or more strings", name)
        return reply_format(**{kind: v})
    except (BitnetError, ValueError) as e:  # a schema or an expression the library cannot follow
        raise _bad(f"'{name}': {e}" if kind != "json" else str(e), name) from None


def _n(body):
    n = body.get("n")
    if n is None:
        return 1
    if not _is_int(n) or not 1 <= n <= N_MAX:
        raise _bad(f"'n' must be an integer in [1, {N_MAX}]", "n")
    return n


def _fresh_seed():
    """A seed for a choice whose request gives none, so that two choices differ."""
    return int.from_bytes(os.urandom(8), "little")


def _stop(body):
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return stop
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise _bad("'stop' must be a string or a list of strings", "stop")


def _logprobs(body, chat):
    """The request's logprobs as generate() takes them: None (none asked for) or
    how many alternatives each token lists. Chat: {"logprobs": bool,
    "top_logprobs": 0..20}; completions: {"logprobs": 0..20}."""
    def count(name):
        v = body.get(name)
        if v is not None and (not _is_int(v) or not 0 <= v <= TOP_LOGPROBS_MAX):
            raise _bad(f"'{name}' must be an integer in [0, {TOP_LOGPROBS_MAX}]", name)
        return v
    if not chat:
        return count("logprobs")
    on = body.get("logprobs")
    if on is not None and not isinstance(on, bool):
        raise _bad("'logprobs' must be true or false", "logprobs")
    top = count("top_logprobs")
    if top and not on:
        raise _bad("'top_logprobs' needs \"logprobs\": true", "top_logprobs")
    return (top or 0) if on else None


def _text(b):
    """A token's bytes as JSON text, as the C server writes them (bytewise U+FFFD,
    engine.py; NUL, which its JSON cannot carry, as U+FFFD too)."""
    return b.decode("utf-8", "bitnet-bytewise").replace("\0", "\ufffd")


def _whole(b):
    """A token's bytes as text where they are whole UTF-8 characters without a NUL (as
    bn_utf8_whole reads them), else None."""
    try:
        return b.decode("utf-8") if b"\0" not in b else None
    except UnicodeDecodeError:
        return None


def _token_key(b):
    """A completion's name for a token: its text, or where its bytes are not whole
    UTF-8 characters, "bytes:" and them as \\xNN, as OpenAI writes them."""
    text = _whole(b)
    return text if text is not None else "bytes:" + "".join(f"\\x{c:02x}" for c in b)


def _max_tokens(body, names, default, echo=False):
    """0 only with echo: the prompt scored alone."""
    for name in names:
        v = body.get(name)
        if v is not None:
            if not _is_int(v) or v < (0 if echo else 1):
                raise _bad(f"'{name}' must be an integer >= 1 (0 only with \"echo\": true: the prompt scored alone)",
                           name)
            return v
    return default


def _echo(body, chat):
    echo = body.get("echo")
    if echo is None:
        return False
    if not isinstance(echo, bool):
        raise _bad("'echo' must be true or false", "echo")
    if echo and chat:
        raise _bad("'echo' is for completions", "echo")
    return echo


class _EndOfText(Logprob):
    """With echo, the end-of-generation token a choice ended with: it has an entry (as
    lm-evaluation-harness expects the generated token's last) but no text."""
    __slots__ = ()


@dataclass
class _Prompt:
    """One prompt of a request: its ids, and with echo its text (a string prompt as given,
    ids as their text; added_bos: ids[0] is a BOS put before a string prompt, not in that
    text; prefixed: the indices of tokens that begin with a space the tokenizer put before a
    piece of the text, not in it either) and, with logprobs, its tokens' entries
    (Engine.score's, the first with None)."""
    ids: List[int]
    text: str = ""
    added_bos: bool = False
    logprobs: Optional[List[Logprob]] = None
    prefixed: frozenset = frozenset()


def _sse(obj):
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class OpenAIServer:
    """OpenAI's routes over one engine. model_name is the id clients send as "model"."""

    def __init__(self, engine: Engine, model_name: str):
        self.engine = engine
        self.model_name = model_name
        self.created = int(time.time())

    def models(self):
        return {"object": "list", "data": [self._model()]}

    # ---- the tokenizer endpoints, as `bitnet-gpu serve` answers them ----

    def tokenize(self, body):
        """llama.cpp's /tokenize {"content", "add_special", "parse_special", "with_pieces"}, or
        vLLM's {"prompt", "add_special_tokens"} (lm-evaluation-harness's remote tokenizer), which
        adds the BOS unless told not to and answers "count" and "max_model_len" too."""
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        vllm = body.get("content") is None and body.get("prompt") is not None
        key = "prompt" if vllm else "content"
        text = body.get(key)
        if not isinstance(text, str):
            raise _bad(f"'{key}' must be a string", key)
        flags = {}
        for name, default in (("add_special_tokens" if vllm else "add_special", vllm), ("parse_special", True),
                              ("with_pieces", False)):
            v = body.get(name)
            if v is not None and not isinstance(v, bool):
                raise _bad(f"'{name}' must be true or false", name)
            flags[name] = default if v is None else v
        add, parse, pieces = flags.values()
        try:
            ids = self.engine.tokenize(text, bos=add, special=parse)
        except BitnetError as e:
            raise _bad(str(e)) from None
        out = {"tokens": [self._piece(t) for t in ids] if pieces else ids}
        if vllm:
            out.update(count=len(ids), max_model_len=self.engine.n_ctx)
        return out

    def _piece(self, token_id):
        """with_pieces' entry: the token's text, or its bytes where they are not whole characters."""
        b = self.engine.token_bytes(token_id)
        text = _whole(b)
        return {"id": token_id, "piece": text if text is not None else list(b)}

    def detokenize(self, body):
        """/detokenize {"tokens"}: the text as "content" (llama.cpp's name) and "prompt" (vLLM's)."""
        ids = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(_is_int(t) and 0 <= t < self.engine.info.n_vocab for t in ids):
            raise _bad("'tokens' must be an array of token ids in the vocabulary")
        try:
            text = _text(self.engine.detokenize_bytes(ids))
        except BitnetError:
            raise _bad("'tokens' must be an array of token ids in the vocabulary") from None
        return {"content": text, "prompt": text}

    def tokenizer_info(self):
        """vLLM's /tokenizer_info, as lm-evaluation-harness's remote tokenizer reads it."""
        names = [None if t is None else _text(self.engine.token_bytes(t)) for t in self.engine.special_ids()]
        info = {"bos_token": names[0], "eos_token": names[1], "add_bos_token": self.engine.add_bos,
                "model_max_length": self.engine.n_ctx, "tokenizer_class": "bitnet-gpu"}
        if self.engine.chat_template_jinja is not None:  # as the C server: where chat() applies it
            info["chat_template"] = self.engine.chat_template_jinja
        return info

    def _model(self):
        return {"id": self.model_name, "object": "model", "created": self.created, "owned_by": "bitnet-gpu"}

    def start(self, body, chat):
        """Checks a request body and starts its generation: a Call, or ApiError."""
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        model = body.get("model")
        if model != self.model_name:
            raise ApiError(404, f"The model '{model}' does not exist; this server has '{self.model_name}'",
                           param="model", code="model_not_found")
        for name, off in _UNSUPPORTED.items():
            if body.get(name) is not None and body[name] not in off:
                raise _bad(f"'{name}' is not supported by this server", name)
        stream = body.get("stream") or False
        if not isinstance(stream, bool):
            raise _bad("'stream' must be a boolean", "stream")
        options = body.get("stream_options") or {}
        if not isinstance(options, dict):
            raise _bad("'stream_options' must be an object", "stream_options")
        sampling = _sampling(body)
        seed = sampling.pop("seed", None)
        try:  # the library's own checks, answered with a 400
            sp = self.engine.sampling(**sampling, seed=_fresh_seed() if seed is None else seed)
        except BitnetError as e:
            raise _bad(str(e)) from None
        # The generation's own fields first, then the prompt, in the C server's order.
        n = _n(body)
        stop = _stop(body)
        echo = _echo(body, chat)
        max_tokens = (_max_tokens(body, ("max_completion_tokens", "max_tokens"), None) if chat
                      else _max_tokens(body, ("max_tokens",), 16, echo))  # OpenAI's default for completions
        top_logprobs = _logprobs(body, chat)
        cache_prompt = body.get("cache_prompt")  # llama.cpp's field: reuse the cached start
        cache_prompt = True if cache_prompt is None else cache_prompt
        if not isinstance(cache_prompt, bool):
            raise _bad("'cache_prompt' must be a boolean", "cache_prompt")
        json_schema = _reply_format(body)  # or a Regex
        tools = False
        try:
            if chat:  # messages, tool results and calls, the tools: read by the library as `serve` reads them
                try:
                    messages, tools_schema = chat_tools_request(
                        body, None if isinstance(json_schema, Regex) else json_schema)
                except BitnetError as e:
                    said = str(e)
                    raise _bad(said, next((f for f in _CHAT_FIELDS if f"'{f}'" in said or f"({f})" in said),
                                          None)) from None
                if tools_schema is not None and isinstance(json_schema, Regex):
                    raise _bad("'tools' beside a regex or choices: give one", "tools")
                if tools_schema is not None:
                    json_schema, tools = tools_schema.encode(), True
                prompts = [_Prompt(self.engine._template_ids(messages))]
            else:
                if body.get("tools") not in (None, []):
                    raise _bad("'tools' is for chat completions", "tools")
                prompts = self._prompts(body.get("prompt"), echo)
        except BitnetError as e:
            raise _bad(str(e), "messages" if chat else None) from None
        if len(prompts) * n > N_MAX:
            raise _bad(f"'prompt' times n must be at most {N_MAX} choices", "prompt")
        for p in prompts:
            if len(p.ids) > self.engine.n_ctx:
                raise _bad(f"This model's maximum context length is {self.engine.n_ctx} tokens; "
                           f"the prompt has {len(p.ids)} tokens", "messages" if chat else "prompt",
                           "context_length_exceeded")

        def begin(i):
            """Starts choice i, prompt i // n's choice i % n: seed + i % n, or a fresh seed of its own
            (choice 0's sp is built already). With echo and logprobs its prompt is scored first
            (once), which leaves it in the engine's prompt cache for the generation."""
            p = prompts[i // n]
            if echo and top_logprobs is not None and p.logprobs is None:
                p.logprobs = [Logprob(p.ids[0], None, None)] + self.engine.score(p.ids, top_logprobs)[1:]
            if max_tokens == 0:  # echo alone: nothing to generate
                return BatchStream(None, None, Completion("", [], p.ids, "length", Timings(0.0, 0.0, 0.0, len(p.ids), 0),
                                                          logprobs=None if top_logprobs is None else []))
            choice_sp = sp if i == 0 else self.engine.sampling(
                **sampling, seed=_fresh_seed() if seed is None else (seed + i % n) % 2**64)
            return self.engine._start_sampled(p.ids, max_tokens, stop, True, choice_sp, cache_prompt, json_schema,
                                              top_logprobs)
        try:
            first = begin(0)  # what the library refuses at the start is the request's fault
        except BitnetError as e:
            raise _bad(str(e)) from None
        return Call(self, chat, prompts, first, begin, n, stream, bool(options.get("include_usage")), tools,
                    top_logprobs, echo)

    def _prompts(self, prompt, echo):
        """prompt: OpenAI's four forms: a string, token ids, or a list of either (a prompt each)."""
        many = isinstance(prompt, list) and prompt and (isinstance(prompt[0], (str, list)))
        return [self._prompt(p, echo) for p in (prompt if many else [prompt])]

    def _prefixed(self, ids, first, text):
        """With a tokenizer that puts a space before the text and after each special token in it
        (Engine.space_prefix), ids[first:] lined up against the text: the indices of the tokens
        whose bytes are not there but, less a leading space, are (as the C server marks them)."""
        if not self.engine.space_prefix:
            return frozenset()
        text, at, marked = text.encode("utf-8", "surrogatepass"), 0, set()
        for i in range(first, len(ids)):
            b = self.engine.token_bytes(ids[i])
            if b[:1] == b" " and text[at:at + len(b)] != b and text[at:at + len(b) - 1] == b[1:]:
                marked.add(i)
                b = b[1:]
            at += len(b)
        return frozenset(marked)

    def _prompt(self, prompt, echo):
        if isinstance(prompt, str):
            try:
                ids = self.engine.tokenize(prompt, bos=self.engine.add_bos)
            except BitnetError as e:
                raise _bad(str(e), "prompt") from None
            added = bool(ids) and self.engine.add_bos and ids[0] == self.engine.special_ids()[0]  # as the C server
            return _Prompt(ids, prompt, added, prefixed=self._prefixed(ids, int(added), prompt) if echo else frozenset())
        if _int_list(prompt):
            n_vocab = self.engine.info.n_vocab
            for t in prompt:  # checked here: the generation would fail on its worker thread, a 500
                if not 0 <= t < n_vocab:
                    raise _bad(f"token id {t} is outside the vocabulary (0..{n_vocab - 1})", "prompt")
            text = self.engine.detokenize(prompt) if echo else ""
            return _Prompt(list(prompt), text, prefixed=self._prefixed(prompt, 0, text) if echo else frozenset())
        raise _bad("'prompt' must be a string, a list of token ids, or a list of those (a prompt each)", "prompt")


class Call:
    """One request whose generations are running: its response or its events."""

    def __init__(self, server, chat, prompts, first, begin, per, streaming, include_usage, tools=False,
                 top_logprobs=None, echo=False):
        self.server, self.chat, self.prompts, self.per = server, chat, prompts, per
        self.n = len(prompts) * per  # choices in all: choice i is prompt i // per's
        self.echo = echo  # each choice's text, and logprobs, begin with its prompt's
        self.streams = [first]  # choice i's generation is streams[i], once started
        self.begin = begin  # begin(i) starts choice i's
        self.streaming, self.include_usage = streaming, include_usage
        self.tools = tools  # the reply is tool calls or an answer, known only whole (chat_tools_reply)
        self.top_logprobs = top_logprobs  # None: no logprobs asked for
        self.text_offset = [0] * self.n  # a completion's logprobs: bytes of each choice's text before its next token
        self.entries = [0] * self.n  # a completion's logprobs: each choice's entries so far (with echo, the prompt's first)
        self.cancelled = False
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def cancel(self):
        """Stops the generations at their next token (the client went away); does not wait."""
        self.cancelled = True
        for s in list(self.streams):
            s.cancel()

    def _choices(self):
        """(index, stream) of each choice in order, each started when it is wanted: all at once on a
        BatchEngine, which generates them side by side; on an Engine, which takes them in turn,
        each after the one before. None is started once the call is cancelled."""
        together = getattr(self.server.engine, "slots", 1) > 1
        for i in range(self.n):
            while len(self.streams) <= (self.n - 1 if together else i) and not self.cancelled:
                self.streams.append(self.begin(len(self.streams)))
                if self.cancelled:  # cancel() ran while it started, and may not have seen it
                    self.streams[-1].cancel()
            if i == len(self.streams):
                return
            yield i, self.streams[i]

    def _reply_id(self, index):
        """The id choice index's tool calls are named from ("call_<id>_<i>_0" past the first
        choice), so that no two choices share a call id, as in the C server."""
        return self.id if index == 0 else f"{self.id}_{index}"

    def _head(self, chunk):
        kind = ("chat.completion" if self.chat else "text_completion") + (".chunk" if chunk and self.chat else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.server.model_name,
                "system_fingerprint": f"bitnet-gpu-{self.server.engine.backend}"}

    def _usage(self, results):
        """The choices' usage: each prompt counted once (and as much of them cached as every choice had:
        none when they were scored, Engine.score feeding all of it, whose cache the generation then takes)."""
        n = sum(r.timings.generated_tokens for r in results)
        n_prompt = sum(len(p.ids) for p in self.prompts)
        scored = self.echo and self.top_logprobs is not None
        return {"prompt_tokens": n_prompt, "completion_tokens": n, "total_tokens": n_prompt + n,
                "prompt_tokens_details": {"cached_tokens": 0 if scored else min(r.timings.cached_tokens
                                                                                  for r in results)}}

    def _logprobs(self, index, logprobs):
        """choice.logprobs for these tokens' Logprobs (None: null). Chat: {"content":
        [{"token", "logprob", "bytes", "top_logprobs": [...]}]}. Completions:
        {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}],
        "text_offset"}, offsets in bytes of the choice's text, counted on across a
        stream's chunks (with echo the prompt's first token has null values, and a
        BOS put before a string prompt takes no room in the text)."""
        if self.top_logprobs is None or logprobs is None:
            return None
        token_bytes = self.server.engine.token_bytes
        if self.chat:
            def entry(token_id, logprob):
                b = token_bytes(token_id)
                return {"token": _text(b), "logprob": logprob, "bytes": list(b)}
            return {"content": [{**entry(lp.id, lp.logprob), "top_logprobs": [entry(*t) for t in lp.top]}
                                for lp in logprobs]}
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for lp in logprobs:
            b = token_bytes(lp.id)
            out["tokens"].append(_token_key(b))
            out["token_logprobs"].append(lp.logprob)
            out["text_offset"].append(self.text_offset[index])
            first = lp.logprob is None  # the prompt's first token (echo)
            prompt = self.prompts[index // self.per]
            unseen = (first and prompt.added_bos) or isinstance(lp, _EndOfText)
            prefixed = self.echo and self.entries[index] in prompt.prefixed
            self.entries[index] += 1
            self.text_offset[index] += 0 if unseen else len(b) - prefixed
            if first:
                out["top_logprobs"].append(None)
                continue
            top = {}
            for token_id, logprob in lp.top:  # should two tokens spell one name, the likelier
                top.setdefault(_token_key(token_bytes(token_id)), logprob)
            out["top_logprobs"].append(top)
        return out

    def _choice(self, index, text, finish, chunk, message=None, logprobs=None):
        """Choice index of text; message: a chat reply's message made by chat_tools_reply
        instead; logprobs: its tokens' Logprobs."""
        lp = self._logprobs(index, logprobs)
        if not self.chat:
            return {"index": index, "text": text, "logprobs": lp, "finish_reason": finish}
        if chunk:  # a piece's delta holds its text, "" too; the last chunk's is empty
            return {"index": index, "delta": {} if finish else {"content": text}, "logprobs": lp,
                    "finish_reason": finish}
        return {"index": index, "message": {"role": "assistant", **(message or {"content": text})}, "logprobs": lp,
                "finish_reason": finish}

    def response(self):
        """The whole answer (blocks until every choice's generation ends)."""
        results = []
        try:
            for _, stream in self._choices():
                for _ in stream:
                    pass
                results.append(stream.result)
        except BitnetError as e:  # one choice failed: so did the request
            self.cancel()
            raise ApiError(500, str(e), type="server_error") from None
        choices = []
        for i, r in enumerate(results):
            message, called = chat_tools_reply(r.text, self._reply_id(i)) if self.tools else (None, False)
            text, logprobs = self._echoed(i, r.text, r.logprobs, r.eog_logprob)
            choices.append(self._choice(i, text, "tool_calls" if called else _FINISH[r.finish_reason], False,
                                        message, logprobs))
        return {**self._head(False), "choices": choices, "usage": self._usage(results)}

    def _echoed(self, i, text, logprobs, eog=None):
        """Choice i's text and logprobs with its prompt's before them, and the end-of-generation
        token it ended with (eog) after them, with echo."""
        if not self.echo:
            return text, logprobs
        p = self.prompts[i // self.per]
        if logprobs is None:
            return p.text + text, None
        return p.text + text, p.logprobs + logprobs + ([_EndOfText(*eog)] if eog else [])

    def events(self):
        """The answer as server-sent events, "data: [DONE]" last (blocking iterator): each
        choice's chunks, one choice after another, then the usage of all."""
        head = self._head(True)
        results = []
        try:
            for i, stream in self._choices():
                if self.chat:  # a reply that may call tools opens with a null content, as OpenAI's does
                    yield _sse({**head, "choices": [{"index": i, "delta": {"role": "assistant",
                                                                           "content": None if self.tools else ""},
                                                     "logprobs": None, "finish_reason": None}]})
                if self.echo:  # the prompt first
                    text, logprobs = self._echoed(i, "", None if self.top_logprobs is None else [])
                    yield _sse({**head, "choices": [self._choice(i, text, None, True, logprobs=logprobs)]})
                for piece in stream:
                    logprobs = [] if piece.logprob is None else [piece.logprob]
                    if (piece.text or logprobs) and not self.tools:  # with tools the reply is known only whole
                        yield _sse({**head, "choices": [self._choice(i, piece.text, None, True, logprobs=logprobs)]})
                r = stream.result
                results.append(r)
                if self.echo and self.top_logprobs is not None and r.eog_logprob:
                    yield _sse({**head, "choices": [self._choice(i, "", None, True,
                                                                 logprobs=[_EndOfText(*r.eog_logprob)])]})
                finish = _FINISH[r.finish_reason]
                if self.tools and (r.text or r.logprobs):
                    delta, called = chat_tools_reply(r.text, self._reply_id(i), delta=True)
                    finish = "tool_calls" if called else finish
                    yield _sse({**head, "choices": [{"index": i, "delta": delta,
                                                     "logprobs": self._logprobs(i, r.logprobs),
                                                     "finish_reason": None}]})
                yield _sse({**head, "choices": [self._choice(i, "", finish, True)]})
        except BitnetError as e:  # the status line has gone: OpenAI's error event
            self.cancel()
            yield _sse(ApiError(500, str(e), type="server_error").body)
            return
        if self.include_usage:
            yield _sse({**head, "choices": [], "usage": self._usage(results)})
        yield "data: [DONE]\n\n"
