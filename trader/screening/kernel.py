"""The compiled bar loop: FuturesBroker's cross-margin account and fill rules for one or more pairs, plus the
position-management half of a strategy (time stop, break-even stop after the first target, ATR trailing stop,
a setup's exit signal).

It mirrors trader/backtest/broker.py step for step, per bar and per pair in feed order: funding settled inside a
data gap, market orders at the open (taker, slippage), levels and the liquidation price the open gapped through,
funding stamped at the open, then the bar walked as a path (open, the extreme adverse to the position, the other
extreme) filling stops, take-profits and liquidation in the order the path reaches them. The pairs share one
wallet: the available balance, the liquidation price (other positions' maintenance margin and P&L at the marks the
broker uses) and a liquidation's cancellation of every order are account-wide. Then, per pair, what the strategy's
``notify_order`` does with that bar's notifications, then the strategy's ``next`` pair by pair. When a pair is flat,
has no entry pending and its signal fires, the kernel returns ``NEED_ENTRY`` with the bar and the pair: the Python
twin sizes the entry with the project's own sizing and risk-book functions and hands back the orders
(``place_entry``), and the loop resumes with the next pair of the same bar. Only per-fill arithmetic runs here,
through trader/screening/rules.py.

State lives in numpy arrays so a run can stop and resume without Python objects:
- ``acc``: the account (wallet, totals, trade count; A_*); ``pst[pair]``: the pair's position, open trade ledger
  and strategy state (S_*);
- ``orders[pair]``: the pair's alive orders in submission order (the broker's ``p.orders``), one row per order;
  ``kids[pair]``: protective orders waiting for their entry to fill (the broker's ``_children``);
- ``trades``: one closed round trip per row (T_*), ``equity``: the account value after each bar's broker step.
- ``bars[pair]``: rows BO..BEXS over the common bar index; ``pp[pair]``: lot step, tick, tick decimals,
  liquidation fee rate, bracket count; ``br[pair]``: brackets (rules.bracket_array rows, zero-padded).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from trader.screening import rules as r

# bars rows (BATR: the ATR the trailing stop reads; BEXL/BEXS: the setup's exit events, 1.0 on an exit bar)
BO, BH, BL, BC, BRATIO, BSIG, BATR, BEXL, BEXS = range(9)
N_BAR_ROWS = 9

# global params
(P_LEV, P_MAKER, P_TAKER, P_SLIP_BPS, P_SLIP_RANGE, P_TIME_STOP, P_BREAKEVEN, P_TRAIL_STEP, P_STRAT_FEE,
 P_MODE) = range(10)
N_PARAMS = 10
# per-pair spec
PP_STEP, PP_TICK, PP_TICK_DEC, PP_LIQ_RATE, PP_NB = range(5)
N_PP = 5
# P_MODE: how the strategy manages a position
MODE_REFERENCE = 0.0  # RsiBollingerStrategy: time stop in bars held, break-even always, trailing after tp1
MODE_MANAGED = 1.0  # ManagedStrategy: time stop in ms since the decision, setup exit signal, break-even only when
#                     tighter, trailing after tp1 or (breakout) from the entry fill

# order kinds and tags
K_MARKET, K_STOP, K_LIMIT = 1.0, 2.0, 3.0
F_REDUCE, F_CLOSE = 1.0, 2.0
TAG_ENTRY, TAG_STOP, TAG_STOP_BE, TAG_STOP_TRAIL, TAG_TP1, TAG_TP2, TAG_TP3, TAG_TIME, TAG_END, TAG_LIQ, TAG_EXIT = (
    range(11))
TAG_NAMES = ("entry", "stop", "stop_breakeven", "stop_trail", "tp1", "tp2", "tp3", "time_stop", "end_of_run",
             "liquidation", "exit_signal")
O_KIND, O_BUY, O_PRICE, O_QTY, O_TAG, O_FLAG = range(6)
N_ORDER_COLS = 6
MAX_ORDERS = 16

# account
(A_WALLET, A_FEES, A_FUNDING_PAID, A_LIQ_FEES, A_LIQS, A_INSURANCE, A_EXPOSURE, A_NTRADES, A_OPEN, A_SEQ,
 A_PEAK) = range(11)
N_ACC = 11
# A_PEAK: the highest wallet after any bar's broker step so far (the strategies show the risk book the wallet at
# every next(), and the drawdown rule reads its peak).
# A_SEQ numbers what the strategy sends between two broker steps (stop replacements, refused entries): their
# notifications reach it at the next bar in that order, before that bar's fills.

# per-pair state
(S_POS, S_POS_PRICE, S_LP, S_LP_DIRTY, S_FPTR, S_FEND, S_NORD, S_NKIDS, S_LAST_I,
 # open trade ledger
 S_T_OPEN, S_T_OPEN_I, S_T_SIDE, S_T_QTY, S_T_EQ, S_T_EQTY, S_T_EVAL, S_T_XQTY, S_T_XVAL, S_T_RPNL, S_T_FEES,
 S_T_FUND, S_T_LIQFEE, S_T_REASON, S_T_FILLS, S_T_LIQ,
 # strategy state
 S_ENTRY_ACTIVE, S_SIDE, S_HELD, S_EXITING, S_ENTRY_PRICE, S_STOP_PRICE, S_TRAILING,
 # this bar's notifications (what notify_order would see)
 S_EV_ENTRY_FILLED, S_EV_ENTRY_PRICE, S_EV_ENTRY_DEAD, S_EV_TP1, S_EV_OTHER_DEAD,
 # the strategy's own running P&L of the trade (``st.realized``) as notify_order sees it: fills add to it in
 # notification order, and the first order notification of a bar that ends flat hands it to the risk book —
 # a stop replaced on the previous bar is notified (cancelled) before this bar's fills, so it hands the P&L as it
 # stood at the bar's start
 S_REAL, S_SNAP, S_SEEN, S_REPLACED,
 # the position's own management settings, fixed at the entry decision
 S_TRAIL_MULT, S_TRAIL_ON_FILL, S_HOLD_MS, S_OPEN_TS,
 # the bar whose notifications told the strategy its entry died unfilled (−1: none since the last entry)
 S_DEAD_BAR,
 # A_SEQ of the last stop replacement; of the notification that took this bar's snapshot (−1: a broker event)
 S_REPL_SEQ, S_SNAP_SEQ) = range(48)
N_STATE = 48

# trades columns
(T_OPEN_I, T_CLOSE_I, T_SIDE, T_QTY, T_ENTRY, T_EXIT, T_RPNL, T_FEES, T_FUND, T_LIQFEE, T_REASON, T_FILLS, T_LIQ,
 T_EQ, T_WALLET, T_STRAT_PNL, T_PAIR, T_SEQ) = range(18)
N_TRADE_COLS = 18

# return codes
DONE, NEED_ENTRY, NEED_SPACE = 0, 1, 2


@njit(cache=True)
def _append(rows: np.ndarray, n: int, kind: float, buy: float, price: float, qty: float, tag: float,
            flag: float) -> int:
    rows[n, O_KIND] = kind
    rows[n, O_BUY] = buy
    rows[n, O_PRICE] = price
    rows[n, O_QTY] = qty
    rows[n, O_TAG] = tag
    rows[n, O_FLAG] = flag
    return n + 1


@njit(cache=True)
def _remove(rows: np.ndarray, n: int, k: int) -> int:
    for j in range(k, n - 1):
        rows[j, :] = rows[j + 1, :]
    return n - 1


@njit(cache=True)
def _find_kind(rows: np.ndarray, n: int, kind: float) -> int:
    for k in range(n):
        if rows[k, O_KIND] == kind:
            return k
    return -1


@njit(cache=True)
def _seen(st: np.ndarray) -> None:
    """A non-entry order notification that is not alive (filled, cancelled, dropped): the first one of a bar is
    where the strategy's notify_order would see the position flat, if it ends the bar flat."""
    if st[S_SEEN] == 0:
        st[S_SEEN] = 1.0
        st[S_SNAP] = st[S_REAL]
        st[S_SNAP_SEQ] = -1.0


