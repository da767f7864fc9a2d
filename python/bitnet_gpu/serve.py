"""Ray Serve deployment: one Engine per replica behind OpenAI's routes.

    serve run python/ray-serve.yaml                  # the config: replicas, resources, autoscaling
    serve run bitnet_gpu.serve:build_app model=/abs/path/model.gguf

Routes: POST /v1/chat/completions, POST /v1/completions (both with "stream":
true for server-sent events), GET /v1/models. Every response carries the
replica that answered in the X-Bitnet-Replica header. With slots (default 1)
above 1 a replica's engine is a BatchEngine: up to `slots` answers at once,
one forward pass a step for all of them (continuous batching), so one GPU
serves many streams; build_app sets the deployment's max_ongoing_requests to
the same number (a config file's own value wins: keep them equal). With 1 it
is an Engine (one session, one answer at a time). Requests
beyond that wait at the proxy for a free replica, and autoscaling adds
replicas when they queue.
"""
import logging
import os

import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException

from .batch import BatchEngine
from .engine import Engine
from .openai_api import ApiError, OpenAIServer

REPLICA_HEADER = "X-Bitnet-Replica"
log = logging.getLogger("ray.serve")
app = FastAPI(title="bitnet-gpu")


@app.exception_handler(HTTPException)
async def _http_error(_request, exc):
    # Unknown routes and wrong methods answer with OpenAI's error object too.
    error = ApiError(exc.status_code, str(exc.detail), type="invalid_request_error")
    return JSONResponse(error.body, status_code=exc.status_code)


def _replica_cpus():
    """The CPUs Ray reserved for this replica (ray_actor_options num_cpus), at least 1."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    return max(int(cpus), 1)


@serve.deployment(max_ongoing_requests=1)
@serve.ingress(app)
class BitnetDeployment:
    """One replica: an Engine, or with slots > 1 a BatchEngine, on model (a path
    every node has); threads default to the replica's num_cpus; backend "auto"
    takes the GPU that num_gpus gave it."""

    def __init__(self, model, model_name=None, backend="auto", threads=None, n_ctx=None, lm_head_q8=False,
                 slots=1, lookup=0, draft_model=None, draft=16, draft_p_min=0.75):
        kw = dict(backend=backend, threads=threads or _replica_cpus(), n_ctx=n_ctx, lm_head_q8=lm_head_q8,
                  lookup=lookup, draft_model=draft_model, draft=draft, draft_p_min=draft_p_min)
        self.engine = BatchEngine(model, slots=slots, **kw) if slots > 1 else Engine(model, **kw)
        self.api = OpenAIServer(self.engine, model_name or os.path.basename(model))
        self.replica = serve.get_replica_context().replica_tag
        log.info("bitnet-gpu replica %s: %s on %s (%s), context %d", self.replica, model, self.engine.backend,
                 self.engine.backend_note, self.engine.n_ctx)

    def _json(self, body, status=200):
        return JSONResponse(body, status_code=status, headers={REPLICA_HEADER: self.replica})

    @app.get("/v1/models")
    async def models(self):
        return self._json(self.api.models())

    @app.post("/tokenize")
    async def tokenize(self, request: Request):
        return await self._answer(request, self.api.tokenize)

    @app.post("/detokenize")
    async def detokenize(self, request: Request):
        return await self._answer(request, self.api.detokenize)

    @app.get("/tokenizer_info")
    async def tokenizer_info(self):
        return self._json(self.api.tokenizer_info())

    async def _body(self, request):
        """(the request's JSON body, None), or (None, the 400 that answers a body that is not JSON)."""
        try:
            return await request.json(), None
        except ValueError as e:
            return None, self._json(ApiError(400, f"the request body is not JSON: {e}").body, 400)

    async def _answer(self, request, handle):
        """A JSON body answered at once by handle (the tokenizer endpoints), or its error."""
        body, refused = await self._body(request)
        if refused:
            return refused
        try:
            return self._json(await run_in_threadpool(handle, body))
        except ApiError as e:
            return self._json(e.body, e.status)

    @app.post("/v1/completions")
    async def completions(self, request: Request):
        return await self._generate(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        return await self._generate(request, chat=True)

    async def _generate(self, request, chat):
        body, refused = await self._body(request)
        if refused:
            return refused
        try:
            # The engine blocks (tokenizing, generating): off the event loop.
            call = await run_in_threadpool(self.api.start, body, chat)
        except ApiError as e:
            return self._json(e.body, e.status)
        if call.streaming:
            headers = {REPLICA_HEADER: self.replica, "Cache-Control": "no-cache"}
            return StreamingResponse(self._events(call), media_type="text/event-stream", headers=headers)
        try:
            return self._json(await run_in_threadpool(call.response))
        except ApiError as e:
            return self._json(e.body, e.status)
        finally:
            call.cancel()  # when this await was cancelled (the client left), the generation stops

    @staticmethod
    async def _events(call):
        try:
            async for event in iterate_in_threadpool(call.events()):
                yield event
        finally:
            call.cancel()


# build_app's arguments: how a string from `serve run ... key=value` converts.
_ARGS = {
    "model": str,
    "model_name": str,
    "backend": str,
    "threads": int,
    "n_ctx": int,
    "lm_head_q8": lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes"),
    "slots": int,
    "lookup": int,
    "draft_model": str,
    "draft": int,
    "draft_p_min": float,
}


def build_app(args: dict) -> serve.Application:
    """The application of a config file's `args` (or `serve run ... key=value`):
    model (required), model_name, backend, threads, n_ctx, lm_head_q8, slots
    (answers a replica generates at once; max_ongoing_requests follows it unless
    the config file sets it), lookup (prompt lookup decoding's drafted tokens,
    as serve's --lookup), draft_model, draft and draft_p_min (a draft model's
    path, on every node, as serve's -md, --draft-max and --draft-p-min)."""
    unknown = set(args) - set(_ARGS)
    if unknown or "model" not in args:
        raise ValueError(f"bitnet_gpu.serve: args are {sorted(_ARGS)}, model required; got {sorted(args)}")
    kw = {k: None if v is None else _ARGS[k](v) for k, v in args.items()}
    slots = kw.get("slots") or 1
    if slots < 1:
        raise ValueError(f"bitnet_gpu.serve: slots must be at least 1, got {slots}")
    return BitnetDeployment.options(max_ongoing_requests=slots).bind(**kw)
