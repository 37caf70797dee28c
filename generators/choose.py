"""Where choices come from. The workload rules draw through a Chooser, so the same
rules run from a seeded ``random.Random`` (the fuzzer: fast, one seed = one
workload) or from Hypothesis (strategies and a state machine: shrinkable)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        ...

    def choice(self, options: Sequence[T]) -> T: ...

    def boolean(self, p: float = 0.5) -> bool: ...


class RandomChooser:
    """Choices from ``random.Random(seed)``: deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rnd.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rnd.randrange(len(options))]

    def boolean(self, p: float = 0.5) -> bool:
        return self.rnd.random() < p


class HypothesisChooser:
    """Choices drawn from Hypothesis (``st.data()``), so workloads shrink."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(list(options)))

    def boolean(self, p: float = 0.5) -> bool:
        # shrinks towards False; p biases nothing under Hypothesis (it explores both)
        return self.data.draw(st.booleans())