@njit(cache=True)
def _dirty_all(pst: np.ndarray) -> None:
    for q in range(pst.shape[0]):
        pst[q, S_LP_DIRTY] = 1.0


@njit(cache=True)
def _marks(pst: np.ndarray, bars: np.ndarray, lev: float, i: int) -> tuple[float, float]:
    """FuturesBroker._marks: (Σ unrealized P&L, Σ position initial margin) at every pair's close·ratio of bar i."""
    upnl = 0.0
    im = 0.0
    for q in range(pst.shape[0]):
        pos = pst[q, S_POS]
        if pos != 0:
            mark = bars[q, BC, i] * bars[q, BRATIO, i]
            upnl += pos * (mark - pst[q, S_POS_PRICE])
            im += abs(pos) * mark / lev
    return upnl, im


@njit(cache=True)
def available(acc: np.ndarray, pst: np.ndarray, bars: np.ndarray, lev: float, i: int) -> float:
    upnl, im = _marks(pst, bars, lev, i)
    return max(0.0, acc[A_WALLET] + upnl - im)


@njit(cache=True)
def _close_trade(acc: np.ndarray, st: np.ndarray, trades: np.ndarray, p: int, i: int) -> None:
    n = int(acc[A_NTRADES])
    trades[n, T_OPEN_I] = st[S_T_OPEN_I]
    trades[n, T_CLOSE_I] = i
    trades[n, T_SIDE] = st[S_T_SIDE]
    trades[n, T_QTY] = st[S_T_QTY]
    trades[n, T_ENTRY] = st[S_T_EVAL] / st[S_T_EQTY] if st[S_T_EQTY] else 0.0
    trades[n, T_EXIT] = st[S_T_XVAL] / st[S_T_XQTY] if st[S_T_XQTY] else 0.0
    trades[n, T_RPNL] = st[S_T_RPNL]
    trades[n, T_FEES] = st[S_T_FEES]
    trades[n, T_FUND] = st[S_T_FUND]
    trades[n, T_LIQFEE] = st[S_T_LIQFEE]
    trades[n, T_REASON] = st[S_T_REASON]
    trades[n, T_FILLS] = st[S_T_FILLS]
    trades[n, T_LIQ] = st[S_T_LIQ]
    trades[n, T_EQ] = st[S_T_EQ]
    trades[n, T_WALLET] = acc[A_WALLET]  # replaced by the end-of-bar wallet in the notify step
    trades[n, T_STRAT_PNL] = st[S_SNAP]  # the P&L the strategy hands to the risk book
    trades[n, T_PAIR] = p
    trades[n, T_SEQ] = st[S_SNAP_SEQ] if st[S_SEEN] > 0 else -1.0
    acc[A_NTRADES] = n + 1
    acc[A_OPEN] -= 1.0
    st[S_T_OPEN] = 0.0


