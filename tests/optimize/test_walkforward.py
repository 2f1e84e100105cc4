"""Walk-forward windows: disjoint, ordered, aligned, and the optimiser never sees a fold's test window."""

from __future__ import annotations

import pytest

import trader.optimize.study as study_mod
from trader.backtest.runner import parse_timerange
from trader.optimize.study import HyperoptRequest, run_hyperopt
from trader.optimize.walkforward import walk_forward

DAY = 86_400_000
MIN15 = 900_000


def _check(folds, start: int, end: int, bar: int) -> None:
    for f in folds:
        assert start <= f.train_start_ms < f.train_end_ms <= f.test_start_ms < f.test_end_ms <= end
        for t in (f.train_start_ms, f.train_end_ms, f.test_start_ms, f.test_end_ms):
            assert (t - start) % bar == 0
    for a, b in zip(folds, folds[1:], strict=False):
        assert a.test_end_ms <= b.test_start_ms  # test windows never overlap
        assert b.train_start_ms > a.train_start_ms  # the train window rolls


def test_folds_only_cut_by_ratio() -> None:
    s, e = parse_timerange("20250504-20250603")
    folds = walk_forward(s, e, folds=3, train_ratio=3.0, bar_ms=MIN15)
    assert len(folds) == 3
    _check(folds, s, e, MIN15)
    # test = 30 d / (3 folds + ratio 3) = 5 d, train = 3 × 5 = 15 d; the last test ends at the end of the range.
    assert all(f.test_end_ms - f.test_start_ms == 5 * DAY for f in folds)
    assert all(f.train_end_ms - f.train_start_ms == 15 * DAY for f in folds)
    assert folds[-1].test_end_ms == e and folds[0].train_start_ms == s


def test_folds_from_lengths_fit_as_many_as_possible() -> None:
    s, e = parse_timerange("20250504-20250603")
    folds = walk_forward(s, e, train_ms=10 * DAY, test_ms=4 * DAY, bar_ms=MIN15)
    assert len(folds) == 5  # (30 − 10) // 4
    _check(folds, s, e, MIN15)
    assert folds[-1].test_end_ms == e
    assert len(walk_forward(s, e, folds=2, train_ms=10 * DAY, test_ms=4 * DAY, bar_ms=MIN15)) == 2


def test_no_fold_fits() -> None:
    s, e = parse_timerange("20250504-20250510")
    with pytest.raises(ValueError, match="too short"):
        walk_forward(s, e, train_ms=5 * DAY, test_ms=2 * DAY)
    with pytest.raises(ValueError):
        walk_forward(e, s, folds=2)


@pytest.mark.parametrize("engine", ["backtrader", "screening"])
def test_optimiser_backtests_stay_inside_the_train_window(monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    seen: list[tuple[str, int, int, dict]] = []
    real, real_screen = study_mod.run_backtest, study_mod.run_screening

    def spy(request, progress=None):
        seen.append(("backtrader", request.start_ms, request.end_ms, dict(request.strategy_params)))
        return real(request, progress)

    def spy_screen(request, data=None):
        seen.append(("screening", request.start_ms, request.end_ms, dict(request.strategy_params)))
        return real_screen(request, data)

    monkeypatch.setattr(study_mod, "run_backtest", spy)
    monkeypatch.setattr(study_mod, "run_screening", spy_screen)
    s, e = parse_timerange("20250504-20250514")
    req = HyperoptRequest(pairs=("BTC",), timeframe="15m", start_ms=s, end_ms=e, spaces=("buy",), epochs=4,
                          folds=2, sampler="tpe", seed=1, engine=engine)
    result = run_hyperopt(req)
    assert result.engine == engine
    assert len(result.folds) == 2
    calls = iter(seen)
    for fr in result.folds:
        f = fr.fold
        trials = [next(calls) for _ in range(4)]
        assert all((eng, a, b) == (engine, f.train_start_ms, f.train_end_ms) for eng, a, b, _ in trials)
        if engine == "screening":
            # The best parameters are re-run on Backtrader (and once more on the screening engine to compare).
            recheck = [next(calls), next(calls)]
            assert [c[0] for c in recheck] == ["backtrader", "screening"]
            assert all((c[1], c[2], c[3]) == (f.train_start_ms, f.train_end_ms, fr.strategy_params)
                       for c in recheck)
            assert fr.recheck is not None and fr.recheck["trades_equal"] and fr.recheck["scores_equal"]
        oos = next(calls)
        assert (oos[0], oos[1], oos[2]) == ("backtrader", f.test_start_ms, f.test_end_ms)
        assert oos[3] == fr.strategy_params  # the test runs exactly the parameters chosen on the train window
        assert f.train_end_ms <= f.test_start_ms
    assert next(calls, None) is None
