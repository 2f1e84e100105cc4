"""The ledger invariant: what the database says happened is what the exchange says happened.

Three checks, each against the exchange's own records (never against another copy of our numbers):
- open trades ⇔ exchange positions: one open trade per position, same pair, side and size, and no open trade
  where the exchange is flat;
- every closed trade in the window: its exit quantity equals its entry quantity, it has a real exit price (never
  0 or missing: a trade whose exit could not be established is ``exit_unknown`` and kept out of PnL), and its
  fills, order by order, equal the exchange's fills for those orders (quantity within half a step, average price
  within one tick); its realised PnL equals Binance's within one tick × size;
- the wallet: its change since the baseline equals Binance's income statement since then (realised PnL,
  commission, funding, ...), and the ledger's Σ realised PnL − fees + funding over the same time equals the trading
  part of that statement.

``fix`` is not done here: the engine's desk (or a desk loaded just for it) re-reads the account's fills and
closes what the exchange closed (``trader.live.desk.OrderDesk.resync`` / ``load``); this module only judges.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from trader.exchange.client import ExchangeClient
from trader.exchange.models import Position, UserTrade
from trader.persistence.models import Fill, FundingPayment, Order, Trade

log = logging.getLogger(__name__)
ZERO = Decimal(0)
WINDOW = dt.timedelta(days=7)  # closed trades checked by default
TRADING_INCOME = ("REALIZED_PNL", "COMMISSION", "FUNDING_FEE", "INSURANCE_CLEAR")


@dataclass(frozen=True)
class Mismatch:
    kind: str  # position | open_trade | exit | price | pnl | wallet | exit_unknown
    pair: str | None
    detail: str
    trade_id: int | None = None


@dataclass
class ReconcileReport:
    checked_at: dt.datetime
    since: dt.datetime
    open_trades: int = 0
    positions: int = 0
    closed_checked: int = 0
    fills_checked: int = 0
    exits_unknown: int = 0
    wallet_change: Decimal | None = None  # from the exchange's balance against the baseline
    income: Decimal | None = None  # Binance's statement over the same time
    ledger_change: Decimal | None = None  # Σ realised − fees + funding in the ledger
    mismatches: list[Mismatch] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.errors

    def summary(self) -> str:
        if self.ok:
            return (f"ledger = exchange: {self.open_trades} open trade(s), {self.closed_checked} closed trade(s), "
                    f"{self.fills_checked} fill(s) checked")
        parts = [m.detail for m in self.mismatches] + self.errors
        return f"{len(parts)} problem(s): " + "; ".join(parts)


def _tick(client: ExchangeClient, pair: str) -> tuple[Decimal, Decimal]:
    """(price tick, quantity step) from the exchange's rules for ``pair``."""
    try:
        prec = client.market(pair).get("precision") or {}
        return Decimal(str(prec.get("price") or "0.01")), Decimal(str(prec.get("amount") or "0.001"))
    except Exception:  # a delisted pair: the loosest sensible tolerance rather than no check
        return Decimal("0.01"), Decimal("0.001")


def _order_id_of(fill: Fill) -> str:
    # Fill keys are "<exchange order id>:<cumulative filled>" (trader.live.desk).
    return fill.exchange_trade_id.split(":", 1)[0]


def check_positions(trades: list[Trade], positions: list[Position],
                    steps: dict[str, Decimal]) -> list[Mismatch]:
    out: list[Mismatch] = []
    by_pair: dict[str, list[Trade]] = defaultdict(list)
    for t in trades:
        by_pair[t.pair].append(t)
    held = {p.pair: p for p in positions}
    for pair, group in sorted(by_pair.items()):
        if len(group) > 1:
            out.append(Mismatch("open_trade", pair, f"{pair}: {len(group)} open trades "
                                f"({', '.join('#' + str(t.id) for t in group)}) for one position"))
        p = held.get(pair)
        for t in group:
            if p is None:
                out.append(Mismatch("open_trade", pair, f"{pair}: trade #{t.id} is open in the ledger "
                                    f"({t.side} {t.amount_open}) but the exchange is flat", t.id))
                continue
            half = steps.get(pair, Decimal("0.001")) / 2
            if p.side != t.side or abs(abs(p.contracts) - (t.amount_open or ZERO)) > half:
                out.append(Mismatch("position", pair, f"{pair}: trade #{t.id} says {t.side} {t.amount_open}, the "
                                    f"exchange holds {p.side} {abs(p.contracts)}", t.id))
    for pair, p in sorted(held.items()):
        if pair not in by_pair:
            out.append(Mismatch("position", pair, f"{pair}: the exchange holds {p.side} {abs(p.contracts)} and no "
                                "trade is open for it"))
    return out


