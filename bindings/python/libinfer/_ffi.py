"""ctypes declarations of include/infer.h, the C ABI of libinfer.

Every struct mirrors its C definition field by field, in the same order and with the same
types (enums are ``c_int``); ``tests/test_binding.py`` compiles a small C program against
the header and checks ``sizeof``/``offsetof`` of every struct and field and the value of
every enum constant, so a drift between this file and the header fails the tests.

The library is found, in order, at ``$LIBINFER_PATH``, at ``build/libinfer.so`` of the
source tree this package lives in (``bindings/python/../../build``), or through
``ctypes.util.find_library("infer")``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# ------------------------------------------------------------------------------ constants

INFER_OK = 0
INFER_EINVAL = -1
INFER_ENOMEM = -2
INFER_EBUSY = -3
INFER_ENOTFOUND = -4
INFER_EFORMAT = -5
INFER_EIO = -6
INFER_ECANCELED = -7
INFER_ETIMEDOUT = -8
INFER_EDEVICE = -9
INFER_EUNSUPPORTED = -10
INFER_EINTERNAL = -11

INFER_BACKEND_AUTO = 0
INFER_BACKEND_CPU = 1
INFER_BACKEND_CUDA = 2
MAX_DEVICES = 8  # INFER_MAX_DEVICES (a #define, not an enum constant)

INFER_THREADING_ENGINE = 0
INFER_THREADING_CALLER = 1

INFER_LOG_ERROR = 0
INFER_LOG_WARN = 1
INFER_LOG_INFO = 2
INFER_LOG_DEBUG = 3

INFER_UNLOAD_WAIT = 0
INFER_UNLOAD_NOWAIT = 1
INFER_UNLOAD_CANCEL = 2

INFER_TOKENIZE_ADD_BOS = 1
INFER_TOKENIZE_MODEL_BOS = 2
INFER_TOKENIZE_SPECIAL = 4

INFER_REQ_GENERATE = 0
INFER_REQ_EMBED = 1

INFER_EVENT_TOKEN = 1
INFER_EVENT_LOGITS = 2
INFER_EVENT_DONE = 3
INFER_EVENT_EMBEDDING = 4

INFER_FINISH_NONE = 0
INFER_FINISH_LENGTH = 1
INFER_FINISH_STOP = 2
INFER_FINISH_ERROR = 3

#: Every enum constant of the header, for the ABI test.
CONSTANTS: dict[str, int] = {k: v for k, v in globals().items() if k.startswith("INFER_") and isinstance(v, int)}

# -------------------------------------------------------------------------------- structs

infer_request_id = c_uint64

#: void (*infer_log_fn)(void *user, infer_log_level level, const char *msg)
infer_log_fn = CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class infer_session_params(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("backend", c_int),
        ("threading", c_int),
        ("n_threads", c_int),
        ("queue_capacity", c_int),
        ("max_running", c_int),
        ("max_batch_tokens", c_int),
        ("kv_block_tokens", c_int),
        ("kv_cache_bytes", c_size_t),
        ("prefix_cache", c_int),
        ("n_devices", c_int),
        ("devices", c_int * MAX_DEVICES),
        ("log_fn", infer_log_fn),
        ("log_user", c_void_p),
        ("log_level", c_int),
    ]


class infer_model_params(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("tokenizer_path", c_char_p),
        ("max_running", c_int),
        ("weights_f32", c_int),
    ]


class infer_route(Structure):
    _fields_ = [
        ("version", c_char_p),
        ("weight", c_double),
        ("shadow", c_int),
    ]


class infer_message(Structure):
    _fields_ = [
        ("role", c_char_p),
        ("content", c_char_p),
    ]


class infer_request(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("kind", c_int),
        ("model", c_char_p),
        ("version", c_char_p),
        ("prompt", c_char_p),
        ("messages", POINTER(infer_message)),
        ("n_messages", c_size_t),
        ("add_bos", c_int),
        ("max_tokens", c_int),
        ("temperature", c_float),
        ("top_k", c_int),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repetition_penalty", c_float),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("penalty_last_n", c_int),
        ("seed", c_uint64),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_size_t),
        ("stop_tokens", POINTER(c_int32)),
        ("n_stop_tokens", c_size_t),
        ("ignore_eos", c_int),
        ("want_logits", c_int),
        ("normalize", c_int),
        ("priority", c_int),
        ("deadline_ms", c_int64),
        ("route_key", c_char_p),
        ("user_data", c_void_p),
    ]


class infer_event(Structure):
    # `text` and `version` are c_void_p, not c_char_p: text is not NUL-terminated (it has
    # text_len) and ctypes would otherwise convert on every field access.
    _fields_ = [
        ("type", c_int),
        ("id", infer_request_id),
        ("user_data", c_void_p),
        ("token", c_int32),
        ("text", c_void_p),
        ("text_len", c_size_t),
        ("pos", c_int32),
        ("logits", POINTER(c_float)),
        ("n_logits", c_int32),
        ("embedding", POINTER(c_float)),
        ("n_embedding", c_int32),
        ("status", c_int),
        ("finish", c_int),
        ("version", c_void_p),
        ("n_prompt_tokens", c_int32),
        ("n_generated", c_int32),
    ]


class infer_stats(Structure):
    _fields_ = [
        ("size", c_size_t),
        ("queued", c_int64),
        ("running", c_int64),
        ("kv_blocks_total", c_int64),
        ("models_resident", c_int64),
        ("kv_blocks_used", c_int64),
        ("kv_blocks_cached", c_int64),
        ("prefix_hit_tokens", c_int64),
        ("preempted", c_int64),
        ("steps", c_int64),
        ("max_batch_seqs", c_int64),
        ("requests_done", c_int64),
        ("tokens_prompt", c_int64),
        ("tokens_generated", c_int64),
        ("batch_hist", c_int64 * 8),
        ("sched_ns", c_int64),
        ("forward_ns", c_int64),
    ]


#: The header's struct types, by their C name, for the ABI test.
STRUCTS: dict[str, type[Structure]] = {
    "infer_session_params": infer_session_params,
    "infer_model_params": infer_model_params,
    "infer_route": infer_route,
    "infer_message": infer_message,
    "infer_request": infer_request,
    "infer_event": infer_event,
    "infer_stats": infer_stats,
}

# ------------------------------------------------------------------------------- loading


def library_candidates() -> list[str]:
    """The paths tried, in order, to load libinfer."""
    out: list[str] = []
    env = os.environ.get("LIBINFER_PATH")
    if env:
        out.append(env)
    out.append(str(Path(__file__).resolve().parent.parent.parent.parent / "build" / "libinfer.so"))
    found = ctypes.util.find_library("infer")
    if found:
        out.append(found)
    return out


def _load() -> ctypes.CDLL:
    env = os.environ.get("LIBINFER_PATH")
    errors: list[str] = []
    for path in library_candidates():
        # $LIBINFER_PATH is authoritative: never silently fall back to another build.
        if path != env and "/" in path and not os.path.exists(path):
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            if path == env:
                raise OSError(f"libinfer: cannot load $LIBINFER_PATH={env}: {e}") from e
            errors.append(f"{path}: {e}")
    raise OSError("libinfer: shared library not found (set LIBINFER_PATH, or build it with `make lib`); tried: "
                  + ("; ".join(errors) or ", ".join(library_candidates())))


lib = _load()

_session_p = c_void_p  # infer_session *


def _proto(name: str, restype, *argtypes) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_proto("infer_version", c_char_p)
_proto("infer_status_str", c_char_p, c_int)
_proto("infer_last_error", c_char_p, _session_p)
_proto("infer_session_params_init", None, POINTER(infer_session_params))
_proto("infer_session_create", c_int, POINTER(infer_session_params), POINTER(_session_p))
_proto("infer_session_destroy", None, _session_p)
_proto("infer_session_fd", c_int, _session_p)
_proto("infer_model_params_init", None, POINTER(infer_model_params))
_proto("infer_model_load", c_int, _session_p, c_char_p, c_char_p, c_char_p, POINTER(infer_model_params))
_proto("infer_model_unload", c_int, _session_p, c_char_p, c_char_p, c_int)
_proto("infer_route_set", c_int, _session_p, c_char_p, POINTER(infer_route), c_size_t)
_proto("infer_tokenize", c_int, _session_p, c_char_p, c_char_p, c_char_p, c_uint,
       POINTER(c_int32), c_size_t, POINTER(c_size_t))
_proto("infer_detokenize", c_int, _session_p, c_char_p, c_char_p, POINTER(c_int32), c_size_t,
       c_char_p, c_size_t, POINTER(c_size_t))
_proto("infer_request_init", None, POINTER(infer_request))
_proto("infer_submit", c_int, _session_p, POINTER(infer_request), POINTER(infer_request_id))
_proto("infer_cancel", c_int, _session_p, infer_request_id)
_proto("infer_poll", c_int, _session_p, POINTER(infer_event), c_int, c_int)
_proto("infer_session_stats", c_int, _session_p, POINTER(infer_stats))
_proto("infer_metrics_text", c_int, _session_p, c_char_p, c_size_t, POINTER(c_size_t))
