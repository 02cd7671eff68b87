"""Connection-level limits of the Python stacks, one definition each (docs/contract.md, "Limits").

The Go stack's equivalents are ``fiber/config.go``'s defaults (same values). Who enforces what:

- ``asgi-msgspec``: all of them, in :mod:`fiber_endpoints.stacks.guarded_protocol` (its own
  subclass of uvicorn's httptools protocol), plus uvicorn's keep-alive timeout.
- ``fastapi`` (the control, uvicorn's own options only): :data:`IDLE_TIMEOUT_S`
  (``timeout_keep_alive``), :data:`MAX_CONNECTIONS` (``limit_concurrency``, uvicorn's plain-text
  503 without ``Retry-After``) and :data:`BACKLOG`. uvicorn has no option for a request read
  timeout or a header size limit with httptools: the control does not bound them, and a proxy in
  front must (nginx ``client_header_timeout``/``client_body_timeout``/
  ``large_client_header_buffers``, Envoy ``request_headers_timeout``/``max_request_headers_kb``).
"""

from __future__ import annotations

from fiber_endpoints.contract import ContractError

# A connection that has sent nothing yet, or nothing since its last response, is closed after this.
IDLE_TIMEOUT_S = 5.0
# A request, head and body, must arrive whole within this many seconds of its first byte (the
# body limit at 1 MiB needs ~105 KB/s); past it: 408 and the connection is closed.
READ_TIMEOUT_S = 10.0
# The request line and headers together (names, values and separators); past it: 431 and close.
# llhttp (httptools) and fasthttp read headers into buffers this size elsewhere (Node.js: 16 KiB).
MAX_HEADER_BYTES = 16_384
# Open connections per process; past it a new connection gets 503 with Retry-After and is
# closed. One HTTP/1.1 connection has at most one request in work (pipelined ones wait on it),
# so this also bounds the queue: what a stack cannot keep up with waits on at most this many
# connections, then is shed (docs/contract.md, "Overload").
MAX_CONNECTIONS = 4096
# The listen backlog (connections the kernel holds before the server accepts them).
BACKLOG = 2048
# Seconds a client told 503 should wait before it tries again.
RETRY_AFTER_S = 1
# Graceful stop on SIGTERM: in-flight requests get this long to finish.
SHUTDOWN_TIMEOUT_S = 10.0
# On SIGTERM a keep-alive connection between requests is closed after this long, not at once: a
# request already sent on it (in the socket, not yet read) is answered (asgi-msgspec only).
SHUTDOWN_DRAIN_S = 0.5


def read_timeout() -> ContractError:
    return ContractError(408, f"request not received within {READ_TIMEOUT_S:g} s")


def headers_too_large() -> ContractError:
    return ContractError(431, f"request line and headers larger than {MAX_HEADER_BYTES} bytes")


def too_many_connections() -> ContractError:
    return ContractError(503, f"more than {MAX_CONNECTIONS} open connections; retry later")
