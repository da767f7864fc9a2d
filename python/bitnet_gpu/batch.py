"""BatchEngine: many generations at once on one backend (the C library's bn_batch).

Requests from any thread join a queue; a scheduler thread puts them into the
batch's free slots and runs its steps, each one forward pass over every active
slot (continuous batching: requests join and leave between steps), and hands
each request's text to its stream. The step runs in C without the GIL. What a
slot keeps after its request (the prompt cache) makes a conversation's next
turn feed only its new tokens, as in `bitnet-gpu serve`.
"""
import codecs
import collections
import ctypes
import os
import queue
import threading
import time
import warnings
from typing import Optional, Union

from . import _native as N
from ._native import lib
from .engine import (BitnetError, Completion, Logprob, Model, Piece, Regex, Stream, Timings, _check, _str,
                     json_schema_text)

_FINISH = {N.STOP_LENGTH: "length", N.STOP_EOG: "eog", N.STOP_CONTEXT: "context", N.STOP_STRING: "stop"}


class _Job:
    """One request: what it asks, in the C library's types (converted here, in
    the caller's thread, where a bad argument raises), and its stream's queue."""

    def __init__(self, ids, max_tokens, sp, stop, cache_prompt, json_schema, top_logprobs, emit, score=False):
        self.ids, self.max_tokens, self.sp, self.cache_prompt = list(ids), max_tokens, sp, cache_prompt
        self.top_logprobs = top_logprobs  # None: no logprobs
        self.logprobs = None if top_logprobs is None else []
        self.score = score  # the prompt's logprobs too (bn_request.prompt_logprobs), into prompt_logprobs
        self.prompt_logprobs = None
        self.eog_logprob = None  # Completion.eog_logprob
        self.json_schema = json_schema_text(json_schema)
        self.c_ids = (ctypes.c_int32 * len(self.ids))(*self.ids)
        # A stop string that is not valid UTF-8 (a lone surrogate) can never match
        # the text, as with Engine; "surrogatepass" keeps it from raising.
        stops = [s.encode("utf-8", "surrogatepass") for s in ([stop] if isinstance(stop, str) else stop or []) if s]
        self.c_stops, self.n_stops = (ctypes.c_char_p * max(len(stops), 1))(*stops), len(stops)
        self.emit = emit  # Piece, Completion or an exception, then None
        self.cancelled = False
        self.decoder = codecs.getincrementaldecoder("utf-8")("bitnet-bytewise")  # engine.py
        self.text, self.tokens = "", []
        self.arrived = time.perf_counter()
        self.first = None  # when the first token came

    def finish(self, ev_stop, n_prompt, n_gen, n_cached):
        self.text_tail()
        now = time.perf_counter()
        first = self.first or now
        t = Timings(0.0, 1e3 * (first - self.arrived), 1e3 * (now - first), n_prompt - n_cached, n_gen, n_cached)
        finish = "cancelled" if ev_stop is None else _FINISH[ev_stop]
        self.emit(Completion(self.text, self.tokens, self.ids, finish, t, logprobs=self.logprobs,
                             eog_logprob=self.eog_logprob))
        self.emit(None)

    def text_tail(self):
        tail = self.decoder.decode(b"", final=True)
        if tail:
            self.text += tail
            self.emit(Piece(tail, -1))


class BatchStream(Stream):
    """A BatchEngine's generation as it comes: Stream's interface (iterate for
    Piece(text, id); `result`; cancel(), close()), fed by the scheduler thread."""

    def __init__(self, engine, job_args, result=None, score=False):
        self.result: Optional[Completion] = None
        self._queue = queue.SimpleQueue()
        self._done = False
        self._job = None
        if engine is None:  # nothing to generate: result is all there is
            self._queue.put(result)
            self._queue.put(None)
            return
        self._job = _Job(*job_args, emit=self._queue.put, score=score)
        engine._submit(self._job)

    def cancel(self):
        """Stops the generation before the next step, without waiting (any thread)."""
        if self._job:
            self._job.cancelled = True

    def close(self):
        """Stops the generation and waits for its end (an error it ended with is dropped, as Stream drops it)."""
        self.cancel()
        try:
            for _ in self:
                pass
        except BitnetError:
            pass

    def __del__(self):
        self.cancel()


