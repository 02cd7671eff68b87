"""The report's reliability table (fuzzing, hostile clients, overload, shutdown, soak)."""

from __future__ import annotations

from fiber_endpoints.bench import reliability
from fiber_endpoints.report.cells import fmt_opt, md_table


def reliability_section(doc: reliability.ReliabilityDoc) -> list[str]:
    """The reliability table per stack (issue 13), then every hostile case; "–" = not run."""
    m = doc["machine"]
    lines = [
        "## Reliability under abuse and faults",
        "",
        f"Measured {m.get('when', '?')} on {m.get('cpus', '?')} CPUs, load average "
        f"{m.get('load_average', '?')} at the end (a shared VM: read latencies with it). Goals: "
        "0 fuzz failures, every hostile case held with the bystander's p99 ≤ 5x alone, "
        "recovery from 2x overload ≤ 5 s, 0 requests lost across SIGTERM, soak 0 errors and "
        "RSS drift < 5 %.",
        "",
    ]
    rows = []
    for name, part in doc["stacks"].items():
        cases = part.get("hostile", [])
        held = sum(c["held"] for c in cases)
        ratios = [c["bystander_p99_ms"] / c["alone_p99_ms"] for c in cases if c["alone_p99_ms"]]
        ov = part.get("overload")
        sd = part.get("shutdown")
        so = part.get("soak")
        rows.append(
            [
                f"`{name}`",
                fmt_opt(part.get("fuzz_requests"), "{:,}"),
                fmt_opt(part.get("fuzz_failures")),
                f"{held}/{len(cases)}" if cases else "–",
                f"{max(ratios):.1f}x" if ratios else "–",
                f"{ov['peak_rps']:,.0f} → {ov['rate']:,.0f}/s" if ov else "–",
                fmt_opt(ov and ov["shed_503"], "{:,}"),
                ("not in 15 s" if ov["recovery_s"] is None else f"{ov['recovery_s']:.1f} s")
                if ov
                else "–",
                f"{ov['rss_before_mib']:.0f} → {ov['rss_max_mib']:.0f}" if ov else "–",
                f"{sd['failed']}/{sd['before']}, exit {sd['exit']}" if sd else "–",
                f"{so['errors']} in {so['requests']:,} ({so.get('unsent', 0):,} unsent)"
                if so
                else "–",
                f"{so['rss_drift_pct']:+.2f} %" if so else "–",
            ]
        )
    lines += md_table(
        [
            "stack",
            "fuzz requests",
            "fuzz failures",
            "hostile held",
            "worst bystander p99 ÷ alone",
            "overload (0.25 CPU): peak → 2x",
            "503 shed",
            "recovery",
            "RSS MiB before → max",
            "SIGTERM lost / sent before",
            "soak errors",
            "soak RSS drift",
        ],
        rows,
    )
    case_rows = []
    for name, part in doc["stacks"].items():
        for c in part.get("hostile", []):
            ratio = c["bystander_p99_ms"] / c["alone_p99_ms"] if c["alone_p99_ms"] else 0.0
            case_rows.append(
                [
                    f"`{name}`",
                    c["case"],
                    "held" if c["held"] else "**not held**",
                    c["detail"],
                    f"{c['bystander_p99_ms']:.2f} ({ratio:.1f}x)",
                    f"{c['bystander_requests']:,} / {c['bystander_errors']}",
                    f"{c['attack_cpu_s']:.2f}",
                ]
            )
    if case_rows:
        lines += [
            "",
            "Hostile cases (`bench/hostile.py`; the attack's own CPU is the generator thread's):",
            "",
        ]
        lines += md_table(
            [
                "stack",
                "case",
                "",
                "what happened",
                "bystander p99 ms (× alone)",
                "bystander requests / errors",
                "attack CPU s",
            ],
            case_rows,
        )
    return [*lines, ""]
