"""Engine: a model, its tokenizer and one session of the C library.

Everything that touches the model runs in C (tokenizer, chat template,
sampling, the forward pass). This layer converts arguments, collects the
tokens the C generation loop reports, cuts the text at stop strings, and turns
C errors into BitnetError.
"""
import atexit
import codecs
import ctypes
import json
import os
import queue
import threading
import uuid
import weakref
from dataclasses import dataclass, replace
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import _native as N
from ._native import lib


# Engines made with cpu_start, closed before the interpreter exits: closing waits
# for a GPU backend still opening on its thread, which must not meet the CUDA
# runtime's own exit handlers half-way (bitnet.h, bn_backend_prewarm_wait).
_cpu_start_engines = weakref.WeakSet()
atexit.register(lambda: [e.close() for e in list(_cpu_start_engines)])


class BitnetError(Exception):
    """A failure reported by the C library; str(e) is its message."""


def _check(rc, err):
    if rc != 0:
        raise BitnetError(err.msg.decode("utf-8", "replace"))


def _str(s):
    return None if s is None else s.decode("utf-8", "replace")


class ModelInfo(NamedTuple):
    arch: str
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    file_bytes: int


@dataclass(frozen=True)
class Timings:
    backend_ms: float  # the backend's opening (weights to it); after a cpu_start move, the moved-to one's
    prefill_ms: float  # the prompt's forward pass
    decode_ms: float  # every decode step
    prompt_tokens: int  # fed by this call: the prompt less its cached_tokens
    generated_tokens: int  # tokens sampled, an end-of-generation token included
    cached_tokens: int = 0  # the prompt's start kept from the call before (cache_prompt)

    @property
    def prompt_tok_s(self):
        return 1e3 * self.prompt_tokens / self.prefill_ms if self.prefill_ms > 0 else 0.0

    @property
    def ms_per_token(self):  # the first token comes from the prefill, as in the CLI
        steps = max(self.generated_tokens - 1, 0)
        return self.decode_ms / steps if steps else 0.0

    @property
    def decode_tok_s(self):
        return 1e3 / self.ms_per_token if self.ms_per_token > 0 else 0.0


class Logprob(NamedTuple):
    """A generated token's log-probability under the model (the log-softmax of
    its raw logits, before temperature, penalties or truncation, as OpenAI's
    logprobs), and the top_logprobs likeliest tokens' as (id, logprob) pairs,
    most likely first."""

    id: int
    logprob: float
    top: List[Tuple[int, float]]


@dataclass(frozen=True)
class Completion:
    text: str
    ids: List[int]  # the generated tokens, as `bitnet-gpu generate --json`'s generated_ids
    prompt_ids: List[int]
    # "length" (max_tokens made), "eog" (the model ended its turn), "context" (the
    # context is full), "stop" (a stop string; text ends before it) or "cancelled"
    # (Stream.close() or Engine.close() during the generation); with tools,
    # "tool_calls" when the reply calls them
    finish_reason: str
    timings: Timings
    # chat(tools=...): the calls, in OpenAI's shape ([{"id", "type": "function",
    # "function": {"name", "arguments"}}]; text is then ""), or None
    tool_calls: Optional[List[dict]] = None
    # logprobs=True: a Logprob for each of ids, or None
    logprobs: Optional[List[Logprob]] = None


class Piece(NamedTuple):
    """One step of a stream: the text it releases and the token it came with.

    id is -1 when the text continues the previous token (a long token, or text
    held back until it could no longer start a stop string). Text may be empty
    (half of a character). All texts joined are the completion's text, and the
    ids other than -1 are its ids. logprob: the token's Logprob (logprobs=True
    and id >= 0), else None.
    """

    text: str
    id: int
    logprob: Optional[Logprob] = None


_FINISH = {N.STOP_LENGTH: "length", N.STOP_EOG: "eog", N.STOP_CONTEXT: "context", N.STOP_CALLER: "stop"}


