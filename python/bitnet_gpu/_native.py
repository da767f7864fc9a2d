"""ctypes declarations of bitnet.h, the C library's public API.

Only what the package calls is declared. Structs mirror bitnet.h field for
field (python/tests/test_engine.py compiles a C program that checks every size
and offset). ctypes releases the GIL around each foreign call, so a generation
runs in parallel with other Python threads; the token callback takes it back
for the few microseconds it runs.
"""
import ctypes
import os
from ctypes import POINTER, c_bool, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_size_t, c_uint64, c_void_p

# pip puts libbitnet.so next to this file; BITNET_LIBRARY picks another one
# (a build tree's, while working on the C side).
LIBRARY = os.environ.get("BITNET_LIBRARY") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "libbitnet.so")


class Error(ctypes.Structure):
    _fields_ = [("msg", c_char * 512)]


class LogitBias(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int32), ("bias", c_float)]


class Sampling(ctypes.Structure):
    _fields_ = [
        ("temperature", c_float),
        ("top_k", c_int),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("repeat_last_n", c_int),
        ("seed", c_uint64),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("logit_bias", POINTER(LogitBias)),
        ("n_logit_bias", c_size_t),
    ]


class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("arch", c_char_p),
        ("n_vocab", c_int),
        ("n_ctx_train", c_int),
        ("n_embd", c_int),
        ("n_layer", c_int),
        ("n_ff", c_int),
        ("n_head", c_int),
        ("n_head_kv", c_int),
        ("file_bytes", c_uint64),
    ]


class SessionParams(ctypes.Structure):
    _fields_ = [
        ("backend", c_char_p),
        ("n_threads", c_int),
        ("n_ctx", c_int),
        ("lm_head_q8", c_bool),
        ("cpu_kernels", c_char_p),
        ("cpu_start", c_bool),
    ]


class LookupStats(ctypes.Structure):
    _fields_ = [("drafted", c_uint64), ("accepted", c_uint64), ("passes", c_uint64)]


class Timings(ctypes.Structure):
    _fields_ = [
        ("backend_ms", c_double),
        ("prefill_ms", c_double),
        ("decode_ms", c_double),
        ("n_prompt", c_int),
        ("n_gen", c_int),
        ("stop", c_int),  # bn_stop
    ]


class ChatMsg(ctypes.Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class BatchParams(ctypes.Structure):
    _fields_ = [("session", SessionParams), ("n_slots", c_int), ("step_tokens", c_int)]


class TokenLogprob(ctypes.Structure):
    _fields_ = [("id", c_int32), ("logprob", c_float)]


class Request(ctypes.Structure):
    _fields_ = [
        ("prompt", POINTER(c_int32)),
        ("n_prompt", c_size_t),
        ("max_tokens", c_int),
        ("sampling", Sampling),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_size_t),
        ("user", c_void_p),
        ("no_prefix_cache", c_bool),
        ("logprobs", c_bool),
        ("top_logprobs", c_int),
        ("prompt_logprobs", c_bool),
        ("json_object", c_bool),
        ("json_schema", c_char_p),
        ("regex", c_char_p),
    ]


class BatchEvent(ctypes.Structure):
    _fields_ = [
        ("slot", c_int),
        ("user", c_void_p),
        ("token", c_int32),
        ("eog", c_bool),
        ("text", POINTER(c_char)),
        ("len", c_size_t),
        ("done", c_bool),
        ("stop", c_int),  # bn_stop
        ("n_prompt", c_int),
        ("n_gen", c_int),
        ("n_cached", c_int),
        ("logprob", c_float),
        ("n_top", c_int),
        ("top", POINTER(TokenLogprob)),
        ("prompt_logprob", POINTER(c_float)),
        ("prompt_top", POINTER(TokenLogprob)),
    ]


# bn_stop, in bitnet.h's order.
STOP_LENGTH, STOP_EOG, STOP_CONTEXT, STOP_CALLER, STOP_STRING = range(5)