@njit(cache=True)
def _fill(acc, pst, orders, kids, trades, P, pp, bars, p, k, price, maker, i) -> None:  # noqa: ANN001
    """FuturesBroker._fill for pair ``p``'s order row ``k`` (removed from the list once filled or dropped)."""
    st = pst[p]
    rows = orders[p]
    buy = rows[k, O_BUY] > 0
    qty = rows[k, O_QTY]
    tag = rows[k, O_TAG]
    flag = rows[k, O_FLAG]
    pos = st[S_POS]
    nord = int(st[S_NORD])
    fee_rate = P[P_MAKER] if maker else P[P_TAKER]
    if flag > 0:  # reduce-only / close-position
        if pos == 0 or (pos > 0) == buy:
            st[S_NORD] = _remove(rows, nord, k)  # -2022: nothing to reduce
            st[S_EV_OTHER_DEAD] = 1.0
            _seen(st)
            return
        want = abs(pos) if flag == F_CLOSE else min(qty, abs(pos))
        side = 1.0 if pos > 0 else -1.0
        fee = r.commission(price, want, fee_rate)
        pnl = r.realized_pnl(want, st[S_POS_PRICE], price, side)
        newpos = r.snap_position(pos - side * want, pp[p, PP_STEP])
        st[S_POS] = newpos
        if newpos == 0:
            st[S_POS_PRICE] = 0.0
        acc[A_WALLET] += pnl - fee
        acc[A_FEES] += fee
        st[S_REAL] += pnl
        _seen(st)
        if st[S_T_OPEN] > 0:
            st[S_T_RPNL] += pnl
            st[S_T_FEES] += fee
            st[S_T_XQTY] += want
            st[S_T_XVAL] += want * price
            st[S_T_FILLS] += 1.0
            st[S_T_REASON] = tag
            if newpos == 0:
                _close_trade(acc, st, trades, p, i)
        nord = _remove(rows, nord, k)
        if tag == TAG_TP1:
            st[S_EV_TP1] = 1.0
        st[S_EV_OTHER_DEAD] = 1.0
        if newpos == 0:
            # _cancel_reduce_only: every reduce-only / close-position order goes with the position.
            j = 0
            while j < nord:
                if rows[j, O_FLAG] > 0:
                    nord = _remove(rows, nord, j)
                else:
                    j += 1
        st[S_NORD] = nord
        _dirty_all(pst)
        return
    # Opening from flat (the strategies this kernel serves never add to or reverse a position).
    lev = P[P_LEV]
    need = r.initial_margin(qty, price, lev) + r.commission(price, qty, fee_rate)
    if need > available(acc, pst, bars, lev, i):
        st[S_NORD] = _remove(rows, nord, k)
        st[S_NKIDS] = 0.0  # children cancelled with their parent
        st[S_EV_ENTRY_DEAD] = 1.0
        return
    side = 1.0 if buy else -1.0
    fee = r.commission(price, qty, fee_rate)
    st[S_POS] = r.snap_position(side * qty, pp[p, PP_STEP])
    st[S_POS_PRICE] = price
    acc[A_WALLET] -= fee
    acc[A_FEES] += fee
    acc[A_OPEN] += 1.0
    st[S_T_OPEN] = 1.0
    st[S_T_OPEN_I] = i
    st[S_T_SIDE] = side
    st[S_T_EQ] = acc[A_WALLET] + fee
    st[S_T_FEES] = fee
    st[S_T_EQTY] = qty
    st[S_T_EVAL] = qty * price
    st[S_T_XQTY] = 0.0
    st[S_T_XVAL] = 0.0
    st[S_T_RPNL] = 0.0
    st[S_T_FUND] = 0.0
    st[S_T_LIQFEE] = 0.0
    st[S_T_REASON] = -1.0
    st[S_T_FILLS] = 1.0
    st[S_T_LIQ] = 0.0
    st[S_T_QTY] = abs(st[S_POS])
    nord = _remove(rows, nord, k)
    # The protective children go live the moment the entry fills.
    kr = kids[p]
    for j in range(int(st[S_NKIDS])):
        nord = _append(rows, nord, kr[j, O_KIND], kr[j, O_BUY], kr[j, O_PRICE], kr[j, O_QTY], kr[j, O_TAG],
                       kr[j, O_FLAG])
    st[S_NKIDS] = 0.0
    st[S_NORD] = nord
    if tag == TAG_ENTRY:
        st[S_EV_ENTRY_FILLED] = 1.0
        st[S_EV_ENTRY_PRICE] = price
    _dirty_all(pst)


