"""libinfer — Python binding (ctypes) over the C ABI of include/infer.h.

    from libinfer import Session

    with Session() as s:
        s.load("stories", "stories260K.bin", tokenizer="tok512.bin")
        for chunk in s.generate("stories", "Once upon a time", max_tokens=64, temperature=0):
            print(chunk, end="", flush=True)

Threading model
---------------
A Session may be used from several Python threads at once: ``generate()``, ``complete()``,
``embed()``, ``tokenize()``, ``route()``, ``metrics()``... are all thread-safe.

The C API allows one ``infer_poll`` caller at a time per session, so the binding never lets
consumers poll on their own:

* ``threading="engine"`` (default): the library runs an engine thread; the Session starts one
  *poller thread* of its own while requests are in flight (it exits when none is). It calls
  ``infer_poll`` and dispatches every event, copied out of C memory at once, to a per-request
  queue, which the request's iterator reads. Each request is tagged through ``user_data``
  with a key registered before ``infer_submit``, so no event can arrive before its queue.
* ``threading="caller"``: no thread exists at all; whichever consumer finds its queue empty
  takes the session's poll lock and runs engine steps through ``infer_poll``, dispatching
  the events of every request. Deterministic, for tests and single-threaded hosts.

Every C call runs without the GIL (ctypes releases it), so other Python threads keep running.

Memory
------
Everything passed to C (strings, stop lists, messages) is kept referenced by Python until
``infer_submit`` returns (the library copies the request there); event text, embeddings and
versions are copied into Python objects before the next ``infer_poll``.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import random
import threading as _threading
import time
import weakref
from ctypes import POINTER, byref, c_char_p, c_int32, c_size_t, c_void_p, cast, create_string_buffer, sizeof
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from . import _ffi
from ._errors import (
    Busy,
    Canceled,
    DeviceError,
    FormatError,
    InferError,
    InferIOError,
    InternalError,
    InvalidArgument,
    NotFound,
    OutOfMemory,
    SessionClosed,
    TimedOut,
    Unsupported,
    check,
    error_for,
    status_str,
)
from ._stream import _CLOSED, Completion, Generation, Usage, _Event, _OwnedLock, _Pending

__all__ = [
    "Session", "Generation", "Completion", "Usage", "version", "status_str", "library_path",
    "InferError", "InvalidArgument", "OutOfMemory", "Busy", "NotFound", "FormatError", "InferIOError",
    "Canceled", "SessionClosed", "TimedOut", "DeviceError", "Unsupported", "InternalError",
]

Message = Union[Mapping[str, str], Sequence[str]]

_THREADING = {"engine": _ffi.INFER_THREADING_ENGINE, "caller": _ffi.INFER_THREADING_CALLER}
_BACKEND = {"auto": _ffi.INFER_BACKEND_AUTO, "cpu": _ffi.INFER_BACKEND_CPU, "cuda": _ffi.INFER_BACKEND_CUDA}
_UNLOAD = {"wait": _ffi.INFER_UNLOAD_WAIT, "nowait": _ffi.INFER_UNLOAD_NOWAIT, "cancel": _ffi.INFER_UNLOAD_CANCEL}
_LOG_LEVEL = {"error": _ffi.INFER_LOG_ERROR, "warn": _ffi.INFER_LOG_WARN,
              "info": _ffi.INFER_LOG_INFO, "debug": _ffi.INFER_LOG_DEBUG}
_PY_LOG_LEVEL = {_ffi.INFER_LOG_ERROR: logging.ERROR, _ffi.INFER_LOG_WARN: logging.WARNING,
                 _ffi.INFER_LOG_INFO: logging.INFO, _ffi.INFER_LOG_DEBUG: logging.DEBUG}
_POLL_BATCH = 64
_POLL_TIMEOUT_MS = 100

library_path: str = _ffi.lib._name


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH" (infer_version)."""
    return _ffi.lib.infer_version().decode()


def _enc(s: str | None) -> bytes | None:
    return None if s is None else s.encode("utf-8")