class _Run:
    """One call of bn_session_generate: the token callback's state."""

    def __init__(self, stop, emit=None, logprobs=False):
        self.stops = [s for s in ([stop] if isinstance(stop, str) else stop or []) if s]
        self.emit = emit  # called with each Piece (streaming)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""  # decoded so far
        self.sent = 0  # text[:sent] has been released
        self.ids = []
        self.logprobs = [] if logprobs else None  # read from session, set by _generate
        self.session = None
        self.stopped = False  # a stop string was found
        self.cancel = False  # the stream's reader went away
        self.error = None  # an exception raised inside the callback
        self.fn = N.TOKEN_FN(self._on_token)  # kept alive as long as the run

    def _on_token(self, _user, tid, text, n):
        try:
            if self.stopped or self.cancel:
                return 1
            logprob = None
            if tid >= 0:
                self.ids.append(tid)
                if self.logprobs is not None:
                    logprob = self._logprob(tid)
                    self.logprobs.append(logprob)
            self.text += self.decoder.decode(ctypes.string_at(text, n))
            end = self._releasable()
            if self.emit:
                self.emit(Piece(self.text[self.sent : end], tid, logprob))
            self.sent = end
            return 1 if self.stopped or self.cancel else 0
        except BaseException as e:  # noqa: B902 - raised again after the C call returns
            self.error = e
            return 1

    def _logprob(self, tid):
        value, top = ctypes.c_float(), ctypes.POINTER(N.TokenLogprob)()
        n = lib.bn_session_token_logprobs(self.session, ctypes.byref(value), ctypes.byref(top))
        return Logprob(tid, value.value, N.top_pairs(top, n))

    def _releasable(self):
        """How much of the text can be released; sets stopped at a stop string."""
        if not self.stops:
            return len(self.text)
        longest = max(map(len, self.stops))
        start = max(self.sent - longest + 1, 0)
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            self.text = self.text[: min(hits)]
            return len(self.text)
        # Hold back the longest tail that could still become a stop string.
        for k in range(min(longest - 1, len(self.text)), 0, -1):
            if any(s.startswith(self.text[-k:]) for s in self.stops):
                return len(self.text) - k
        return len(self.text)

    def finish(self, prompt_ids, t, cached):
        if self.error is not None:
            raise self.error
        if not self.stopped:  # the end of the text: nothing more can complete a stop string
            self.text += self.decoder.decode(b"", final=True)
            if self.emit and len(self.text) > self.sent:
                self.emit(Piece(self.text[self.sent :], -1))
            self.sent = len(self.text)
        timings = Timings(t.backend_ms, t.prefill_ms, t.decode_ms, t.n_prompt, t.n_gen, cached)
        finish = "cancelled" if self.cancel and not self.stopped else _FINISH[t.stop]
        return Completion(self.text, self.ids, list(prompt_ids), finish, timings, logprobs=self.logprobs)


class Stream:
    """The pieces of a generation as they come: iterate for Piece(text, id).

    The C generation runs on a worker thread (it reports tokens through a
    callback, so the caller cannot pull them one by one). After the last piece,
    `result` is the Completion. close() (or leaving a `with` block, or dropping
    the stream) stops the generation at the next token.
    """

    _END = object()

    def __init__(self, engine, prompt_ids, max_tokens, sampling, stop, cache_prompt=True, schema=None,
                 logprobs=None):
        self.result: Optional[Completion] = None
        self._queue = queue.SimpleQueue()
        self._run = _Run(stop, emit=self._queue.put, logprobs=logprobs is not None)
        self._done = False
        # The worker holds no reference to the Stream, so a stream its reader
        # drops is collected and __del__ stops the generation. Not a daemon: an
        # interpreter exiting under a generation waits for it (max_tokens at most).
        args = (engine, self._run, self._queue, prompt_ids, max_tokens, sampling, cache_prompt, schema, logprobs)
        self._thread = threading.Thread(target=Stream._work, args=args, name="bitnet-stream")
        self._thread.start()

    @staticmethod
    def _work(engine, run, q, prompt_ids, max_tokens, sampling, cache_prompt, schema, logprobs):
        try:
            q.put(engine._generate(run, prompt_ids, max_tokens, sampling, cache_prompt, schema, logprobs))
        except BaseException as e:  # noqa: B902 - handed to the reader
            q.put(e)
        q.put(Stream._END)

    def __iter__(self) -> Iterator[Piece]:
        return self

    def __next__(self) -> Piece:
        while not self._done:
            item = self._queue.get()
            if isinstance(item, Piece):
                return item
            if isinstance(item, Completion):
                self.result = item
            elif isinstance(item, BaseException):
                self._done = True
                raise item
            else:
                self._done = True
        raise StopIteration

    def cancel(self):
        """Stops the generation at its next token, without waiting (any thread)."""
        self._run.cancel = True

    def close(self):
        """Stops the generation (at its next token) and waits for it to end."""
        self.cancel()
        self._thread.join()
        while not self._queue.empty():  # what the ended worker left: the result, if any
            item = self._queue.get()
            if isinstance(item, Completion):
                self.result = item
        self._done = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self._run.cancel = True  # no join here: a finalizer must not block


Prompt = Union[str, Sequence[int]]


def json_schema_text(json_schema) -> Optional[bytes]:
    """generate()'s json_schema as the C library takes it: None, or a JSON
    Schema's text (True: any JSON object), checked by the library (BitnetError
    when it cannot follow it). bytes are such a text already, checked."""
    if json_schema is None or json_schema is False:
        return None
    if isinstance(json_schema, bytes):
        return json_schema
    text = '{"type": "object"}' if json_schema is True else (
        json_schema if isinstance(json_schema, str) else json.dumps(json_schema))
    data, err = text.encode("utf-8", "surrogatepass"), N.Error()
    _check(lib.bn_json_schema_check(data, len(data), ctypes.byref(err)), err)
    return data


def chat_tools_request(body: dict, response_schema=None) -> Tuple[List[dict], Optional[str]]:
    """OpenAI function calling, as `bitnet-gpu serve` does it (the C library's
    bn_tools_chat_request): an OpenAI chat request body's conversation as the
    model reads it ([{"role", "content"}], for chat_prompt: tool results and
    earlier calls as text, the tools listed in the system message) and the JSON
    Schema its reply is held to (None when no tool may be called). response_schema:
    what an answer that calls no tool is held to, as generate()'s json_schema.
    BitnetError names the field at fault."""
    try:
        request = json.dumps(body, allow_nan=False).encode()
    except ValueError:  # NaN or Infinity: not JSON, as the C server reads bodies
        raise BitnetError("the request is not valid JSON (NaN or Infinity)") from None
    schema = json_schema_text(response_schema)
    messages, reply_schema, err = ctypes.c_void_p(), ctypes.c_void_p(), N.Error()
    rc = lib.bn_tools_chat_request(request, schema, ctypes.byref(messages), ctypes.byref(reply_schema),
                                   ctypes.byref(err))
    conversation, reply_schema = N.take_text(messages), N.take_text(reply_schema)
    _check(rc, err)
    return json.loads(conversation), reply_schema


def chat_tools_reply(text: str, reply_id: str, delta: bool = False) -> Tuple[dict, bool]:
    """The assistant message for the whole text of a reply held to
    chat_tools_request's schema: {"content": ...} or {"content": None,
    "tool_calls": [...]} (ids made from reply_id; with delta, each call has its
    "index", as in a stream's chunk), and whether it calls tools."""
    data, called = text.encode("utf-8", "surrogatepass"), ctypes.c_int()
    message = N.take_text(lib.bn_tools_chat_reply(data, len(data), reply_id.encode(), delta, ctypes.byref(called)))
    if message is None:
        raise MemoryError("bn_tools_chat_reply")
    return json.loads(message), bool(called.value)


def _top_logprobs(logprobs, top_logprobs) -> Optional[int]:
    """generate()'s logprobs and top_logprobs as _start takes them: None (off) or the alternatives' count."""
    if not isinstance(top_logprobs, int) or isinstance(top_logprobs, bool) or top_logprobs < 0:
        raise BitnetError(f"top_logprobs must be an integer >= 0 (got {top_logprobs!r})")
    return top_logprobs if logprobs or top_logprobs else None