@njit(cache=True)
def _lp_last(acc, pst, P, pp, br, bars, p, i) -> float:  # noqa: ANN001
    """FuturesBroker._lp_last / _liq_price: pair ``p``'s liquidation price in last-price terms (NaN: none). The
    other positions enter at their latest close before the bar each was last processed at, as the broker has it."""
    st = pst[p]
    q = st[S_POS]
    if q == 0:
        return math.nan
    if st[S_LP_DIRTY] > 0 or acc[A_OPEN] > 1:
        other_mm = 0.0
        other_upnl = 0.0
        for o in range(pst.shape[0]):
            if o == p or pst[o, S_POS] == 0:
                continue
            io = max(int(pst[o, S_LAST_I]), 0)
            mark = bars[o, BC, io - 1 if io > 0 else 0] * bars[o, BRATIO, io]
            nb = int(pp[o, PP_NB])
            other_mm += r.maintenance_margin(abs(pst[o, S_POS]) * mark, br[o, :nb])
            other_upnl += pst[o, S_POS] * (mark - pst[o, S_POS_PRICE])
        ip = max(int(st[S_LAST_I]), 0)
        nb = int(pp[p, PP_NB])
        st[S_LP] = r.liquidation_price(1.0 if q > 0 else -1.0, abs(q), st[S_POS_PRICE], acc[A_WALLET], br[p, :nb],
                                       other_mm, other_upnl, bars[p, BO, ip] * bars[p, BRATIO, ip])
        st[S_LP_DIRTY] = 0.0
    return st[S_LP] / bars[p, BRATIO, i]


