"""The daemon's errors: one hierarchy under `model.errors.DrumDiffError`, each with a reason code.

The reason code is what a client sees in `/drumdiff/fail <request_id> <reason_code> <text>`, so
it is part of the protocol (listed in docs/protocol.md); the text is for humans.
"""

from __future__ import annotations

from drumdiff.model.errors import DrumDiffError


class ServerError(DrumDiffError):
    """Base of every error the daemon answers with `/drumdiff/fail`."""

    code = "internal"

    def __init__(self, message: str, *, request_id: int | str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class ProtocolError(ServerError, ValueError):
    """A message is malformed, out of range or names something that does not exist."""

    code = "bad_request"


class MalformedPacket(ProtocolError):
    """A datagram is not OSC at all (or uses an address pattern the daemon does not expand)."""

    code = "malformed"


class UnknownAddress(ProtocolError):
    """An OSC address the daemon does not serve."""

    code = "unknown_address"


class BusyError(ServerError):
    """The render queue is full; the client should retry or use the pool."""

    code = "busy"


class ShuttingDown(ServerError):
    """The daemon is stopping and drops requests it has not started."""

    code = "shutting_down"


class RenderError(ServerError):
    """Inference or publishing failed for a request that was valid."""

    code = "render_error"


class LoadError(ServerError):
    """A checkpoint cannot be loaded; `code` says why (the old model stays)."""

    def __init__(self, message: str, *, code: str = "bad_checkpoint") -> None:
        super().__init__(message)
        self.code = code


#: Every reason code a client can receive, for the protocol reference.
REASON_CODES: dict[str, str] = {
    "bad_request": "arguments malformed, out of range, or naming an unknown class/sampler/param",
    "malformed": "the datagram is not an OSC packet, or uses an address pattern (wildcards)",
    "unknown_address": "no such address under /drumdiff/",
    "busy": "the render queue is full (queue_size in the server config); retry or use the pool",
    "shutting_down": "the daemon is stopping; the request was not started",
    "render_error": "inference or writing the file failed",
    "internal": "a bug in the daemon (logged with a traceback)",
    "not_allowed": "load: the path is outside the configured model folders",
    "not_found": "load: no such checkpoint file",
    "bad_checkpoint": "load: the file is not a usable drumdiff checkpoint",
}
