"""Workload generation: the rule set in ``rules`` driven by a seed (``generate``)
or by Hypothesis (``strategies``)."""

from __future__ import annotations

from generators.choose import RandomChooser
from generators.rules import build_workload, profile_named
from generators.workload import Settings, Step, Workload

__all__ = ["Settings", "Step", "Workload", "generate"]


def generate(seed: int, profile: str = "ci") -> Workload:
    """The workload for ``seed`` and ``profile`` (``generators.rules.profile_named``): the same
    seed always gives the same workload."""
    return build_workload(RandomChooser(seed), profile_named(profile), seed=seed)