@njit(cache=True)
def _liquidate(acc, pst, orders, kids, trades, P, pp, br, bars, p, i, mark) -> None:  # noqa: ANN001
    st = pst[p]
    q = st[S_POS]
    # Cross margin: every open order of the account is cancelled first (each pair's strategy hears it).
    for o in range(pst.shape[0]):
        so = pst[o]
        nord = int(so[S_NORD])
        entry = 0
        for k in range(nord):
            if orders[o, k, O_TAG] == TAG_ENTRY:
                entry = 1
        if entry:
            so[S_EV_ENTRY_DEAD] = 1.0
        if nord - entry + int(so[S_NKIDS]) > 0:
            so[S_EV_OTHER_DEAD] = 1.0
            _seen(so)
        so[S_NORD] = 0.0
        so[S_NKIDS] = 0.0
    old_price = st[S_POS_PRICE]
    st[S_POS] = 0.0
    st[S_POS_PRICE] = 0.0
    pnl = r.realized_pnl(q, old_price, mark, 1.0 if q > 0 else -1.0)
    acc[A_WALLET] += pnl
    st[S_REAL] += pnl
    _seen(st)
    upnl, _im = _marks(pst, bars, P[P_LEV], i)
    notional = abs(q) * mark
    nb = int(pp[p, PP_NB])
    fee = r.liquidation_fee(notional, pp[p, PP_LIQ_RATE], r.maintenance_margin(notional, br[p, :nb]),
                            acc[A_WALLET] + upnl)
    acc[A_WALLET] -= fee
    acc[A_LIQ_FEES] += fee
    if acc[A_WALLET] < 0:
        flat = True
        for o in range(pst.shape[0]):
            if pst[o, S_POS] != 0:
                flat = False
        if flat:
            acc[A_INSURANCE] += -acc[A_WALLET]
            acc[A_WALLET] = 0.0
    acc[A_LIQS] += 1.0
    st[S_EV_OTHER_DEAD] = 1.0
    if st[S_T_OPEN] > 0:
        st[S_T_RPNL] += pnl
        st[S_T_LIQFEE] += fee
        st[S_T_XQTY] += abs(q)
        st[S_T_XVAL] += abs(q) * mark
        st[S_T_FILLS] += 1.0
        st[S_T_LIQ] = 1.0
        st[S_T_REASON] = TAG_LIQ
        _close_trade(acc, st, trades, p, i)
    _dirty_all(pst)


@njit(cache=True)
def _rising(rows: np.ndarray, k: int) -> bool:
    return (rows[k, O_KIND] == K_STOP) == (rows[k, O_BUY] > 0)


@njit(cache=True)
def _fill_conditional(acc, pst, orders, kids, trades, P, pp, bars, p, k, level, i, at_open) -> None:  # noqa: ANN001
    rows = orders[p]
    if rows[k, O_KIND] == K_STOP:
        price = r.slippage(level, rows[k, O_BUY] > 0, bars[p, BH, i] - bars[p, BL, i], P[P_SLIP_BPS],
                           P[P_SLIP_RANGE])
        _fill(acc, pst, orders, kids, trades, P, pp, bars, p, k, price, False, i)
    else:
        _fill(acc, pst, orders, kids, trades, P, pp, bars, p, k, bars[p, BO, i] if at_open else level, not at_open,
              i)


@njit(cache=True)
def _fill_at_open(acc, pst, orders, kids, trades, P, pp, br, bars, p, i) -> None:  # noqa: ANN001
    st = pst[p]
    rows = orders[p]
    o = bars[p, BO, i]
    ratio = bars[p, BRATIO, i]
    for _ in range(64):
        lp = _lp_last(acc, pst, P, pp, br, bars, p, i)
        q = st[S_POS]
        if not math.isnan(lp) and ((q > 0 and o <= lp) or (q < 0 and o >= lp)):
            _liquidate(acc, pst, orders, kids, trades, P, pp, br, bars, p, i, o * ratio)
            continue
        hit = -1
        for k in range(int(st[S_NORD])):
            if rows[k, O_KIND] == K_MARKET:
                continue
            lvl = rows[k, O_PRICE]
            if (_rising(rows, k) and o >= lvl) or (not _rising(rows, k) and o <= lvl):
                hit = k
                break
        if hit < 0:
            break
        _fill_conditional(acc, pst, orders, kids, trades, P, pp, bars, p, hit, o, i, True)


