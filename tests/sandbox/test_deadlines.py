"""The shared backstop thread: deadlines fire in order, cancelled ones never, and a slow callback does not
hold up the next deadline."""

import threading
import time

from workbench.sandbox.deadlines import Deadlines


def test_deadlines_fire_in_order_and_cancelled_ones_do_not():
    deadlines = Deadlines()
    fired: list[str] = []
    done = threading.Event()
    deadlines.after(0.15, lambda: (fired.append("late"), done.set()))
    deadlines.after(0.05, lambda: fired.append("early"))
    cancel = deadlines.after(0.1, lambda: fired.append("cancelled"))
    cancel()
    assert done.wait(2)
    time.sleep(0.05)
    assert fired == ["early", "late"]
    assert deadlines.pending() == 0


def test_a_slow_callback_does_not_delay_the_next_deadline():
    deadlines = Deadlines()
    second = threading.Event()
    release = threading.Event()
    deadlines.after(0.01, lambda: release.wait(5))  # an overdue execution whose kill is slow
    start = time.monotonic()
    deadlines.after(0.05, second.set)
    assert second.wait(2)
    assert time.monotonic() - start < 1.0
    release.set()


def test_a_failing_callback_is_logged_and_the_thread_goes_on(caplog):
    deadlines = Deadlines()
    after = threading.Event()
    deadlines.after(0.01, lambda: 1 / 0)
    deadlines.after(0.05, after.set)
    assert after.wait(2)
