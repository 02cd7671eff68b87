"""One open-loop step's result, whichever generator ran it (vegeta, oha): the one definition of
the measured window, latency from intended send time, and what counts as sent, failed and done.

Latency is measured from each request's INTENDED send time, not from when the generator managed
to send it: if the server (or the generator itself) stalls, every request that should have gone
out during the stall is charged the wait, as a user would feel it (no coordinated omission). The
generator's own "service time" (from the actual send) is kept beside it. The first ``warmup_s``
seconds of intended send times are dropped from the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fiber_endpoints import stats


@dataclass
class OpenResult:
    rate: float
    duration_s: float  # measured window (after warm-up)
    scheduled: int  # rate x duration: requests due in the measured window
    sent: int  # of those, requests the generator sent (the rest it never got to: flagged)
    total: int  # all requests of the attack, warm-up included (what the server's CPU served)
    ok: int
    completed_in_window: int  # 2xx answers that arrived inside the measured window
    errors: int
    non2xx: int
    histogram: Any  # from intended send time, µs
    service_histogram: Any  # from actual send time (the generator's own latency), µs
    max_send_lag_us: float  # how far behind schedule the generator sent its latest request
    client_cpu_s: float
    # How late the generator itself was, apart from waiting for a free connection (None: the
    # generator does not tell the two apart).
    schedule_lag_us: float | None = None

    @property
    def achieved_rps(self) -> float:
        """2xx answers per second that arrived in the window (falls short when either side lags)."""
        return self.completed_in_window / self.duration_s if self.duration_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "duration_s": round(self.duration_s, 4),
            "scheduled": self.scheduled,
            "unsent": max(0, self.scheduled - self.sent),
            "requests": self.sent,
            "requests_total": self.total,
            "ok": self.ok,
            "achieved_rps": round(self.achieved_rps, 2),
            "errors": self.errors,
            "non2xx": self.non2xx,
            "latency_us": stats.histogram_summary(self.histogram),
            "hdr": stats.encode_histogram(self.histogram),
            "service_latency_us": stats.histogram_summary(self.service_histogram),
            "service_hdr": stats.encode_histogram(self.service_histogram),
            "max_send_lag_us": round(self.max_send_lag_us, 1),
            **({} if self.schedule_lag_us is None
               else {"schedule_lag_us": round(self.schedule_lag_us, 1)}),
            "client_cpu_s": round(self.client_cpu_s, 4),
        }  # fmt: skip


def window(
    *,
    origin_ns: float,
    intended_ns: npt.NDArray[np.float64],
    sent_ns: npt.NDArray[np.float64],
    tick_ns: npt.NDArray[np.float64] | None = None,
    done_ns: npt.NDArray[np.float64],
    codes: npt.NDArray[np.int64],
    failed: npt.NDArray[np.bool_],
    rate: float,
    warmup_s: float,
    duration_s: float,
    client_cpu_s: float,
    unrecorded_errors: int = 0,
) -> OpenResult:
    """The step's result from every request the generator recorded (one array entry each): when
    it was due, sent and done (ns, on one clock whose schedule began at ``origin_ns``), its status
    and whether it failed. ``tick_ns``: when the generator's scheduler released each request
    (oha), whose lateness alone is ``schedule_lag_us``; the rest of a send lag is the wait for a
    free connection. ``unrecorded_errors``: failures the generator only counted (oha keeps no row
    for them); they count as errors of the window and as served requests."""
    send_lag = sent_ns - intended_ns
    corrected_us = (done_ns - intended_ns) / 1e3
    window_start = origin_ns + warmup_s * 1e9
    window_end = window_start + duration_s * 1e9
    keep = (intended_ns >= window_start) & (intended_ns < window_end)
    non2xx = (~failed) & ((codes < 200) | (codes >= 300))
    ok = keep & ~failed & ~non2xx
    arrived = ~failed & ~non2xx & (done_ns >= window_start) & (done_ns < window_end)
    return OpenResult(
        rate=rate,
        duration_s=duration_s,
        scheduled=round(rate * duration_s),
        sent=int(keep.sum()) + unrecorded_errors,
        total=int(intended_ns.size) + unrecorded_errors,
        ok=int(ok.sum()),
        completed_in_window=int(arrived.sum()),
        errors=int((keep & failed).sum()) + unrecorded_errors,
        non2xx=int((keep & non2xx).sum()),
        # Failed requests count too: a timeout is a latency a user felt.
        histogram=stats.histogram_from_values(corrected_us[keep]),
        service_histogram=stats.histogram_from_values((done_ns - sent_ns)[keep] / 1e3),
        max_send_lag_us=_max_us(send_lag[keep]),
        client_cpu_s=client_cpu_s,
        schedule_lag_us=None if tick_ns is None else _max_us((tick_ns - intended_ns)[keep]),
    )


def _max_us(ns: npt.NDArray[np.float64]) -> float:
    return float(ns.max() / 1e3) if ns.size else 0.0