def check_closed_trade(trade: Trade, fills: list[Fill], exchange: dict[str, list[UserTrade]], tick: Decimal,
                       step: Decimal) -> tuple[list[Mismatch], int]:
    """One closed trade against the exchange's fills of its orders. Returns (mismatches, fills compared)."""
    out: list[Mismatch] = []
    pair = trade.pair
    exit_side = "sell" if trade.side == "long" else "buy"
    exits = [f for f in fills if f.side == exit_side]
    entries = [f for f in fills if f.side != exit_side]
    exit_qty = sum((f.amount for f in exits), ZERO)
    entry_qty = sum((f.amount for f in entries), ZERO)
    if trade.close_rate is None or trade.close_rate <= 0:
        out.append(Mismatch("price", pair, f"{pair}: closed trade #{trade.id} has no real exit price "
                            f"({trade.close_rate})", trade.id))
    if abs(exit_qty - entry_qty) > step / 2:
        out.append(Mismatch("exit", pair, f"{pair}: trade #{trade.id} entered {entry_qty} and exited {exit_qty}",
                            trade.id))
    if exit_qty > 0 and trade.close_rate:
        avg = sum((f.amount * f.price for f in exits), ZERO) / exit_qty
        if abs(avg - trade.close_rate) > tick:
            out.append(Mismatch("price", pair, f"{pair}: trade #{trade.id} exit price {trade.close_rate} but its "
                                f"exit fills average {avg:.8f}", trade.id))
    compared = 0
    ours: dict[str, list[Fill]] = defaultdict(list)
    for f in fills:
        ours[_order_id_of(f)].append(f)
    binance_realized = ZERO
    for oid, group in ours.items():
        theirs = exchange.get(oid, [])
        compared += len(group)
        q_ours = sum((f.amount for f in group), ZERO)
        q_theirs = sum((f.qty for f in theirs), ZERO)
        binance_realized += sum((f.realized_pnl for f in theirs), ZERO)
        if abs(q_ours - q_theirs) > step / 2:
            out.append(Mismatch("exit", pair, f"{pair}: trade #{trade.id} order {oid}: {q_ours} in the ledger, "
                                f"{q_theirs} filled on the exchange", trade.id))
            continue
        if q_ours > 0:
            p_ours = sum((f.amount * f.price for f in group), ZERO) / q_ours
            p_theirs = sum((f.qty * f.price for f in theirs), ZERO) / q_theirs
            if abs(p_ours - p_theirs) > tick:
                out.append(Mismatch("price", pair, f"{pair}: trade #{trade.id} order {oid}: average {p_ours:.8f} in "
                                    f"the ledger, {p_theirs:.8f} on the exchange", trade.id))
    size = max(entry_qty, exit_qty)
    if not out and abs((trade.realized_pnl or ZERO) - binance_realized) > tick * size + Decimal("0.00000001"):
        out.append(Mismatch("pnl", pair, f"{pair}: trade #{trade.id} realised {trade.realized_pnl} in the ledger, "
                            f"{binance_realized} by the exchange's fills", trade.id))
    return out, compared


def _load(sessions: sessionmaker[Session], since: dt.datetime) -> tuple[list[Trade], list[Trade], dict[int, list[Fill]],
                                                                        list[Fill], list[FundingPayment]]:
    with sessions() as s:
        live = Trade.backtest_run_id.is_(None)
        open_trades = list(s.scalars(select(Trade).where(live, Trade.status == "open")))
        closed = list(s.scalars(select(Trade).where(live, Trade.status.in_(("closed", "exit_unknown")),
                                                    Trade.close_date >= since)))
        ids = [t.id for t in closed]
        fills: dict[int, list[Fill]] = defaultdict(list)
        if ids:
            for f in s.scalars(select(Fill).where(Fill.trade_id.in_(ids)).order_by(Fill.time)):
                fills[int(f.trade_id or 0)].append(f)
        recent = list(s.scalars(select(Fill).join(Order, Fill.order_id == Order.id).where(Fill.time >= since)))
        funding = list(s.scalars(select(FundingPayment).where(FundingPayment.time >= since)))
        s.expunge_all()
    return open_trades, closed, fills, recent, funding


