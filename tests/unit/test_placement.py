"""The one placement planner, on hand-given CPU sets."""

from __future__ import annotations

import pytest

from fiber_endpoints.bench import placement


def test_client_on_the_first_cpu_servers_on_the_rest() -> None:
    p = placement.plan(available=[0, 1, 2, 3])
    assert (p.client_cpus, p.server_cpus) == ([0], [1, 2, 3])


def test_one_cpu_is_shared() -> None:
    p = placement.plan(available=[3])
    assert (p.client_cpus, p.server_cpus) == ([3], [3])
    assert "share" in p.note


def test_unpinned_uses_every_cpu_for_both() -> None:
    p = placement.plan(pin=False, available=[0, 1])
    assert (p.client_cpus, p.server_cpus) == ([0, 1], [0, 1])


def test_given_cpus_are_kept_and_the_other_side_takes_what_is_left() -> None:
    assert placement.plan(server_cpus=[0], available=[0, 1]).client_cpus == [1]
    p = placement.plan(client_cpus=[1], available=[0, 1, 2])
    assert (p.client_cpus, p.server_cpus) == ([1], [0, 2])
    both = placement.plan(client_cpus=[0], server_cpus=[0], available=[0, 1])
    assert both.server_cpus == [0] and "share" in both.note


def test_a_cpu_that_is_not_usable_is_refused() -> None:
    with pytest.raises(ValueError, match=r"CPUs \[5\] are not usable"):
        placement.plan(server_cpus=[5], available=[0, 1])