# int (*)(void *user, int32_t id, const char *text, size_t len); the text is
# not NUL-terminated, so it is a char pointer, not c_char_p.
TOKEN_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int32, POINTER(c_char), c_size_t)

_E = POINTER(Error)
_IDS = POINTER(POINTER(c_int32))

# name: (restype, argtypes)
_API = {
    "bn_version": (c_char_p, []),
    "bn_sampling_default": (Sampling, []),
    "bn_sampling_validate": (c_int, [POINTER(Sampling), _E]),
    "bn_engine_load": (c_int, [c_char_p, c_char_p, POINTER(c_void_p), _E]),
    "bn_engine_free": (None, [c_void_p]),
    "bn_engine_info": (ModelInfo, [c_void_p]),
    "bn_engine_load_ms": (c_double, [c_void_p]),
    "bn_engine_add_bos": (c_bool, [c_void_p]),
    "bn_engine_is_eog": (c_bool, [c_void_p, c_int32]),
    "bn_engine_bos": (c_int32, [c_void_p]),
    "bn_engine_eos": (c_int32, [c_void_p]),
    "bn_engine_chat_template": (c_char_p, [c_void_p]),
    "bn_engine_set_chat_template": (c_int, [c_void_p, c_char_p, _E]),
    "bn_engine_tokenize": (c_int, [c_void_p, c_char_p, c_bool, c_bool, _IDS, POINTER(c_size_t), _E]),
    "bn_engine_detokenize": (c_int, [c_void_p, POINTER(c_int32), c_size_t, POINTER(c_void_p), POINTER(c_size_t), _E]),
    "bn_engine_chat_prompt": (c_int, [c_void_p, POINTER(ChatMsg), c_size_t, _IDS, POINTER(c_size_t), _E]),
    "bn_session_create": (c_int, [c_void_p, POINTER(SessionParams), POINTER(c_void_p), _E]),
    "bn_session_free": (None, [c_void_p]),
    "bn_session_backend": (c_char_p, [c_void_p]),
    "bn_session_backend_note": (c_char_p, [c_void_p]),
    "bn_session_draft_note": (c_char_p, [c_void_p]),
    "bn_session_cpu_kernels": (c_char_p, [c_void_p]),
    "bn_session_wait_backend": (c_int, [c_void_p, _E]),
    "bn_session_n_ctx": (c_int, [c_void_p]),
    "bn_session_reset": (None, [c_void_p]),
    "bn_session_keep_prefix": (c_int, [c_void_p, POINTER(c_int32), c_size_t]),
    "bn_session_score": (c_int, [c_void_p, POINTER(c_int32), c_size_t, c_int, POINTER(c_float), POINTER(TokenLogprob), _E]),
    "bn_session_generate": (
        c_int,
        [c_void_p, POINTER(c_int32), c_size_t, c_int, POINTER(Sampling), TOKEN_FN, c_void_p, POINTER(Timings), _E],
    ),
    "bn_batch_create": (c_int, [c_void_p, POINTER(BatchParams), POINTER(c_void_p), _E]),
    "bn_batch_free": (None, [c_void_p]),
    "bn_batch_backend": (c_char_p, [c_void_p]),
    "bn_batch_backend_note": (c_char_p, [c_void_p]),
    "bn_batch_draft_note": (c_char_p, [c_void_p]),
    "bn_batch_n_ctx": (c_int, [c_void_p]),
    "bn_batch_n_slots": (c_int, [c_void_p]),
    "bn_batch_n_free": (c_int, [c_void_p]),
    "bn_batch_shares_prompts": (c_bool, [c_void_p]),
    "bn_batch_add": (c_int, [c_void_p, POINTER(Request), _E]),
    "bn_json_schema_check": (c_int, [c_char_p, c_size_t, _E]),
    "bn_tools_chat_request": (c_int, [c_char_p, c_char_p, POINTER(c_void_p), POINTER(c_void_p), _E]),
    "bn_tools_chat_reply": (c_void_p, [c_char_p, c_size_t, c_char_p, c_int, POINTER(c_int)]),
    "bn_session_set_json_schema": (c_int, [c_void_p, c_char_p, _E]),
    "bn_session_set_regex": (c_int, [c_void_p, c_char_p, _E]),
    "bn_regex_check": (c_int, [c_char_p, _E]),
    "bn_regex_of_choices": (c_int, [POINTER(c_char_p), c_size_t, POINTER(c_void_p), _E]),
    "bn_session_set_logprobs": (c_int, [c_void_p, c_int, _E]),
    "bn_session_token_logprobs": (c_int, [c_void_p, POINTER(c_float), POINTER(POINTER(TokenLogprob))]),
    "bn_session_token_id": (c_int32, [c_void_p]),
    "bn_session_set_lookup": (c_int, [c_void_p, c_int, _E]),
    "bn_session_lookup_stats": (LookupStats, [c_void_p]),
    "bn_session_set_draft": (c_int, [c_void_p, c_void_p, c_int, c_float, _E]),
    "bn_batch_set_lookup": (c_int, [c_void_p, c_int, _E]),
    "bn_batch_set_draft": (c_int, [c_void_p, c_void_p, POINTER(SessionParams), c_int, c_float, _E]),
    "bn_engine_chat_template_jinja": (c_char_p, [c_void_p]),
    "bn_engine_space_prefix": (c_bool, [c_void_p]),
    "bn_batch_lookup_stats": (LookupStats, [c_void_p]),
    "bn_engine_token_bytes": (c_void_p, [c_void_p, c_int32, POINTER(c_size_t)]),
    "bn_batch_remove": (None, [c_void_p, c_int]),
    "bn_batch_step": (c_int, [c_void_p, POINTER(POINTER(BatchEvent)), POINTER(c_int), _E]),
}


