"""Streaming side of the binding: events copied out of C, per-request queues, and the
Generation iterator. Session (in __init__.py) owns the polling; see its docstring."""
from __future__ import annotations

import codecs
import queue
import threading as _threading
from ctypes import string_at
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from . import _ffi
from ._errors import InferError, NotFound, SessionClosed, error_for, status_str

if TYPE_CHECKING:
    from . import Session

_FINISH = {_ffi.INFER_FINISH_NONE: None, _ffi.INFER_FINISH_LENGTH: "length",
           _ffi.INFER_FINISH_STOP: "stop", _ffi.INFER_FINISH_ERROR: "error"}


class _OwnedLock:
    """A Lock that knows which thread holds it, so a finalizer (Generation.__del__) can tell
    whether blocking would deadlock the very thread it runs on."""

    def __init__(self) -> None:
        self._lock = _threading.Lock()
        self.owner: int | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        ok = self._lock.acquire(blocking, timeout)
        if ok:
            self.owner = _threading.get_ident()
        return ok

    def release(self) -> None:
        self.owner = None
        self._lock.release()

    def held_here(self) -> bool:
        return self.owner == _threading.get_ident()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


# ------------------------------------------------------------------------ result types


@dataclass(frozen=True)
class Usage:
    """Token counts of a finished request."""
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Completion:
    """The result of Session.complete()."""
    text: str
    finish_reason: str | None  # "length" (max_tokens), "stop" (end token / stop string), "error"
    version: str | None        # the model version that served the request
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class _Event:
    """An infer_event copied out of C memory."""
    type: int
    token: int = 0
    text: bytes = b""
    embedding: bytes | None = None
    status: int = 0
    finish: int = 0
    version: str | None = None
    n_prompt: int = 0
    n_generated: int = 0

    @staticmethod
    def copy(ev: _ffi.infer_event) -> _Event:
        e = _Event(ev.type)
        if ev.type == _ffi.INFER_EVENT_TOKEN:
            e.token = ev.token
            e.text = string_at(ev.text, ev.text_len) if ev.text and ev.text_len else b""
        elif ev.type == _ffi.INFER_EVENT_EMBEDDING:
            n = ev.n_embedding
            e.embedding = string_at(ev.embedding, n * 4) if n > 0 else b""
        elif ev.type == _ffi.INFER_EVENT_DONE:
            e.status, e.finish = ev.status, ev.finish
            e.version = string_at(ev.version).decode("utf-8", "replace") if ev.version else None
            e.n_prompt, e.n_generated = ev.n_prompt_tokens, ev.n_generated
        return e


_CLOSED = _Event(_ffi.INFER_EVENT_DONE, status=_ffi.INFER_ECANCELED, finish=_ffi.INFER_FINISH_ERROR)


@dataclass
class _Pending:
    """One submitted request's event queue, registered under its user_data key."""
    events: "queue.SimpleQueue[_Event]" = field(default_factory=queue.SimpleQueue)
    abandoned: bool = False  # nobody reads it any more: drop all but DONE


# --------------------------------------------------------------------------- generation


class Generation(Iterator[str]):
    """A streaming generation: iterate to get text chunks as the tokens arrive.

    After the iterator is exhausted, ``finish_reason``, ``version``, ``usage``, ``text``
    (everything yielded) and ``tokens`` (the generated ids) describe the result. If the
    request fails (deadline, unload with mode="cancel", out of memory...) the iteration
    raises the mapped InferError instead.

    ``close()`` — also called by ``with``, and when the iterator is garbage-collected, e.g.
    right after ``break`` in CPython — cancels the request if it is still running and waits
    for it to end, so its KV blocks are back in the pool when close() returns.
    """

    def __init__(self, session: Session, key: int, pending: _Pending, request_id: int) -> None:
        self._session = session
        self._key = key
        self._pending = pending
        self.id: int = request_id
        self.text: str = ""
        self.tokens: list[int] = []
        self.finish_reason: str | None = None
        self.version: str | None = None
        self.usage: Usage | None = None
        self.status: int | None = None
        self.done: bool = False
        self._cancelled = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def __iter__(self) -> Generation:
        return self

    def __next__(self) -> str:
        while not self.done:
            ev = self._session._next_event(self._pending)
            if ev.type == _ffi.INFER_EVENT_TOKEN:
                self.tokens.append(ev.token)
                chunk = self._decoder.decode(ev.text)
                if chunk:
                    self.text += chunk
                    return chunk
            elif ev.type == _ffi.INFER_EVENT_DONE:
                self._finish(ev)
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    self.text += tail
                    return tail
                if ev.status != _ffi.INFER_OK and not self._cancelled:
                    raise self._error(ev)
        raise StopIteration

    def _finish(self, ev: _Event) -> None:
        self.done = True
        self.status = ev.status
        self.finish_reason = _FINISH.get(ev.finish)
        self.version = ev.version
        self.usage = Usage(ev.n_prompt, ev.n_generated)

    def _error(self, ev: _Event) -> InferError:
        if ev is _CLOSED:
            return SessionClosed("the session was closed while the request was running", ev.status)
        return error_for(ev.status, f"request {self.id} ended with {status_str(ev.status)}")

    def result(self) -> Completion:
        """Consume the rest of the stream and return it as a Completion."""
        for _ in self:
            pass
        usage = self.usage or Usage(0, 0)
        return Completion(self.text, self.finish_reason, self.version, usage.prompt_tokens, usage.completion_tokens)

    def cancel(self) -> None:
        """Ask the library to stop the request (infer_cancel); iteration then ends quietly at
        the next step boundary. Does not wait; see close()."""
        if self.done or self._cancelled:
            return
        self._cancelled = True
        try:
            self._session._cancel(self.id)
        except (NotFound, SessionClosed):
            pass  # already finished, or the session is gone

    def close(self, timeout: float = 30.0) -> None:
        """Cancel the request if it is still running and wait (up to `timeout` seconds) for it
        to end. Idempotent."""
        if self.done:
            return
        self.cancel()
        try:
            while not self.done:
                ev = self._session._next_event(self._pending, timeout)
                if ev.type == _ffi.INFER_EVENT_DONE:
                    self._finish(ev)
        except (queue.Empty, SessionClosed):
            self._pending.abandoned = True
            self.done = True

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Usually this runs where the user dropped the iterator (e.g. right after `break`):
        # cancel and wait, as close() does. But the cyclic GC may run it on any thread at any
        # allocation — the poller thread, or a thread inside one of the session's locks —
        # where waiting would deadlock; there, hand the id to the next poll to cancel.
        try:
            if self.done:
                return
            s = self._session
            if s._lock.held_here() or s._poll_lock.held_here() or s._poller is _threading.current_thread():
                self._cancelled = self._pending.abandoned = True
                s._orphans.put(self.id)  # SimpleQueue.put is safe in finalizers
            else:
                self.close()
        except Exception:
            pass
