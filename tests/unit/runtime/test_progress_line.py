"""The one progress line (sealtrail.runtime.progress) replay and hold draw on stderr."""

from __future__ import annotations

import io

from sealtrail.runtime.progress import ProgressLine


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_known_total_draws_a_bar_with_rate_and_eta() -> None:
    """With a total: a bar, done/total, the rate and the time left; one line, ended once."""
    out, clock = io.StringIO(), Clock()
    line = ProgressLine("hold C", enabled=True, unit="units", stream=out, clock=clock)
    clock.now += 2.0
    line(50, 100)
    assert out.getvalue() == ("\rhold C [" + "#" * 15 + "." * 15 + "] 50/100 units, "
                              "25/s, ETA 2 s ")
    clock.now += 2.0
    line(100, 100)
    assert out.getvalue().endswith("[" + "#" * 30 + "] 100/100 units, 25/s ")
    line.close()
    line.close()
    assert out.getvalue().count("\n") == 1 and out.getvalue().endswith("\n")


def test_redraws_are_throttled_but_completion_and_force_always_draw() -> None:
    """Within ``interval`` a redraw is skipped, unless forced or the work is complete."""
    out, clock = io.StringIO(), Clock()
    line = ProgressLine("replay", enabled=True, total=10, stream=out, clock=clock)
    line.update(1)
    line.update(2)
    assert out.getvalue().count("\r") == 1
    line.update(3, note=", 1 written", force=True)
    assert out.getvalue().count("\r") == 2 and out.getvalue().endswith(", 1 written ")
    line.update(10)
    assert out.getvalue().count("\r") == 3


def test_disabled_small_or_unknown_totals() -> None:
    """Disabled: nothing at all; a total under min_total: nothing; no total: no bar."""
    out = io.StringIO()
    ProgressLine("x", enabled=False, stream=out)(5, 100)
    small = ProgressLine("x", enabled=True, min_total=20, stream=out)
    small(5, 10)
    small.close()
    assert out.getvalue() == ""
    open_ended = ProgressLine("replay", enabled=True, unit="entries checked", stream=out,
                              clock=Clock())
    open_ended.update(7)
    assert out.getvalue() == "\rreplay 7 entries checked, 7,000,000/s "