@njit(cache=True)
def _walk_bar(acc, pst, orders, kids, trades, P, pp, br, bars, p, i) -> None:  # noqa: ANN001
    st = pst[p]
    rows = orders[p]
    o, h, lo, c = bars[p, BO, i], bars[p, BH, i], bars[p, BL, i], bars[p, BC, i]
    ratio = bars[p, BRATIO, i]
    lp = _lp_last(acc, pst, P, pp, br, bars, p, i)
    q = st[S_POS]
    if math.isnan(lp) or not (lo <= lp <= h or (q > 0 and o <= lp) or (q < 0 and o >= lp)):
        reach = False
        for k in range(int(st[S_NORD])):
            if rows[k, O_KIND] == K_MARKET:
                continue
            lvl = rows[k, O_PRICE]
            if (h >= lvl) if _rising(rows, k) else (lo <= lvl):
                reach = True
                break
        if not reach:
            return
    if q > 0 or (q == 0 and c >= o):
        p0, p1, p2 = o, lo, h
    else:
        p0, p1, p2 = o, h, lo
    for seg in range(2):
        a = p0 if seg == 0 else p1
        b = p1 if seg == 0 else p2
        rising_seg = b > a
        cur = a
        for _ in range(64):
            best = -1
            best_d = math.inf
            for k in range(int(st[S_NORD])):
                if rows[k, O_KIND] == K_MARKET or _rising(rows, k) != rising_seg:
                    continue
                lvl = rows[k, O_PRICE]
                if (rising_seg and cur <= lvl <= b) or (not rising_seg and b <= lvl <= cur):
                    d = abs(lvl - cur)
                    if d < best_d:
                        best = k
                        best_d = d
            lp = _lp_last(acc, pst, P, pp, br, bars, p, i)
            q = st[S_POS]
            liq_d = math.inf
            if not math.isnan(lp):
                if q > 0 and not rising_seg and b <= lp <= cur:
                    liq_d = cur - lp
                elif q < 0 and rising_seg and cur <= lp <= b:
                    liq_d = lp - cur
            if liq_d < best_d:
                _liquidate(acc, pst, orders, kids, trades, P, pp, br, bars, p, i, lp * ratio)
                cur = lp
                continue
            if best < 0:
                break
            cur = rows[best, O_PRICE]
            _fill_conditional(acc, pst, orders, kids, trades, P, pp, bars, p, best, cur, i, False)


@njit(cache=True)
def _funding(acc, pst, bars, fms, frate, fmark, p, i, upto) -> None:  # noqa: ANN001
    st = pst[p]
    while st[S_FPTR] < st[S_FEND] and fms[int(st[S_FPTR])] <= upto:
        f = int(st[S_FPTR])
        q = st[S_POS]
        if q != 0:
            mark = fmark[f]
            if not math.isfinite(mark):
                mark = bars[p, BO, i] * bars[p, BRATIO, i]
            cash = r.funding_cashflow(q, mark, frate[f])
            acc[A_WALLET] += cash
            acc[A_FUNDING_PAID] -= cash
            if st[S_T_OPEN] > 0:
                st[S_T_FUND] += cash
            _dirty_all(pst)
        st[S_FPTR] = f + 1


@njit(cache=True)
def _replace_stop(acc: np.ndarray, st: np.ndarray, rows: np.ndarray, price: float, tag: float) -> None:
    nord = int(st[S_NORD])
    for k in range(nord):
        if rows[k, O_KIND] == K_STOP:
            nord = _remove(rows, nord, k)
            break
    pos = st[S_POS]
    nord = _append(rows, nord, K_STOP, 1.0 if pos < 0 else 0.0, price, abs(pos), tag, F_CLOSE)
    st[S_NORD] = nord
    st[S_STOP_PRICE] = price
    st[S_REPLACED] = 1.0  # the old stop's cancellation reaches the strategy at the next bar's start (and is ignored)
    st[S_REPL_SEQ] = acc[A_SEQ]
    acc[A_SEQ] += 1.0


@njit(cache=True)
def _broker_bar(acc, pst, orders, kids, trades, P, pp, br, bars, ts, fms, frate, fmark, i) -> None:  # noqa: ANN001
    """FuturesBroker.next for bar i, pair by pair in feed order."""
    t = ts[i]
    for p in range(pst.shape[0]):
        st = pst[p]
        st[S_LAST_I] = i
        f = int(st[S_FPTR])
        due = f < st[S_FEND] and fms[f] <= t
        if due and fms[f] < t:
            _funding(acc, pst, bars, fms, frate, fmark, p, i, t - 1)
        if st[S_NORD] > 0:
            # market orders at the open, in submission order (a fill or a drop always removes the order)
            for _ in range(MAX_ORDERS):
                k = _find_kind(orders[p], int(st[S_NORD]), K_MARKET)
                if k < 0:
                    break
                price = r.slippage(bars[p, BO, i], orders[p, k, O_BUY] > 0, bars[p, BH, i] - bars[p, BL, i],
                                   P[P_SLIP_BPS], P[P_SLIP_RANGE])
                _fill(acc, pst, orders, kids, trades, P, pp, bars, p, k, price, False, i)
        if st[S_NORD] > 0 or st[S_POS] != 0:
            _fill_at_open(acc, pst, orders, kids, trades, P, pp, br, bars, p, i)
        if due:
            _funding(acc, pst, bars, fms, frate, fmark, p, i, t)
            if st[S_POS] != 0:
                _fill_at_open(acc, pst, orders, kids, trades, P, pp, br, bars, p, i)
        if st[S_NORD] > 0 or st[S_POS] != 0:
            _walk_bar(acc, pst, orders, kids, trades, P, pp, br, bars, p, i)