class Model:
    """A model file and its tokenizer (a bn_engine): what Engine (one session)
    and BatchEngine (continuous batching, batch.py) share. Not made on its own."""

    def _load(self, model_path, tokenizer):
        self.model_path = os.fspath(model_path)
        err = N.Error()
        e = ctypes.c_void_p()
        tok = None if tokenizer is None else os.fsencode(tokenizer)
        _check(lib.bn_engine_load(os.fsencode(self.model_path), tok, ctypes.byref(e), ctypes.byref(err)), err)
        self._e = e
        i = lib.bn_engine_info(self._e)
        self.info = ModelInfo(_str(i.arch), *(getattr(i, f) for f in ModelInfo._fields[1:]))
        self.load_ms = lib.bn_engine_load_ms(self._e)
        self.add_bos = bool(lib.bn_engine_add_bos(self._e))  # generate() starts a text with BOS

    def _handle(self):
        if not self._e:
            raise BitnetError("the engine is closed")
        return self._e

    # ---- tokens ----
    def tokenize(self, text: str, bos: bool = True, special: bool = False) -> List[int]:
        """Text -> ids. bos: start with BOS; special: "<|eot_id|>" in the text is that token."""
        ids, n, err = ctypes.POINTER(ctypes.c_int32)(), ctypes.c_size_t(), N.Error()
        rc = lib.bn_engine_tokenize(
            self._handle(), text.encode(), bos, special, ctypes.byref(ids), ctypes.byref(n), ctypes.byref(err)
        )
        _check(rc, err)
        return N.take_ids(ids, n)

    def detokenize(self, ids: Sequence[int]) -> str:
        """Ids -> text (special tokens as their text; invalid UTF-8 becomes U+FFFD)."""
        arr = (ctypes.c_int32 * len(ids))(*ids)
        text, n, err = ctypes.c_void_p(), ctypes.c_size_t(), N.Error()
        _check(lib.bn_engine_detokenize(self._handle(), arr, len(ids), ctypes.byref(text), ctypes.byref(n), ctypes.byref(err)), err)
        try:
            return ctypes.string_at(text, n.value).decode("utf-8", "replace")
        finally:
            N.libc_free(text)

    def chat_prompt(self, messages: Sequence[dict]) -> List[int]:
        """The ids chat() feeds: the model's chat template over the whole conversation.

        messages: OpenAI's chat messages ([{"role", "content"}, ...]), read as
        `bitnet-gpu serve` reads a request's (chat_tools_request): "content" a
        string or a list of text parts, "developer" as "system", earlier tool
        calls and "tool" results as text. BitnetError says what is wrong.
        """
        conversation, _ = chat_tools_request({"messages": list(messages)})
        return self._template_ids(conversation)

    def _template_ids(self, conversation: Sequence[dict]) -> List[int]:
        """The chat template over a conversation chat_tools_request has read."""
        enc = [(m["role"].encode(), m["content"].encode()) for m in conversation]
        arr = (N.ChatMsg * len(enc))(*enc)
        ids, n, err = ctypes.POINTER(ctypes.c_int32)(), ctypes.c_size_t(), N.Error()
        _check(lib.bn_engine_chat_prompt(self._handle(), arr, len(enc), ctypes.byref(ids), ctypes.byref(n), ctypes.byref(err)), err)
        return N.take_ids(ids, n)

    # ---- generation ----
    def sampling(self, temperature=None, top_k=None, top_p=None, min_p=None, repeat_penalty=None,
                 repeat_last_n=None, seed=None, greedy=False) -> N.Sampling:
        """The C sampling parameters: the library's defaults (bn_sampling_default)
        with the given ones replaced, checked by the library."""
        sp = lib.bn_sampling_default()
        given = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                     repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n, seed=seed)
        for name, value in given.items():
            if value is not None:
                setattr(sp, name, value)
        if greedy:
            sp.temperature = 0.0
        err = N.Error()
        _check(lib.bn_sampling_validate(ctypes.byref(sp), ctypes.byref(err)), err)
        return sp

    def token_bytes(self, token_id: int) -> bytes:
        """A token's bytes in the vocabulary (a piece of a UTF-8 character, for some)."""
        n = ctypes.c_size_t()
        p = lib.bn_engine_token_bytes(self._handle(), token_id, ctypes.byref(n))
        if not p:
            raise BitnetError(f"token id {token_id} is outside the vocabulary (0..{self.info.n_vocab - 1})")
        return ctypes.string_at(p, n.value)

    def generate(self, prompt: Prompt, max_tokens: Optional[int] = 128, *, stop=None, stream: bool = False,
                 cache_prompt: bool = True, json_schema=None, logprobs: bool = False, top_logprobs: int = 0,
                 **sampling) -> Union[Completion, Stream]:
        """Completes prompt (text, BOS added as the vocabulary asks, or token ids).

        max_tokens: None = until the context is full. stop: a string or a list;
        generation ends when the text contains one, and the text ends before it.
        Sampling (keywords): temperature, top_k, top_p, min_p, repeat_penalty,
        repeat_last_n, seed, greedy (the library's defaults: temperature 0.8,
        top-k 40, top-p 0.95, min-p 0.05, no repeat penalty, seed 42).
        stream=True returns a Stream of Piece(text, id) instead of a Completion.
        cache_prompt=False feeds the whole prompt (see the class).
        json_schema: True for one JSON object (OpenAI's json_object), or a JSON
        Schema (a dict or its JSON text) the text's value must satisfy, within
        what the library supports (README: Structured replies); the reply ends
        as the value closes. A schema it cannot follow raises BitnetError at once.
        logprobs=True: the Completion's logprobs (and each Piece's logprob) give
        every generated token's log-probability, with its top_logprobs (0..20)
        likeliest alternatives' (a top_logprobs above 0 implies logprobs). Each
        step then brings back its whole row of logits, which costs time on a GPU.
        """
        ids = self.tokenize(prompt, bos=self.add_bos) if isinstance(prompt, str) else list(prompt)
        return self._start(ids, max_tokens, stop, stream, sampling, cache_prompt, json_schema,
                           _top_logprobs(logprobs, top_logprobs))

    def chat(self, messages: Sequence[dict], max_tokens: Optional[int] = None, *, stop=None,
             stream: bool = False, cache_prompt: bool = True, json_schema=None, logprobs: bool = False,
             top_logprobs: int = 0, tools=None, tool_choice=None, parallel_tool_calls=None,
             **sampling) -> Union[Completion, Stream]:
        """The assistant's reply to a conversation (see chat_prompt); as generate().

        tools (OpenAI's list of functions, with its tool_choice and
        parallel_tool_calls): the reply calls them or answers, held to a schema as
        `bitnet-gpu serve` holds it (chat_tools_request); messages may then hold
        earlier calls and "tool" results in OpenAI's shapes. The Completion's
        tool_calls lists the calls (finish_reason "tool_calls"), or text is the
        answer (json_schema: what an answer is held to). Not with stream or stop.
        """
        top = _top_logprobs(logprobs, top_logprobs)
        if tools is None:
            return self._start(self.chat_prompt(messages), max_tokens, stop, stream, sampling, cache_prompt,
                               json_schema, top)
        if stream:
            raise BitnetError("chat: tools with stream=True are not supported (the calls are known only whole)")
        body = {"messages": list(messages), "tools": tools}
        for name, value in (("tool_choice", tool_choice), ("parallel_tool_calls", parallel_tool_calls),
                            ("stop", stop)):
            if value is not None:
                body[name] = value  # the library refuses a stop beside tools, naming it
        answer = json_schema_text(json_schema)  # checked once: bytes pass through unchecked below
        conversation, schema = chat_tools_request(body, answer)
        done = self._start(self._template_ids(conversation), max_tokens, None, False, sampling, cache_prompt,
                           answer if schema is None else schema.encode(), top)
        if schema is None:  # tool_choice "none": a plain answer
            return done
        message, called = chat_tools_reply(done.text, "chatcmpl-" + uuid.uuid4().hex)
        if not called:
            return replace(done, text=message.get("content") or "")
        return replace(done, text="", tool_calls=message["tool_calls"], finish_reason="tool_calls")

    def _start(self, ids, max_tokens, stop, stream, sampling, cache_prompt, json_schema=None, logprobs=None):
        return self._start_sampled(ids, max_tokens, stop, stream, self.sampling(**sampling), cache_prompt,
                                   json_schema, logprobs)

    def _start_sampled(self, ids, max_tokens, stop, stream, sp, cache_prompt=True, json_schema=None,
                       logprobs=None):
        """logprobs: None (none), or how many alternatives each token's Logprob lists."""
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Engine(Model):
    """A model file loaded with one session (backend, KV cache).

    Engine(model_path, backend="auto"|"cpu"|"cuda"|"reference", threads=None (physical
    cores), n_ctx=None (the model's), lm_head_q8=False, tokenizer=None (a
    tokenizer.json instead of the GGUF's vocabulary), cpu_kernels=None,
    cpu_start=False).

    cpu_start=True: where a GPU may be present, the engine is ready at once on
    the CPU while the GPU backend opens on a thread, and moves to it between two
    tokens once it is open (bitnet.h: bn_session_params.cpu_start); backend,
    backend_note and cpu_kernels then say where it is after each generation,
    and wait_backend() waits for the move.

    One generation at a time per engine (calls from several threads take
    turns); separate engines run in parallel. Each generate() answers its
    prompt alone. With cache_prompt=True (the default) the engine keeps the KV
    cache of the longest start the prompt shares with what it was fed before
    (a chat's earlier turns) and feeds only the rest: on the CPU bit for bit
    what a fresh context gives, on CUDA within the fixtures' tolerance;
    Completion.timings.cached_tokens says how many. close() frees the model and
    the session; so do leaving a `with` block and garbage collection.
    """

    def __init__(
        self,
        model_path: Union[str, os.PathLike],
        backend: str = "auto",
        threads: Optional[int] = None,
        n_ctx: Optional[int] = None,
        lm_head_q8: bool = False,
        tokenizer: Optional[Union[str, os.PathLike]] = None,
        cpu_kernels: Optional[str] = None,
        cpu_start: bool = False,
    ):
        self._e = self._s = self._running = None  # _running: the _Run generating now, if any
        self._lock = threading.Lock()
        self._load(model_path, tokenizer)
        err = N.Error()
        params = N.SessionParams(
            backend=backend.encode(),
            n_threads=threads or 0,
            n_ctx=n_ctx or 0,
            lm_head_q8=lm_head_q8,
            cpu_kernels=None if cpu_kernels is None else cpu_kernels.encode(),
            cpu_start=cpu_start,
        )
        s = ctypes.c_void_p()
        _check(lib.bn_session_create(self._e, ctypes.byref(params), ctypes.byref(s), ctypes.byref(err)), err)
        self._s = s
        self._read_backend()
        if cpu_start:
            _cpu_start_engines.add(self)
        self.n_ctx = lib.bn_session_n_ctx(self._s)

    # ---- lifetime ----
    def close(self):
        """Frees the session and the model; a generation running stops at its next token."""
        run = self._running
        if run is not None:
            run.cancel = True
        with self._lock:
            if self._s:
                lib.bn_session_free(self._s)
            if self._e:
                lib.bn_engine_free(self._e)
            self._s = self._e = None

    def __del__(self):
        if getattr(self, "_lock", None) is not None:
            self.close()

    def _read_backend(self):
        """The session's backend now (with cpu_start it may move at any step)."""
        self.backend = _str(lib.bn_session_backend(self._s))  # "cpu", "cuda" or "reference"
        self.backend_note = _str(lib.bn_session_backend_note(self._s))  # why that one
        self.cpu_kernels = _str(lib.bn_session_cpu_kernels(self._s))  # None on a GPU

    def wait_backend(self):
        """cpu_start: waits until the backend asked for is open and moves to it (at
        once when nothing is opening); raises BitnetError where a named backend
        failed to open, as every later generation does: make a new Engine."""
        err = N.Error()
        with self._lock:
            self._handle()
            rc = lib.bn_session_wait_backend(self._s, ctypes.byref(err))
            self._read_backend()
        _check(rc, err)

    def _start_sampled(self, ids, max_tokens, stop, stream, sp, cache_prompt=True, json_schema=None,
                       logprobs=None):
        """_start with sp already built by sampling() (openai_api builds it first,
        to answer the library's checks with a 400)."""
        schema = json_schema_text(json_schema)
        n = self.n_ctx if max_tokens is None else int(max_tokens)
        if stream:
            return Stream(self, ids, n, sp, stop, cache_prompt, schema, logprobs)
        run = _Run(stop, logprobs=logprobs is not None)
        return self._generate(run, ids, n, sp, cache_prompt, schema, logprobs)

    def _generate(self, run, ids, max_tokens, sp, cache_prompt=True, schema=None, logprobs=None):
        arr = (ctypes.c_int32 * len(ids))(*ids)
        t, err = N.Timings(), N.Error()
        with self._lock:
            self._handle()
            self._running = run
            run.session = self._s
            try:
                # Every call answers its prompt alone: from an empty context, or
                # from the start of it that the session's cache holds.
                # (A prompt that cannot fit keeps nothing: its error names all of it.)
                keep = cache_prompt and len(ids) <= self.n_ctx
                kept = lib.bn_session_keep_prefix(self._s, arr, len(ids)) if keep else 0
                if not keep:
                    lib.bn_session_reset(self._s)
                rest = (ctypes.c_int32 * (len(ids) - kept))(*ids[kept:])
                rc = lib.bn_session_set_json_schema(self._s, schema, ctypes.byref(err))  # None lifts it
                rc = rc or lib.bn_session_set_logprobs(self._s, -1 if logprobs is None else logprobs, ctypes.byref(err))
                rc = rc or lib.bn_session_generate(self._s, rest, len(ids) - kept, max_tokens, ctypes.byref(sp), run.fn,
                                             None, ctypes.byref(t), ctypes.byref(err))
            finally:
                self._running = None
                self._read_backend()
        _check(rc, err)
        return run.finish(ids, t, kept)
