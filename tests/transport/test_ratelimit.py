"""TokenBucket and WeightBudget (sentrycoin.ratelimit), on injected clocks."""

from __future__ import annotations

import pytest

from sentrycoin.ratelimit import TokenBucket, WeightBudget, parse_retry_after


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_bucket_burst_then_rate():
    clock = Clock()
    bucket = TokenBucket(2.0, 3.0, clock)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_take() and not bucket.try_take()
    clock.now += 100.0
    assert bucket.tokens == 3.0  # never above capacity


def test_reserve_queues_callers_in_order():
    clock = Clock()
    bucket = TokenBucket(1.0, 1.0, clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, pytest.approx(1.0), pytest.approx(2.0)]


@pytest.mark.parametrize("n,per_s", [(5, 1.0), (8, 1.0), (3, 1.0), (480, 3600.0)])
def test_at_most_never_passes_more_than_n_in_any_window(n, per_s):
    clock = Clock()
    bucket = TokenBucket.at_most(n, per_s, clock=clock)
    passed: list[float] = []
    step = per_s / 200.0
    for _ in range(2000):  # ten windows of a client that always wants to send
        while bucket.try_take():
            passed.append(clock.now)
        clock.now += step
    windows = [sum(1 for t in passed if start <= t < start + per_s) for start in passed]
    assert max(windows) <= n
    assert len(passed) >= 9 * (n - n / 2)  # and it does let the sustained rate through


def test_at_most_rejects_a_burst_as_large_as_the_budget():
    with pytest.raises(ValueError):
        TokenBucket.at_most(3, 1.0, burst=3)


def test_weight_budget_paces_within_the_window_and_keeps_a_margin():
    wall, mono = Clock(1200.0), Clock()
    budget = WeightBudget(1000, 60.0, 0.2, wall=wall, clock=mono)
    assert budget.allowed == 800
    spent = 0
    while budget.wait_s(50) == 0:
        budget.spend(50)
        spent += 50
    assert spent == 800  # 80 % of the window, the rest kept for other clients on the IP
    assert budget.wait_s(50) == pytest.approx(60.0)  # the window began at 1200
    wall.now += 30.0
    assert budget.wait_s(50) == pytest.approx(30.0)
    wall.now += 30.0  # a new window: the venue's counter starts again
    assert budget.wait_s(50) == 0 and budget.used == 0


def test_weight_budget_believes_the_venue_when_it_reports_more():
    wall, mono = Clock(600.0), Clock()
    budget = WeightBudget(1000, 60.0, 0.2, wall=wall, clock=mono)
    budget.spend(50)
    budget.observe(780)  # other clients behind our IP used most of it
    assert budget.used == 780
    assert budget.wait_s(25) > 0 and budget.wait_s(20) == 0
    budget.observe(100)  # an older answer arriving late does not lower the estimate
    assert budget.used == 780


def test_weight_budget_block_holds_every_request():
    wall, mono = Clock(600.0), Clock()
    budget = WeightBudget(1000, 60.0, 0.2, wall=wall, clock=mono)
    budget.block_for(7.0)
    assert budget.wait_s(5) == pytest.approx(7.0)
    budget.block_for(2.0)  # a shorter block does not cut a longer one
    assert budget.wait_s(5) == pytest.approx(7.0)
    mono.now += 7.0
    assert budget.wait_s(5) == 0


def test_a_request_heavier_than_the_margin_still_goes_in_an_empty_window():
    budget = WeightBudget(200, 60.0, 0.2, wall=Clock(0.0), clock=Clock())
    assert budget.wait_s(250) == 0  # limit=5000 costs 250: allowed alone, never starved


@pytest.mark.parametrize("value,expected", [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None),
                                            ("-1", None), ("inf", None)])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected
