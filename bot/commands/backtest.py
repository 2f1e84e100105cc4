"""``bsmart backtest``: run a strategy over stored candles, print a summary, store the run and export it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from bot.commands.common import add_config_argument, run_args, settings_or_exit
from trader.backtest.export import result_summary, write_export
from trader.backtest.persist import store_backtest
from trader.backtest.runner import BacktestRequest, BacktestResult, run_backtest
from trader.performance.montecarlo import monte_carlo, trade_returns
from trader.persistence.database import make_engine, make_session_factory
from trader.persistence.migrate import upgrade
from trader.risk.limits import declared_risk_params
from trader.risk.liquidity import LiquidityRules
from trader.strategy.reference import STRATEGIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backtest", help="backtest a strategy on stored candles (futures accounting)")
    add_config_argument(parser)
    parser.add_argument("--strategy", default="rsi_bollinger", help=f"one of: {', '.join(sorted(STRATEGIES))}")
    parser.add_argument("--pairs", help="comma-separated (default: the config's pair_whitelist)")
    parser.add_argument("--timeframe", default="1m", help="bar size, e.g. 1m, 5m, 1h (default 1m)")
    parser.add_argument("--timerange", default="", help="YYYYMMDD-YYYYMMDD, UTC, end exclusive (default: all data)")
    parser.add_argument("--leverage", type=int, help="default: the config's leverage")
    parser.add_argument("--wallet", type=float, default=10_000.0, help="starting wallet in USDT (default 10000)")
    parser.add_argument("--export", metavar="DIR", help="results directory (default <user_data>/backtest_results)")
    parser.add_argument("--datadir", help="candle store (default <user_data>/data/binance/futures, else the "
                                          "sample data shipped with the package)")
    parser.add_argument("--montecarlo", type=int, default=10_000, metavar="RUNS",
                        help="Monte Carlo runs over the trades (0 to skip; default 10000)")
    parser.add_argument("--no-db", action="store_true", help="do not store the run in the database")
    parser.set_defaults(func=_run)


def _progress(fraction: float, message: str) -> None:
    width = 30
    filled = int(width * fraction)
    sys.stderr.write(f"\rbacktest [{'#' * filled}{'.' * (width - filled)}] {int(100 * fraction):3d}%")
    if message == "done":
        sys.stderr.write("\n")
    sys.stderr.flush()


def _fmt(v: object, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v * 100:.2f} %" if pct else f"{v:,.4f}"
    return str(v)


def summary_table(result: BacktestResult) -> str:
    m = result.metrics
    start = dt.datetime.fromtimestamp(result.start_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
    end = dt.datetime.fromtimestamp(result.end_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
    rows = [
        ("run", result.run_id),
        ("strategy", result.strategy),
        ("pairs", ", ".join(result.pairs)),
        ("period (UTC)", f"{start} → {end}, {result.bars:,} bars of {result.timeframe}"),
        ("leverage", f"{result.leverage}x cross"),
        ("wallet", f"{result.initial_wallet:,.2f} → {result.final_wallet:,.2f} USDT"),
        ("total return", _fmt(m.total_return, True)),
        ("annual return", _fmt(m.annual_return, True)),
        ("max drawdown", f"{_fmt(m.max_drawdown, True)} over {m.max_drawdown_duration_days:.2f} d, recovery "
                         f"{'never' if m.max_drawdown_recovery_days is None else f'{m.max_drawdown_recovery_days:.2f} d'}"),
        ("sharpe / sortino / calmar", f"{_fmt(m.sharpe)} / {_fmt(m.sortino)} / {_fmt(m.calmar)}"),
        ("omega", _fmt(m.omega)),
        ("daily VaR / CVaR 95 %", f"{_fmt(m.var_95, True)} / {_fmt(m.cvar_95, True)}"),
        ("trades", f"{m.trades} ({m.trades_per_day:.2f}/day)" if m.trades else "0"),
        ("win rate", _fmt(m.win_rate, True)),
        ("profit factor / payoff", f"{_fmt(m.profit_factor)} / {_fmt(m.payoff_ratio)}"),
        ("expectancy", f"{_fmt(m.expectancy)} USDT per trade"),
        ("exposure", _fmt(m.exposure, True)),
        ("avg holding", f"{m.avg_holding_minutes:.1f} min" if m.trades else "-"),
        ("fees paid", f"{m.fees_paid:,.2f} USDT"),
        ("funding paid", f"{m.funding_paid:,.2f} USDT"),
        ("liquidations", str(m.liquidations)),
        ("risk rules", risk_counts_text(result.risk_counts)),
        ("segments / gaps", f"{len(result.segments)} / {len(result.gaps)}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def risk_counts_text(counts: dict[str, dict[str, int]]) -> str:
    """How often each risk rule acted: ``correlation blocked 3 · loss_streak shrunk 5``; "none" when none did."""
    parts = [f"{rule} {effect} {n}" for rule, per in sorted(counts.items()) for effect, n in sorted(per.items())]
    return " · ".join(parts) if parts else "none acted"


def _run(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args)
    try:
        run = run_args(args, settings)
        if args.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {args.strategy!r}; known: {', '.join(sorted(STRATEGIES))}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    request = BacktestRequest(strategy=args.strategy, pairs=tuple(run.pairs), timeframe=run.timeframe,
                              start_ms=run.start_ms, end_ms=run.end_ms, leverage=run.leverage,
                              initial_wallet=args.wallet, data_dir=run.data_dir,
                              # The config's risk section, exactly as the live engine reads it.
                              strategy_params=declared_risk_params(settings, STRATEGIES[args.strategy].param_values()),
                              # Liquidity tiers from candle volume (the live engine reads the order book).
                              liquidity=LiquidityRules.from_config(settings.risk.liquidity))
    print(f"data: {run.data_dir}", file=sys.stderr)
    try:
        result = run_backtest(request, progress=_progress)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    extra = {}
    if args.montecarlo and result.trades:
        extra["montecarlo"] = monte_carlo(trade_returns(result.trades), runs=args.montecarlo, seed=0).to_dict()
    summary = result_summary(result, extra)
    out = write_export(result, Path(args.export) if args.export else settings.user_data_dir / "backtest_results",
                       extra)
    print(summary_table(result))
    if "montecarlo" in extra:
        mc = extra["montecarlo"]
        print(f"monte carlo: {mc['runs']:,} shuffles: max drawdown p50 {mc['max_drawdown']['p50'] * 100:.2f} %,"
              f" p5 {mc['max_drawdown']['p5'] * 100:.2f} %; ruin (≤ 50 % equity) {mc['probability_of_ruin'] * 100:.1f} %")
    for line in result.assumptions:
        print(f"note: {line}")
    print(f"exported to {out}")
    if not args.no_db:
        engine = make_engine(settings.resolved_db_url)
        try:
            upgrade(engine)
            store_backtest(make_session_factory(engine), result, args.timerange, str(out.resolve()), summary)
        finally:
            engine.dispose()
        print(f"stored as backtest run {result.run_id}")
    return 0