class BatchEngine(Model):
    """A model file with a bn_batch of `slots` sequence slots of n_ctx tokens each.

    BatchEngine(model_path=None (default_model_path()), slots=4, backend="auto"|"cpu"|"cuda"|"reference",
    threads=None, n_ctx=None (the model's, per slot), lm_head_q8=False,
    tokenizer=None, cpu_kernels=None, chat_template=None, lookup=0, draft_model=None, draft=16,
    draft_p_min=0.75).

    generate() and chat() take Engine's arguments and give the same results
    (bit for bit on the CPU; the tokens of a greedy or seeded generation are
    Engine's), but any number of threads may call them at once: up to `slots`
    generations run together, one forward pass a step for all, and the others
    wait their turn. The prompt cache is the batch's (bitnet.h): a request
    reuses the K/V of the slot that holds the longest start of its prompt, when
    that is at least half of it.
    Completion.timings: prefill_ms from the request's arrival (its wait
    included) to its first token, decode_ms from there to its end (backend_ms 0).
    lookup=N: prompt lookup decoding for every generation (bitnet.h:
    bn_batch_set_lookup): the same tokens, fewer forward passes where texts repeat
    themselves; lookup_stats() says what it did (drafted, accepted, passes).
    draft_model="small.gguf": speculative decoding with that model drafting
    instead (bitnet.h: bn_batch_set_draft; `serve -md FILE`), on the same
    backend, threads and kernels, up to `draft` tokens a pass (0: off);
    lookup_stats() counts its drafts. A draft model that fails stops drafting,
    and the requests go on without it: draft_note then says why, and a
    RuntimeWarning says it once.
    close() or a `with` block frees it (its scheduler thread holds it, so
    garbage collection does not).
    """

    def __init__(self, model_path: Optional[Union[str, os.PathLike]] = None, slots: int = 4, backend: str = "auto",
                 threads: Optional[int] = None, n_ctx: Optional[int] = None, lm_head_q8: bool = False,
                 tokenizer: Optional[Union[str, os.PathLike]] = None, cpu_kernels: Optional[str] = None,
                 chat_template: Optional[str] = None, lookup: int = 0,
                 draft_model: Optional[Union[str, os.PathLike]] = None, draft: int = 16, draft_p_min: float = 0.75):
        self._e = self._b = self._draft_e = None
        self._broken = None  # the exception that ended the scheduler thread
        if draft_model is not None and lookup:
            raise ValueError("lookup and draft_model both draft tokens: choose one")
        self._load(model_path, tokenizer, chat_template)
        session = N.SessionParams(backend=backend.encode(), n_threads=threads or 0, n_ctx=n_ctx or 0,
                                  lm_head_q8=lm_head_q8, cpu_kernels=None if cpu_kernels is None else cpu_kernels.encode())
        params = N.BatchParams(session, n_slots=slots)
        b, err, draft_e = ctypes.c_void_p(), N.Error(), ctypes.c_void_p()
        rc = lib.bn_batch_create(self._e, ctypes.byref(params), ctypes.byref(b), ctypes.byref(err))
        rc = rc or lib.bn_batch_set_lookup(b, int(lookup), ctypes.byref(err))
        if rc == 0 and draft_model is not None:
            tok = None if tokenizer is None else os.fsencode(tokenizer)
            session.n_ctx = 0  # the batch's context, or the draft model's where shorter
            rc = lib.bn_engine_load(os.fsencode(draft_model), tok, ctypes.byref(draft_e), ctypes.byref(err)) or \
                lib.bn_batch_set_draft(b, draft_e, ctypes.byref(session), int(draft), float(draft_p_min),
                                       ctypes.byref(err))
        if rc != 0:
            lib.bn_batch_free(b)
            lib.bn_engine_free(draft_e)
            lib.bn_engine_free(self._e)
            self._e = None
            _check(rc, err)
        self._draft_e = draft_e
        self._b = b
        self.slots = lib.bn_batch_n_slots(self._b)
        self.n_ctx = lib.bn_batch_n_ctx(self._b)
        self.backend = _str(lib.bn_batch_backend(self._b))
        self.backend_note = _str(lib.bn_batch_backend_note(self._b))
        self._shares_prompts = lib.bn_batch_shares_prompts(self._b)
        self._cond = threading.Condition()
        self._queue = collections.deque()  # jobs waiting for a slot
        self._active = {}  # slot -> job
        self._closing = False
        self._lookup = (0, 0, 0)  # the batch's lookup statistics after the last step
        self.draft_note = None  # why draft_model stopped drafting (bitnet.h: bn_batch_draft_note)
        self._thread = threading.Thread(target=self._loop, name="bitnet-batch", daemon=True)
        self._thread.start()

    # ---- requests ----
    def _start_sampled(self, ids, max_tokens, stop, stream, sp, cache_prompt=True, json_schema=None,
                       logprobs=None):
        if not self._b:
            raise BitnetError("the engine is closed")
        n = 0 if max_tokens is None else int(max_tokens)  # 0: until the context is full
        if max_tokens is not None and n <= 0:  # as Engine: nothing to generate
            done = Completion("", [], list(ids), "length", Timings(0.0, 0.0, 0.0, len(ids), 0, 0),
                              logprobs=None if logprobs is None else [])
            return BatchStream(None, None, done) if stream else done
        s = BatchStream(self, (ids, n, sp, stop, cache_prompt, json_schema, logprobs))
        if stream:
            return s
        for _ in s:
            pass
        return s.result

    def _score(self, ids, top_logprobs):
        """A request with the prompt's logprobs (bn_request.prompt_logprobs) and one greedy token,
        which is dropped."""
        if not self._b:
            raise BitnetError("the engine is closed")
        s = BatchStream(self, (ids, 1, self.sampling(greedy=True), None, True, None, top_logprobs), score=True)
        for _ in s:
            pass
        if s._job.prompt_logprobs is None:  # cancelled before its first step: the engine closed
            raise BitnetError("the engine is closed")
        return s._job.prompt_logprobs

    def _submit(self, job):
        with self._cond:
            if self._closing:
                raise BitnetError("the engine is closed")
            if self._broken is not None:
                raise BitnetError(f"the engine's scheduler failed: {self._broken!r}")
            self._queue.append(job)
            self._cond.notify()

    # ---- the scheduler thread ----
    def _admit(self, job):
        """Puts job into a free slot (the lock is held); a refusal ends it with the C error."""
        req = N.Request(prompt=job.c_ids, n_prompt=len(job.ids), max_tokens=job.max_tokens, sampling=job.sp,
                        stop=job.c_stops, n_stop=job.n_stops, no_prefix_cache=not job.cache_prompt,
                        json_schema=None if isinstance(job.json_schema, Regex) else job.json_schema,
                        regex=job.json_schema if isinstance(job.json_schema, Regex) else None,
                        logprobs=job.logprobs is not None,
                        top_logprobs=job.top_logprobs or 0, prompt_logprobs=job.score)
        err = N.Error()
        slot = lib.bn_batch_add(self._b, ctypes.byref(req), ctypes.byref(err))
        if slot < 0:
            job.emit(BitnetError(err.msg.decode("utf-8", "replace")))
            job.emit(None)
        else:
            self._active[slot] = job

    def _admit_queued(self):
        """Queued jobs into free slots, in order (the lock is held), but one whose prompt a running
        job is still feeding waits, letting the jobs behind it pass, until that one has begun
        generating: then it copies the prompt's K/V instead of computing them again
        (bn_batch_shares_prompts), so that the n choices of one request feed their prompt once."""
        waiting = []
        while self._queue and lib.bn_batch_n_free(self._b) > 0:
            job = self._queue.popleft()
            if self._shares_prompts and job.cache_prompt and any(
                    a.first is None and a.ids == job.ids for a in self._active.values()):
                waiting.append(job)
            else:
                self._admit(job)
        self._queue.extendleft(reversed(waiting))

    def _loop(self):
        try:
            self._steps()
        except BaseException as e:  # noqa: B902 - every waiting stream hears of it
            with self._cond:
                self._broken = e
                for job in [*self._active.values(), *self._queue]:
                    job.emit(BitnetError(f"the engine's scheduler failed: {e!r}"))
                    job.emit(None)
                self._active.clear()
                self._queue.clear()

    def _steps(self):
        events, n_events, err = ctypes.POINTER(N.BatchEvent)(), ctypes.c_int(), N.Error()
        while True:
            with self._cond:
                for slot, job in list(self._active.items()):  # cancelled: their slots free at once
                    if job.cancelled or self._closing:
                        lib.bn_batch_remove(self._b, slot)
                        del self._active[slot]
                        job.finish(None, len(job.ids), len(job.tokens), 0)
                while self._queue and (self._closing or self._queue[0].cancelled):
                    job = self._queue.popleft()
                    job.finish(None, len(job.ids), 0, 0)
                if self._closing:
                    return
                self._admit_queued()
                if not self._active:
                    self._cond.wait()
                    continue
            rc = lib.bn_batch_step(self._b, ctypes.byref(events), ctypes.byref(n_events), ctypes.byref(err))
            lookup = lib.bn_batch_lookup_stats(self._b)  # read by this thread, which owns the batch
            note = _str(lib.bn_batch_draft_note(self._b))
            if note and not self.draft_note:
                warnings.warn(f"bitnet_gpu: {note}", RuntimeWarning)
            with self._cond:
                self._lookup = (lookup.drafted, lookup.accepted, lookup.passes)
                self.draft_note = note
                if rc != 0:  # a backend failure ends every request
                    e = BitnetError(err.msg.decode("utf-8", "replace"))
                    for slot, job in self._active.items():
                        lib.bn_batch_remove(self._b, slot)
                        job.emit(e)
                        job.emit(None)
                    self._active.clear()
                    continue
                for i in range(n_events.value):
                    self._deliver(events[i])

    def _deliver(self, ev):
        job = self._active[ev.slot]
        job.first = job.first or time.perf_counter()
        if job.score and job.prompt_logprobs is None:  # the prompt's, at its first event
            job.prompt_logprobs = [None] + [Logprob(*e) for e in N.scored_pairs(job.ids, ev.prompt_logprob,
                                                                                   ev.prompt_top, ev.n_top)]
        if ev.eog and job.logprobs is not None:
            job.eog_logprob = Logprob(ev.token, ev.logprob, N.top_pairs(ev.top, ev.n_top))
        text = job.decoder.decode(ctypes.string_at(ev.text, ev.len)) if ev.len else ""
        if ev.token >= 0 and not ev.eog:
            job.tokens.append(ev.token)
            job.text += text
            logprob = None
            if job.logprobs is not None:
                logprob = Logprob(ev.token, ev.logprob, N.top_pairs(ev.top, ev.n_top))
                job.logprobs.append(logprob)
            job.emit(Piece(text, ev.token, logprob))
        elif text:
            job.text += text
            job.emit(Piece(text, -1))
        if ev.done:
            lib.bn_batch_remove(self._b, ev.slot)
            del self._active[ev.slot]
            job.finish(ev.stop, ev.n_prompt, ev.n_gen, ev.n_cached)

    def lookup_stats(self):
        """lookup=N or draft_model: (tokens drafted, of them taken, verifying passes) since the engine was made."""
        with self._cond:
            return self._lookup

    # ---- lifetime ----
    def close(self):
        """Ends the running and waiting requests ("cancelled"), then frees the batch and the model."""
        with self._cond:
            first = not self._closing
            self._closing = True
            self._cond.notify()
        self._thread.join()
        if first:  # one caller frees, whoever else closes at the same time
            lib.bn_batch_free(self._b)
            lib.bn_engine_free(self._draft_e)
            lib.bn_engine_free(self._e)
            self._b = self._e = self._draft_e = None