@njit(cache=True)
def _notify(acc, pst, orders, P, pp, i) -> None:  # noqa: ANN001
    """What each pair's notify_order does with this bar's notifications."""
    for p in range(pst.shape[0]):
        st = pst[p]
        pos = st[S_POS]
        if st[S_EV_ENTRY_FILLED] > 0:
            st[S_ENTRY_PRICE] = st[S_EV_ENTRY_PRICE]
            if st[S_TRAIL_ON_FILL] > 0 and st[S_TRAIL_MULT] > 0:
                st[S_TRAILING] = 1.0
        if st[S_EV_ENTRY_DEAD] > 0:
            st[S_ENTRY_ACTIVE] = 0.0
            st[S_DEAD_BAR] = i
        if pos != 0 and st[S_EV_TP1] > 0:
            side = 1.0 if pos > 0 else -1.0
            if P[P_BREAKEVEN] > 0:
                be = r.round_price(st[S_ENTRY_PRICE] * (1 + side * 2 * P[P_STRAT_FEE]), pp[p, PP_TICK],
                                   int(pp[p, PP_TICK_DEC]))
                if P[P_MODE] == MODE_REFERENCE or side * (be - st[S_STOP_PRICE]) > 0:
                    _replace_stop(acc, st, orders[p], be, TAG_STOP_BE)
            st[S_TRAILING] = 1.0 if st[S_TRAIL_MULT] > 0 else 0.0
        if pos == 0 and (st[S_EV_OTHER_DEAD] > 0 or st[S_EV_ENTRY_DEAD] > 0):
            st[S_ENTRY_ACTIVE] = 0.0
            st[S_HELD] = 0.0
            st[S_EXITING] = 0.0
            st[S_TRAILING] = 0.0


@njit(cache=True)
def _manage(acc: np.ndarray, st: np.ndarray, rows: np.ndarray, P: np.ndarray, pp_row: np.ndarray,
            bar: np.ndarray, t: float, i: int) -> None:
    """strategy.next for a pair holding a position."""
    pos = st[S_POS]
    exit_tag = -1.0
    trail = False
    if P[P_MODE] == MODE_REFERENCE:
        st[S_HELD] += 1.0
        if st[S_HELD] >= P[P_TIME_STOP] and st[S_EXITING] == 0:
            exit_tag = TAG_TIME
        elif st[S_TRAILING] > 0 and st[S_EXITING] == 0:
            trail = True
    elif st[S_EXITING] == 0:
        if t - st[S_OPEN_TS] >= st[S_HOLD_MS]:
            exit_tag = TAG_TIME
        elif (bar[BEXL, i] if pos > 0 else bar[BEXS, i]) == 1.0:
            exit_tag = TAG_EXIT
        elif st[S_TRAILING] > 0:
            trail = True
    if exit_tag >= 0:
        st[S_EXITING] = 1.0
        st[S_NORD] = _append(rows, int(st[S_NORD]), K_MARKET, 1.0 if pos < 0 else 0.0, 0.0, abs(pos), exit_tag,
                             F_REDUCE)
    elif trail:
        atr = bar[BATR, i]
        if math.isfinite(atr) and atr > 0:
            side = 1.0 if pos > 0 else -1.0
            c = bar[BC, i]
            cand = r.round_price(c - side * st[S_TRAIL_MULT] * atr, pp_row[PP_TICK], int(pp_row[PP_TICK_DEC]))
            if side * (cand - st[S_STOP_PRICE]) > P[P_TRAIL_STEP] * c:
                _replace_stop(acc, st, rows, cand, TAG_STOP_TRAIL)


