"""Exceptions of the libinfer binding: one InferError subclass per infer_status code."""
from __future__ import annotations

from . import _ffi


class InferError(Exception):
    """A libinfer call failed. ``status`` is the infer_status code (negative int),
    ``status_name`` its C name (e.g. ``"INFER_EFORMAT"``); the message is the library's
    infer_last_error() sentence (file, offset, field or limit where they apply)."""

    status: int = _ffi.INFER_EINTERNAL

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def status_name(self) -> str:
        return status_str(self.status)


class InvalidArgument(InferError, ValueError):
    """INFER_EINVAL: a bad argument or request (also a prompt beyond the model's context)."""
    status = _ffi.INFER_EINVAL


class OutOfMemory(InferError, MemoryError):
    """INFER_ENOMEM: out of memory, or a request that can never fit the KV pool."""
    status = _ffi.INFER_ENOMEM


class Busy(InferError):
    """INFER_EBUSY: the submit queue is full (retry later), or an unload with mode="nowait"
    found requests in flight."""
    status = _ffi.INFER_EBUSY


class NotFound(InferError, LookupError):
    """INFER_ENOTFOUND: no such model, version or request."""
    status = _ffi.INFER_ENOTFOUND


class FormatError(InferError):
    """INFER_EFORMAT: a malformed model or tokenizer file."""
    status = _ffi.INFER_EFORMAT


class InferIOError(InferError, OSError):
    """INFER_EIO: a file could not be opened, read or mapped."""
    status = _ffi.INFER_EIO

    def __init__(self, message: str, status: int | None = None) -> None:
        # OSError's constructor interprets a 2-tuple as (errno, strerror); keep one argument.
        InferError.__init__(self, message, status)


class Canceled(InferError):
    """INFER_ECANCELED: the request was cancelled (by an unload with mode="cancel", or the
    session is being destroyed)."""
    status = _ffi.INFER_ECANCELED


class SessionClosed(Canceled):
    """The Session was closed: no further calls are possible, and requests still in flight
    end with this error."""


class TimedOut(InferError, TimeoutError):
    """INFER_ETIMEDOUT: the request's deadline passed."""
    status = _ffi.INFER_ETIMEDOUT


class DeviceError(InferError):
    """INFER_EDEVICE: an accelerator error."""
    status = _ffi.INFER_EDEVICE


class Unsupported(InferError):
    """INFER_EUNSUPPORTED: a valid but unsupported feature, format or option (e.g. messages
    for a model whose chat template is not recognised)."""
    status = _ffi.INFER_EUNSUPPORTED


class InternalError(InferError):
    """INFER_EINTERNAL: a bug in libinfer."""
    status = _ffi.INFER_EINTERNAL


_BY_STATUS: dict[int, type[InferError]] = {
    cls.status: cls
    for cls in (InvalidArgument, OutOfMemory, Busy, NotFound, FormatError, InferIOError, Canceled,
                TimedOut, DeviceError, Unsupported, InternalError)
}


def status_str(status: int) -> str:
    """The C name of a status code, e.g. ``"INFER_ENOTFOUND"`` (infer_status_str)."""
    return _ffi.lib.infer_status_str(status).decode()


def error_for(status: int, message: str) -> InferError:
    """The InferError subclass instance for `status`, with `message`."""
    cls = _BY_STATUS.get(status, InferError)
    return cls(message or status_str(status), status)


def check(status: int, what: str) -> None:
    """Raise the mapped InferError if `status` is not INFER_OK. Must run on the thread that
    made the failing call, right after it: infer_last_error() is per thread."""
    if status == _ffi.INFER_OK:
        return
    detail = (_ffi.lib.infer_last_error(None) or b"").decode("utf-8", "replace")
    # The library's sentence names the file, field or limit itself; `what` is the fallback.
    raise error_for(status, detail or f"{what}: {status_str(status)}")