def _pick(table: Mapping[str, int], value: str | int, what: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument(f"{what} = {value!r}; expected one of {', '.join(table)}") from None


# ------------------------------------------------------------------------------ session

_live_sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Destroy sessions before interpreter teardown: their engine threads may call a Python
    # log callback, and their poller threads sit in infer_poll.
    for s in list(_live_sessions):
        s.close()


class Session:
    """A libinfer session (infer_session): models, request queue, engine, metrics.

    Arguments map to infer_session_params; None keeps the library default.
    ``threading`` is "engine" (the library runs an engine thread) or "caller" (engine steps
    run inside the poll calls of whichever thread is consuming results). ``log`` is a
    callable ``(level: int, message: str)``, or True to forward to the ``libinfer`` logger
    of the logging module; it is called from library threads.

    Use it as a context manager, or call close(): that cancels every request in flight and
    frees all models (infer_session_destroy).
    """

    def __init__(self, threads: int = 0, threading: str = "engine", kv_cache_bytes: int | None = None,
                 max_running: int | None = None, *, backend: str = "auto", queue_capacity: int | None = None,
                 max_batch_tokens: int | None = None, kv_block_tokens: int | None = None,
                 prefix_cache: bool | None = None, log: Callable[[int, str], None] | bool | None = None,
                 log_level: str | int = "warn") -> None:
        self._s: c_void_p | None = None
        self._closing = True  # until created
        p = _ffi.infer_session_params()
        _ffi.lib.infer_session_params_init(byref(p))
        p.size = sizeof(p)
        p.backend = _pick(_BACKEND, backend, "backend")
        p.threading = _pick(_THREADING, threading, "threading")
        p.n_threads = threads
        for name, value in (("queue_capacity", queue_capacity), ("max_running", max_running),
                            ("max_batch_tokens", max_batch_tokens), ("kv_block_tokens", kv_block_tokens),
                            ("kv_cache_bytes", kv_cache_bytes)):
            if value is not None:
                setattr(p, name, value)
        if prefix_cache is not None:
            p.prefix_cache = int(bool(prefix_cache))
        p.log_level = _pick(_LOG_LEVEL, log_level, "log_level")
        self._log_cb = None
        if log:
            sink: Callable[[int, str], None]
            if log is True:
                logger = logging.getLogger("libinfer")
                sink = lambda level, msg: logger.log(_PY_LOG_LEVEL.get(level, logging.INFO), "%s", msg)  # noqa: E731
            else:
                sink = log  # type: ignore[assignment]

            def _log(_user: int | None, level: int, msg: bytes | None) -> None:
                try:
                    sink(level, (msg or b"").decode("utf-8", "replace"))
                except Exception:
                    pass  # never raise into C

            self._log_cb = _ffi.infer_log_fn(_log)  # kept referenced for the session's life
            p.log_fn = self._log_cb

        handle = c_void_p()
        check(_ffi.lib.infer_session_create(byref(p), byref(handle)), "infer_session_create")
        self._s = handle
        self.threading: str = "caller" if p.threading == _ffi.INFER_THREADING_CALLER else "engine"
        self._caller_mode = p.threading == _ffi.INFER_THREADING_CALLER
        self._lock = _OwnedLock()                # guards everything below
        self._idle = _threading.Condition(self._lock)
        self._users = 0                          # C calls in progress (close waits for 0)
        self._closing = False
        self._pending: dict[int, _Pending] = {}  # user_data key -> its queue
        self._next_key = 1
        self._poller: _threading.Thread | None = None
        self._poll_lock = _OwnedLock()           # caller mode: one infer_poll at a time
        self._orphans: "queue.SimpleQueue[int]" = queue.SimpleQueue()  # ids to cancel at the next poll
        self._events = (_ffi.infer_event * _POLL_BATCH)()
        self._numpy: Any = None
        _live_sessions.add(self)

    # ----------------------------------------------------------------- lifetime

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Cancel everything in flight, stop the poller and destroy the session. Waits for C
        calls running on other threads (such as an unload with mode="wait") to return first.
        Iterators of requests still running raise SessionClosed. Idempotent."""
        if self._s is None or not hasattr(self, "_lock"):
            return
        with self._lock:
            if self._closing:
                return
            self._closing = True
            while self._users:
                self._idle.wait()
            poller, self._poller = self._poller, None
            pending, self._pending = list(self._pending.values()), {}
        if poller is not None and poller is not _threading.current_thread():
            poller.join()
        _ffi.lib.infer_session_destroy(self._s)
        self._s = None
        for p in pending:
            p.events.put(_CLOSED)

    def _enter(self) -> c_void_p:
        with self._lock:
            if self._closing:
                raise SessionClosed("the session is closed", _ffi.INFER_ECANCELED)
            self._users += 1
            return self._s  # type: ignore[return-value]

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                self._idle.notify_all()

    def _call(self, fn: Callable[..., int], *args: Any, what: str) -> None:
        s = self._enter()
        try:
            st = fn(s, *args)
            check(st, what)
        finally:
            self._leave()

    # ------------------------------------------------------------------- models

    def load(self, name: str, path: str | os.PathLike[str], version: str | None = None,
             tokenizer: str | os.PathLike[str] | None = None, max_running: int = 0,
             weights_f32: bool = False) -> None:
        """Load the model at `path` (llama2.c .bin, GGUF file or Hugging Face directory) under
        `name` and `version` (None = "1"). `tokenizer`: a llama2.c tokenizer.bin (default: the
        one beside the checkpoint). `max_running`: sequences of this model at once (0 = the
        session's limit). `weights_f32`: convert the matrices to fp32 at load (exact products,
        4 bytes a weight). Raises FormatError, InferIOError, InvalidArgument, OutOfMemory."""
        mp = _ffi.infer_model_params()
        _ffi.lib.infer_model_params_init(byref(mp))
        mp.size = sizeof(mp)
        tok = _enc(os.fspath(tokenizer)) if tokenizer is not None else None
        mp.tokenizer_path = tok
        mp.max_running = max_running
        mp.weights_f32 = 1 if weights_f32 else 0
        self._call(_ffi.lib.infer_model_load, _enc(name), _enc(version), _enc(os.fspath(path)), byref(mp),
                   what=f"load {name!r} from {os.fspath(path)!r}")

    def unload(self, name: str, version: str | None = None, mode: str = "wait") -> None:
        """Remove model `name`, `version` (None = every version). `mode`: "wait" (let requests
        in flight finish; returns after they did), "nowait" (raise Busy if any is in flight)
        or "cancel" (they end with Canceled)."""
        m = _pick(_UNLOAD, mode, "mode")
        if self._caller_mode:  # infer_model_unload must not run concurrently with infer_poll
            with self._poll_lock:
                self._call(_ffi.lib.infer_model_unload, _enc(name), _enc(version), m, what=f"unload {name!r}")
        else:
            self._call(_ffi.lib.infer_model_unload, _enc(name), _enc(version), m, what=f"unload {name!r}")

    def route(self, model: str, routes: Iterable[tuple[str, float]],
              shadows: Iterable[tuple[str, float]] = ()) -> None:
        """Set the routing table of `model` (infer_route_set): requests that do not pin a
        version go to one of `routes` [(version, weight), ...] with probability weight / sum;
        each (version, probability) of `shadows` also receives a mirrored copy of a request
        whose output is discarded and whose metrics are recorded with role="shadow".
        An empty `routes` and `shadows` clears the table."""
        entries = [(v, float(w), 0) for v, w in routes] + [(v, float(p), 1) for v, p in shadows]
        keep = [_enc(v) for v, _, _ in entries]
        arr = (_ffi.infer_route * max(1, len(entries)))()
        for i, ((_, w, sh), ver) in enumerate(zip(entries, keep)):
            arr[i].version, arr[i].weight, arr[i].shadow = ver, w, sh
        self._call(_ffi.lib.infer_route_set, _enc(model), arr, len(entries), what=f"route {model!r}")

    # ---------------------------------------------------------------- tokenizer

    def tokenize(self, name: str, text: str, add_bos: bool | None = None, special: bool = False,
                 version: str | None = None) -> list[int]:
        """Token ids of `text` with model `name`'s tokenizer. `add_bos`: None = as the model's
        tokenizer says, True/False = force. `special`: control tokens written in the text
        (e.g. "<|im_start|>") become their ids."""
        flags = (_ffi.INFER_TOKENIZE_MODEL_BOS if add_bos is None else
                 _ffi.INFER_TOKENIZE_ADD_BOS if add_bos else 0)
        if special:
            flags |= _ffi.INFER_TOKENIZE_SPECIAL
        raw = text.encode("utf-8")
        n = c_size_t(0)
        cap = len(raw) + 8
        s = self._enter()
        try:
            while True:
                ids = (c_int32 * cap)()
                st = _ffi.lib.infer_tokenize(s, _enc(name), _enc(version), raw, flags, ids, cap, byref(n))
                if st == _ffi.INFER_EINVAL and n.value > cap:
                    cap = n.value  # the buffer was too small: retry with the full count
                    continue
                check(st, f"tokenize with {name!r}")
                return list(ids[: n.value])
        finally:
            self._leave()

    def detokenize(self, name: str, ids: Sequence[int], version: str | None = None) -> str:
        """The text of `ids` as a generated sequence would stream it (control tokens give no
        text). Raises InvalidArgument for an id outside the vocabulary."""
        arr = (c_int32 * max(1, len(ids)))(*ids)
        n = c_size_t(0)
        cap = 16 * len(ids) + 16
        s = self._enter()
        try:
            while True:
                buf = create_string_buffer(cap)
                st = _ffi.lib.infer_detokenize(s, _enc(name), _enc(version), arr, len(ids), buf, cap, byref(n))
                if st == _ffi.INFER_EINVAL and n.value >= cap:
                    cap = n.value + 1
                    continue
                check(st, f"detokenize with {name!r}")
                return buf.raw[: n.value].decode("utf-8", "replace")
        finally:
            self._leave()

    # ----------------------------------------------------------------- requests

    def generate(self, model: str, prompt: str | None = None, messages: Sequence[Message] | None = None, *,
                 max_tokens: int = 128, temperature: float = 0.8, top_k: int = 40, top_p: float = 0.95,
                 min_p: float = 0.05, seed: int | None = None, stop: str | Sequence[str] | None = None,
                 stop_tokens: Sequence[int] | None = None, repetition_penalty: float = 1.0,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, penalty_last_n: int = 64,
                 ignore_eos: bool = False, add_bos: bool | None = None, version: str | None = None,
                 priority: int = 0, deadline_ms: int = 0, route_key: str | None = None) -> Generation:
        """Submit a generation request and return its streaming iterator of text chunks.

        Give `prompt` (text) or `messages` (a conversation: dicts {"role", "content"} or
        (role, content) pairs, rendered with the model's chat template). temperature 0 is
        greedy. `seed`: None draws a random one; equal seeds give equal output. `stop`: stop
        strings (the text ends before them). `version` pins a model version; otherwise the
        routing table (route()) or the newest version serves it; `route_key` makes routing
        sticky. `deadline_ms` (0 = none) ends the request with TimedOut.
        Raises Busy when the submit queue is full, NotFound, InvalidArgument (e.g. a prompt
        beyond the model's context), Unsupported."""
        if (prompt is None) == (messages is None):
            raise InvalidArgument("generate: give exactly one of prompt and messages", _ffi.INFER_EINVAL)
        rq = self._request(model, version)
        rq.kind = _ffi.INFER_REQ_GENERATE
        keep: list[Any] = []  # everything C points at, alive until infer_submit returns
        if prompt is not None:
            rq.prompt = _enc(prompt)
        else:
            msgs = (_ffi.infer_message * max(1, len(messages or ())))()
            for i, m in enumerate(messages or ()):
                role, content = (m["role"], m["content"]) if isinstance(m, Mapping) else (m[0], m[1])
                msgs[i].role, msgs[i].content = _enc(role), _enc(content)
            rq.messages = cast(msgs, POINTER(_ffi.infer_message))
            rq.n_messages = len(messages or ())
            keep.append(msgs)
        rq.add_bos = -1 if add_bos is None else int(bool(add_bos))
        rq.max_tokens = max_tokens
        rq.temperature, rq.top_k, rq.top_p, rq.min_p = temperature, top_k, top_p, min_p
        rq.repetition_penalty, rq.frequency_penalty = repetition_penalty, frequency_penalty
        rq.presence_penalty, rq.penalty_last_n = presence_penalty, penalty_last_n
        rq.seed = random.getrandbits(64) if seed is None else seed & 0xFFFFFFFFFFFFFFFF
        if stop:
            stops = [stop] if isinstance(stop, str) else list(stop)
            sarr = (c_char_p * len(stops))(*[_enc(x) for x in stops])
            rq.stop, rq.n_stop = sarr, len(stops)
            keep.append(sarr)
        if stop_tokens:
            tarr = (c_int32 * len(stop_tokens))(*stop_tokens)
            rq.stop_tokens, rq.n_stop_tokens = tarr, len(stop_tokens)
            keep.append(tarr)
        rq.ignore_eos = int(bool(ignore_eos))
        rq.priority, rq.deadline_ms = priority, deadline_ms
        rq.route_key = _enc(route_key)
        key, pending, rid = self._submit(rq)
        del keep  # infer_submit copied the request
        return Generation(self, key, pending, rid)

    def complete(self, model: str, prompt: str | None = None, messages: Sequence[Message] | None = None,
                 **kwargs: Any) -> Completion:
        """generate() and wait for the whole text. Same arguments."""
        with self.generate(model, prompt, messages, **kwargs) as g:
            return g.result()

    def embed(self, model: str, texts: str | Sequence[str], normalize: bool = True, *,
              version: str | None = None, as_numpy: bool | None = None) -> Any:
        """Pooled embeddings of `texts` (a string or a list of them) with an encoder model
        (BERT/MiniLM), one INFER_REQ_EMBED request per text, all in flight together.
        Returns one vector per text, in order: a list of lists of floats, or — when numpy
        is importable and `as_numpy` is not False — a float32 numpy array of shape
        (len(texts), dim)."""
        items = [texts] if isinstance(texts, str) else list(texts)
        np = self._np() if as_numpy is not False else None
        if as_numpy and np is None:
            raise ImportError("embed(as_numpy=True) needs numpy")
        inflight: list[tuple[int, _Pending, int]] = []  # (index, queue, request id)
        out: list[bytes | None] = [None] * len(items)
        try:
            i = 0
            while i < len(items) or inflight:
                if i < len(items):
                    rq = self._request(model, version)
                    rq.kind = _ffi.INFER_REQ_EMBED
                    rq.prompt = _enc(items[i])
                    rq.normalize = int(bool(normalize))
                    try:
                        _key, pending, rid = self._submit(rq)
                        inflight.append((i, pending, rid))
                        i += 1
                        continue
                    except Busy:
                        if not inflight:
                            raise
                # queue full (or everything submitted): collect the oldest
                j, pending, _rid = inflight.pop(0)
                out[j] = self._collect_embedding(pending)
        finally:  # on an error: stop the rest
            for _, pending, rid in inflight:
                pending.abandoned = True
                try:
                    self._cancel(rid)
                except InferError:
                    pass
        vecs = [b if b is not None else b"" for b in out]
        if np is not None:
            if not vecs:
                return np.zeros((0, 0), dtype=np.float32)
            return np.stack([np.frombuffer(b, dtype=np.float32) for b in vecs])
        import array
        return [array.array("f", b).tolist() for b in vecs]

    def _collect_embedding(self, pending: _Pending) -> bytes:
        vec: bytes | None = None
        while True:
            ev = self._next_event(pending)
            if ev.type == _ffi.INFER_EVENT_EMBEDDING:
                vec = ev.embedding
            elif ev.type == _ffi.INFER_EVENT_DONE:
                if ev is _CLOSED:
                    raise SessionClosed("the session was closed while embedding", ev.status)
                if ev.status != _ffi.INFER_OK:
                    raise error_for(ev.status, f"embed request ended with {status_str(ev.status)}")
                if vec is None:
                    raise InternalError("embed request ended without an embedding", _ffi.INFER_EINTERNAL)
                return vec

    def _np(self) -> Any:
        if self._numpy is None:
            try:
                import numpy
                self._numpy = numpy
            except ImportError:
                self._numpy = False
        return self._numpy or None

    def _request(self, model: str, version: str | None) -> _ffi.infer_request:
        rq = _ffi.infer_request()
        _ffi.lib.infer_request_init(byref(rq))
        rq.size = sizeof(rq)
        rq.model = _enc(model)
        rq.version = _enc(version)
        return rq

    def _submit(self, rq: _ffi.infer_request) -> tuple[int, _Pending, int]:
        """Register a queue under a fresh user_data key, then submit. The key is registered
        first so the poller can route the request's events as soon as they exist."""
        pending = _Pending()
        with self._lock:
            if self._closing:
                raise SessionClosed("the session is closed", _ffi.INFER_ECANCELED)
            key = self._next_key
            self._next_key += 1
            self._pending[key] = pending
            self._users += 1
            if not self._caller_mode and self._poller is None:
                self._poller = _threading.Thread(target=self._poll_loop, name="libinfer-poller", daemon=True)
                self._poller.start()
        rq.user_data = key
        rid = _ffi.infer_request_id(0)
        try:
            st = _ffi.lib.infer_submit(self._s, byref(rq), byref(rid))
            if st != _ffi.INFER_OK:
                with self._lock:
                    self._pending.pop(key, None)
                check(st, f"submit to {rq.model.decode()!r}")
        finally:
            self._leave()
        return key, pending, rid.value

    def _cancel(self, request_id: int) -> None:
        self._call(_ffi.lib.infer_cancel, request_id, what=f"cancel request {request_id}")

    # ------------------------------------------------------------------ events

    def _dispatch(self, evs: Any, n: int) -> None:
        """Copy n events out of C memory and route each to its request's queue."""
        copied = [(evs[i].user_data or 0, _Event.copy(evs[i])) for i in range(n)]
        with self._lock:
            for key, ev in copied:
                done = ev.type == _ffi.INFER_EVENT_DONE
                p = self._pending.pop(key, None) if done else self._pending.get(key)
                if p is not None and (done or not p.abandoned):
                    p.events.put(ev)

    def _fail_all(self, st: int) -> None:
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for p in pending:
            p.events.put(_Event(_ffi.INFER_EVENT_DONE, status=st, finish=_ffi.INFER_FINISH_ERROR))

    def _cancel_orphans(self) -> None:
        """Cancel requests whose iterators were finalized where they could not wait.
        The caller holds a use count."""
        while True:
            try:
                rid = self._orphans.get_nowait()
            except queue.Empty:
                return
            _ffi.lib.infer_cancel(self._s, rid)  # INFER_ENOTFOUND: it had finished

    def _poll_loop(self) -> None:
        """Engine mode: the session's only infer_poll caller, while requests are in flight."""
        evs = (_ffi.infer_event * _POLL_BATCH)()
        while True:
            with self._lock:
                if self._closing or not self._pending:
                    if self._poller is _threading.current_thread():
                        self._poller = None
                    return
                self._users += 1
            try:
                self._cancel_orphans()
                n = _ffi.lib.infer_poll(self._s, evs, _POLL_BATCH, _POLL_TIMEOUT_MS)
                if n < 0:
                    self._fail_all(n)
                elif n:
                    self._dispatch(evs, n)
            finally:
                self._leave()

    def _pump(self, pending: _Pending) -> None:
        """Caller mode: run engine steps (infer_poll) until `pending` has an event."""
        s = self._enter()
        try:
            with self._poll_lock:
                if not pending.events.empty():
                    return  # another consumer's poll delivered ours meanwhile
                self._cancel_orphans()
                n = _ffi.lib.infer_poll(s, self._events, _POLL_BATCH, _POLL_TIMEOUT_MS)
                if n < 0:
                    self._fail_all(n)
                elif n:
                    self._dispatch(self._events, n)
        finally:
            self._leave()

    def _next_event(self, pending: _Pending, timeout: float | None = None) -> _Event:
        """The next event of a request; raises queue.Empty after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self._caller_mode:
                    return pending.events.get_nowait()
                return pending.events.get(timeout=0.25)
            except queue.Empty:
                pass
            if self._caller_mode:
                try:
                    self._pump(pending)
                except SessionClosed:
                    return _CLOSED
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty

    # ------------------------------------------------------------ observability

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of the session counters (infer_session_stats) as a dict:
        queued, running, kv_blocks_total/used/cached, models_resident, prefix_hit_tokens,
        preempted, steps, max_batch_seqs, requests_done, tokens_prompt, tokens_generated,
        batch_hist (list of 8), sched_ns, forward_ns."""
        st = _ffi.infer_stats()
        st.size = sizeof(st)
        self._call(_ffi.lib.infer_session_stats, byref(st), what="stats")
        out: dict[str, Any] = {}
        for name, _ in _ffi.infer_stats._fields_:
            if name == "size":
                continue
            v = getattr(st, name)
            out[name] = list(v) if name == "batch_hist" else int(v)
        return out

    def metrics(self) -> str:
        """The session's metrics in the Prometheus text format (infer_metrics_text)."""
        n = c_size_t(0)
        cap = 1 << 16
        s = self._enter()
        try:
            while True:
                buf = create_string_buffer(cap)
                st = _ffi.lib.infer_metrics_text(s, buf, cap, byref(n))
                if st == _ffi.INFER_EINVAL and n.value >= cap:
                    cap = n.value + 4096  # it may grow between the calls
                    continue
                check(st, "metrics")
                return buf.raw[: n.value].decode("utf-8", "replace")
        finally:
            self._leave()

    def fileno(self) -> int:
        """infer_session_fd: readable while events wait. The binding polls for you; this is
        for diagnostics and event-loop experiments only."""
        s = self._enter()
        try:
            return int(_ffi.lib.infer_session_fd(s))
        finally:
            self._leave()