async def check_ledger(client: ExchangeClient, sessions: sessionmaker[Session], *,
                       since: dt.datetime | None = None,
                       baseline: dict[str, Any] | None = None) -> ReconcileReport:
    """Judge the ledger against the exchange. ``baseline`` ({"time": iso, "wallet": str}) is the wallet as it
    stood when the ledger started (RuntimeState ``wallet_baseline``); the wallet identity is checked from then."""
    # The exchange's clock, not ours: the ledger's times are the exchange's (a replaying simulator runs in 2025).
    now = dt.datetime.fromtimestamp(await client.fetch_time() / 1000, tz=dt.timezone.utc)
    base_time = dt.datetime.fromisoformat(baseline["time"]) if baseline else None
    since = since or max(base_time or now - WINDOW, now - WINDOW)
    report = ReconcileReport(checked_at=now, since=since)
    open_trades, closed, fills, recent, funding = _load(sessions, since)
    positions = await client.fetch_positions()
    report.open_trades, report.positions = len(open_trades), len(positions)
    pairs = {t.pair for t in open_trades} | {p.pair for p in positions} | {t.pair for t in closed}
    rules = {pair: _tick(client, pair) for pair in pairs}
    report.mismatches += check_positions(open_trades, positions, {p: r[1] for p, r in rules.items()})
    # The exchange's fills, once per pair over the window the closed trades span.
    by_pair: dict[str, list[Trade]] = defaultdict(list)
    for t in closed:
        by_pair[t.pair].append(t)
    for pair, trades in sorted(by_pair.items()):
        start = min(t.open_date for t in trades) - dt.timedelta(minutes=1)
        try:
            theirs = await client.fetch_user_trades(pair, int(start.timestamp() * 1000))
        except Exception as exc:  # noqa: BLE001 - one pair's read failing must not hide the others' results
            report.errors.append(f"{pair}: the exchange's fills could not be read: {exc}")
            continue
        exchange: dict[str, list[UserTrade]] = defaultdict(list)
        for f in theirs:
            exchange[f.order_id].append(f)
        tick, step = rules[pair]
        for t in trades:
            if t.status == "exit_unknown":
                report.exits_unknown += 1
                continue
            found, compared = check_closed_trade(t, fills.get(t.id, []), exchange, tick, step)
            report.mismatches += found
            report.closed_checked += 1
            report.fills_checked += compared
    await _check_wallet(client, report, recent, funding, baseline, rules)
    if report.exits_unknown:
        report.mismatches.append(Mismatch("exit_unknown", None, f"{report.exits_unknown} trade(s) closed with the "
                                          "exit unknown (kept out of PnL)"))
    return report


async def _check_wallet(client: ExchangeClient, report: ReconcileReport, fills: list[Fill],
                        funding: list[FundingPayment], baseline: dict[str, Any] | None,
                        rules: dict[str, tuple[Decimal, Decimal]]) -> None:
    since_ms = int(report.since.timestamp() * 1000)
    try:
        income = await client.fetch_income(since_ms)
    except Exception as exc:  # noqa: BLE001
        report.errors.append(f"the exchange's income statement could not be read: {exc}")
        return
    trading = sum((Decimal(str(r["income"])) for r in income if r.get("incomeType") in TRADING_INCOME), ZERO)
    report.income = trading
    report.ledger_change = (sum((f.realized_pnl - f.fee for f in fills), ZERO)
                            + sum((p.amount for p in funding), ZERO))
    tolerance = sum((rules.get(f.pair, (Decimal("0.01"), ZERO))[0] * f.amount for f in fills), Decimal("0.01"))
    if abs(report.ledger_change - trading) > tolerance:
        report.mismatches.append(Mismatch("wallet", None, f"ledger Σ realised − fees + funding {report.ledger_change:.4f}"
                                          f" USDT, the exchange's statement {trading:.4f} USDT since "
                                          f"{report.since:%Y-%m-%d %H:%M}Z"))
    if baseline is not None and report.since <= dt.datetime.fromisoformat(baseline["time"]):
        balance = await client.fetch_balance()
        all_income = sum((Decimal(str(r["income"])) for r in income), ZERO)
        report.wallet_change = balance.wallet - Decimal(str(baseline["wallet"]))
        if abs(report.wallet_change - all_income) > Decimal("0.01"):
            report.mismatches.append(Mismatch("wallet", None, f"wallet changed {report.wallet_change:.4f} USDT since "
                                              f"{baseline['time']}, the exchange's statement says {all_income:.4f}"))
