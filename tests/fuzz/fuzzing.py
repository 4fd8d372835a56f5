"""What every fuzz module shares: example budgets, the mutation strategy, a per-example time
bound, the one acceptable failure (a typed GridError), and the corpus.

The default run is small and derandomized (CI: all fuzz tests together in well under 40 s).
``GRID_FUZZ_EXAMPLES=20000`` runs that many examples per test with fresh randomness; the
fuzz tests are then marked ``slow`` (see conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from grid.errors import GridError, codes

CORPUS = Path(__file__).parent / "corpus"
LONG_EXAMPLES = int(os.environ.get("GRID_FUZZ_EXAMPLES", "0") or 0)
EXAMPLE_SECONDS = 5.0  # no single input may take longer than this: a hang is a bug


def fuzz_settings(examples: int, deadline_ms: int = 2000) -> settings:
    """``examples`` in the default run (derandomized, no database), or the long run's."""
    return settings(
        max_examples=LONG_EXAMPLES or examples,
        deadline=deadline_ms,
        derandomize=not LONG_EXAMPLES,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class Hang(BaseException):
    """One input ran past ``EXAMPLE_SECONDS`` (a BaseException: no parser may swallow it)."""


@contextlib.contextmanager
def bounded(seconds: float = EXAMPLE_SECONDS) -> Iterator[None]:
    """Raise ``Hang`` in the main thread when the block runs past ``seconds``."""

    def ring(_sig: int, _frame: Any) -> None:
        raise Hang(f"one input took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def typed_or_nothing(parse: Callable[[], object]) -> GridError | None:
    """Run ``parse`` within the time bound; return the GridError it raised (None if none).
    Any other exception propagates and fails the example."""
    with bounded():
        try:
            parse()
        except GridError as exc:
            assert codes().get(exc.code) is type(exc), f"{type(exc).__name__} has no stable code"
            return exc
    return None


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` damaged the ways storage and networks damage bytes: flipped bytes, a cut,
    a spliced or dropped run, a huge little-endian field; plus raw random bytes."""
    n = max(len(valid), 1)
    at = st.integers(0, n - 1)

    def flips(d: st.DrawFn) -> bytes:
        out = bytearray(valid)
        for _ in range(d(st.integers(1, 4))):
            if out:
                out[d(at) % len(out)] ^= d(st.integers(1, 255))
        return bytes(out)

    def splice(d: st.DrawFn) -> bytes:
        i, j = sorted((d(at), d(at)))
        return valid[:i] + d(st.binary(max_size=64)) + valid[j:]

    def huge(d: st.DrawFn) -> bytes:
        i = d(at)
        field = d(st.sampled_from([b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\0\0\0\x80"]))
        return valid[:i] + field + valid[i + 4 :]

    return st.one_of(
        st.composite(flips)(),
        st.builds(lambda i: valid[:i], at),
        st.composite(splice)(),
        st.composite(huge)(),
        st.binary(max_size=2 * n if n < 4096 else 512),
    )


def corpus(kind: str) -> list[Any]:
    """pytest params of every file in ``corpus/<kind>/``, for replay."""
    folder = CORPUS / kind
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return [pytest.param(f.read_bytes(), id=f.name) for f in files]


def save(kind: str, name: str, data: bytes) -> None:
    """Add ``data`` to the corpus (for a session that finds a new failing input)."""
    folder = CORPUS / kind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
