"""Dynamic batching without added wait: the single-row requests of one event-loop turn,
predicted in one call.

Under concurrent load the event loop reads several connections per turn (uvloop runs every
ready socket's callbacks, then the callbacks scheduled meanwhile). The fast path
(``fast_path.FastPathProtocol``) parses and checks each ``/inference`` request as it
completes and offers its row to :class:`RowBatcher`. The first row of a turn is predicted and
answered at once, as without batching, and schedules :meth:`RowBatcher.end_turn` with
``call_soon``, which runs right after the turn's I/O callbacks: every row that arrived after it
in that turn is predicted by one predictor call and each connection is answered in arrival
order. Nothing waits for a batch to fill (Triton's and MLServer's batchers hold requests up to a
delay for that), and a request alone in its turn (every sequential one) is not deferred at all:
deferring it cost 8 µs of sequential p50 here (``bench`` with the stack beside itself with
``FIBER_ENDPOINTS_BATCHING=0``).

Why: under load the compiled model's per-row cost is the largest single item of the fast
stack's CPU per request (``docs/fast-python.md``, profile under load): one row at a time it
walks 500 trees with cold caches; in a batch the trees stay in cache across rows.

Answers are the same as without batching: each row is predicted by the same compiled function
(the batch entry point runs the per-row code over a row range), parity is checked for both entry
points, and ``FIBER_ENDPOINTS_BATCHING=0`` turns batching off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from time import perf_counter, time_ns
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fiber_endpoints.stacks.msgspec_handler import Handler, Reply

BATCHING_ENV = "FIBER_ENDPOINTS_BATCHING"
_logger = logging.getLogger("uvicorn.error")  # where uvicorn logs an app's exceptions


def enabled() -> bool:
    return os.environ.get(BATCHING_ENV, "1") != "0"


class Connection(Protocol):
    """What the batcher answers: a connection with requests waiting in the batch."""

    def answer_batched(
        self, reply: Reply, started: float, ticket: Any, call_ns: tuple[int, int]
    ) -> None: ...

    def fail_batched(self, started: float, ticket: Any) -> None: ...


# A request in the batch: its connection, row, start (perf_counter), and what the connection
# needs back to answer it (its ticket: request target, keep-alive, trace). The answer also
# carries the predictor call's wall-clock start and end (ns): a traced request's
# model-inference span is that call, which predicted its row among the batch's.
Pending = tuple[Connection, Sequence[float | None], float, Any]


class RowBatcher:
    """The rows of one worker's event loop waiting for this turn's predictor call."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._pending: list[Pending] = []
        self._turn = False  # a row was answered this turn: the next ones wait for its end
        self.batches = 0  # predictor calls made, and rows they predicted (for tests and docs)
        self.rows = 0

    def wait(
        self, loop: Any, conn: Connection, row: Sequence[float | None], started: float, ticket: Any
    ) -> bool:
        """Whether the row waits for the turn's end (the connection is answered from
        :meth:`end_turn`). The first row of a turn does not: its caller predicts and answers it
        at once, as without batching (a request alone, as every sequential one is, is never
        deferred: deferring it cost 8 µs of p50 here); the rows after it in the same turn wait,
        and :meth:`end_turn` predicts them in one call."""
        if self._turn:
            self._pending.append((conn, row, started, ticket))
            return True
        self._turn = True
        loop.call_soon(self.end_turn)
        return False

    def end_turn(self) -> None:
        self._turn = False
        self.flush()

    def flush(self) -> None:
        """Predict every waiting row in one call and answer each connection, in arrival order.
        Also called by a connection that must answer something else first (order kept)."""
        pending, self._pending = self._pending, []
        if pending:
            self._predict(pending)

    def _predict(self, pending: list[Pending]) -> None:
        handler = self.handler
        t0_ns, t0 = time_ns(), perf_counter()
        try:
            if len(pending) == 1:
                predictions: Sequence[Any] = [handler.predictor.predict_row(pending[0][1])]
            else:
                predictions = handler.predictor.predict_rows([p[1] for p in pending])
            inference_s, t1_ns = perf_counter() - t0, time_ns()
            # Every reply built before any is written: a failure answers every row (500), none
            # is left waiting.
            starts = [started for _, _, started, _ in pending]
            replies = [
                handler.single_reply(prediction, started, inference_s)
                for started, prediction in zip(starts, predictions, strict=True)
            ]
        except Exception:  # as uvicorn does for an app that raises: log, 500, close
            _logger.error("Exception in the batched inference fast path", exc_info=True)
            for conn, _, started, ticket in pending:
                conn.fail_batched(started, ticket)
            return
        self.batches += 1
        self.rows += len(pending)
        for (conn, _, started, ticket), reply in zip(pending, replies, strict=True):
            conn.answer_batched(reply, started, ticket, (t0_ns, t1_ns))