@njit(cache=True)
def run(bars: np.ndarray, ts: np.ndarray, fms: np.ndarray, frate: np.ndarray, fmark: np.ndarray, P: np.ndarray,
        pp: np.ndarray, br: np.ndarray, acc: np.ndarray, pst: np.ndarray, orders: np.ndarray, kids: np.ndarray,
        trades: np.ndarray, equity: np.ndarray, start: int, start_pair: int) -> tuple[int, int, int]:
    """Advance from bar ``start`` (from pair ``start_pair``'s decision when > 0: the broker and notify steps of
    that bar are done); returns (code, bar, pair). NEED_ENTRY: the pair is flat, has no pending entry and its
    signal fired at the bar's close — call again with (bar, pair + 1) after ``place_entry`` (or without it when
    the entry is refused). NEED_SPACE: ``trades`` may fill up — grow it and call again with the same arguments.
    DONE: the segment ended and every position was closed at the last close."""
    n = ts.shape[0]
    npairs = pst.shape[0]
    for i in range(start, n):
        k0 = start_pair if i == start else 0
        if k0 == 0:
            if acc[A_NTRADES] + 2 * npairs + 2 >= trades.shape[0]:
                return NEED_SPACE, i, 0
            for p in range(npairs):
                st = pst[p]
                st[S_EV_ENTRY_FILLED] = 0.0
                st[S_EV_ENTRY_DEAD] = 0.0
                st[S_EV_TP1] = 0.0
                st[S_EV_OTHER_DEAD] = 0.0
                st[S_SEEN] = 0.0
                # A replaced stop's cancellation reaches the strategy now, but it ignores it (the position's end is
                # told by its own orders, with every fill's P&L), so it is no "seen" notification.
                st[S_REPLACED] = 0.0
            first_trade = int(acc[A_NTRADES])
            _broker_bar(acc, pst, orders, kids, trades, P, pp, br, bars, ts, fms, frate, fmark, i)
            upnl, _im = _marks(pst, bars, P[P_LEV], i)
            if acc[A_OPEN] > 0:
                acc[A_EXPOSURE] += 1.0
            equity[i] = acc[A_WALLET] + upnl
            if acc[A_WALLET] > acc[A_PEAK]:
                acc[A_PEAK] = acc[A_WALLET]
            for j in range(first_trade, int(acc[A_NTRADES])):
                trades[j, T_WALLET] = acc[A_WALLET]  # what notify_order reads as the wallet when it sees flat
            _notify(acc, pst, orders, P, pp, i)
        for p in range(k0, npairs):
            st = pst[p]
            if st[S_POS] != 0:
                _manage(acc, st, orders[p], P, pp[p], bars[p], float(ts[i]), i)
                continue
            if st[S_ENTRY_ACTIVE] > 0:
                continue
            if bars[p, BSIG, i] != 0.0:
                return NEED_ENTRY, i, p
    # --- broker.stop: close_all, pair by pair ---
    last = n - 1
    for p in range(npairs):
        st = pst[p]
        st[S_NORD] = 0.0
        st[S_NKIDS] = 0.0
        q = st[S_POS]
        if q != 0:
            price = r.slippage(bars[p, BC, last], q < 0, 0.0, P[P_SLIP_BPS], P[P_SLIP_RANGE])
            st[S_NORD] = _append(orders[p], 0, K_MARKET, 1.0 if q < 0 else 0.0, 0.0, abs(q), TAG_END, F_REDUCE)
            _fill(acc, pst, orders, kids, trades, P, pp, bars, p, 0, price, False, last)
    if n:
        equity[last] = acc[A_WALLET]
    return DONE, n, 0


@njit(cache=True)
def place_entry(st: np.ndarray, rows: np.ndarray, kid_rows: np.ndarray, side: float, qty: float, stop: float,
                tp_prices: np.ndarray, tp_qtys: np.ndarray, trail_mult: float, trail_on_fill: bool,
                hold_ms: float, open_ts: float) -> None:
    """FuturesStrategy.open_position for a decided entry: a market order with a close-position stop and reduce-only
    take-profit children (tiers with zero quantity are not sent), and the strategy's per-pair state reset."""
    buy = 1.0 if side > 0 else 0.0
    st[S_NORD] = _append(rows, int(st[S_NORD]), K_MARKET, buy, 0.0, qty, TAG_ENTRY, 0.0)
    nk = _append(kid_rows, 0, K_STOP, 1.0 - buy, stop, qty, TAG_STOP, F_CLOSE)
    for j in range(len(tp_prices)):
        if tp_qtys[j] > 0:
            nk = _append(kid_rows, nk, K_LIMIT, 1.0 - buy, tp_prices[j], tp_qtys[j], TAG_TP1 + j, F_REDUCE)
    st[S_NKIDS] = nk
    st[S_ENTRY_ACTIVE] = 1.0
    st[S_SIDE] = side
    st[S_HELD] = 0.0
    st[S_EXITING] = 0.0
    st[S_STOP_PRICE] = stop
    st[S_TRAILING] = 0.0
    st[S_REAL] = 0.0
    st[S_TRAIL_MULT] = trail_mult
    st[S_TRAIL_ON_FILL] = 1.0 if trail_on_fill else 0.0
    st[S_HOLD_MS] = hold_ms
    st[S_OPEN_TS] = open_ts
    st[S_DEAD_BAR] = -1.0