# The library version (major.minor: its ABI, README: The C API) the structs and
# functions above are written for; another one is refused at import.
ABI = "0.4"


def _load():
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as e:
        raise ImportError(f"bitnet_gpu: cannot load the C library {LIBRARY}: {e}") from None
    try:
        version = ctypes.CFUNCTYPE(c_char_p)(("bn_version", lib))().decode()
    except AttributeError:
        raise ImportError(f"bitnet_gpu: {LIBRARY} is not libbitnet (it has no bn_version)") from None
    if version.split(".")[:2] != ABI.split("."):
        raise ImportError(f"bitnet_gpu: {LIBRARY} is libbitnet {version}; this package needs {ABI}.x")
    for name, (restype, argtypes) in _API.items():
        try:
            f = getattr(lib, name)
        except AttributeError:  # a 0.3 library from before the function came
            raise ImportError(f"bitnet_gpu: {LIBRARY} (libbitnet {version}) has no {name}: rebuild it") from None
        f.restype, f.argtypes = restype, argtypes
    return lib


lib = _load()
# The library's arrays come from malloc and are given back with the C
# library's free (the process has one malloc; libbitnet uses it).
libc_free = ctypes.CDLL(None).free
libc_free.argtypes, libc_free.restype = [c_void_p], None


def take_text(ptr):
    """A malloc'd C string (NULL: None) as str, which is freed."""
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        libc_free(ptr)


def take_ids(ptr, n):
    """The ids of a malloc'd int32_t array, which is freed."""
    try:
        return ptr[: n.value]
    finally:
        libc_free(ptr)


def top_pairs(top, n):
    """The first n of a C array of bn_token_logprob, as (id, logprob) pairs."""
    return [(top[i].id, top[i].logprob) for i in range(n)]


def scored_pairs(ids, values, top, k):
    """A scored text's entries from C arrays (bn_session_score's, a batch event's prompt_logprob
    and prompt_top): for token i >= 1 (id, logprob, its k likeliest as (id, logprob) pairs)."""
    return [(ids[i], values[i], top_pairs(top[i * k:(i + 1) * k], k)) for i in range(1, len(ids))]
