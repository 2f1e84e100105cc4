"""The compiled bar loop: FuturesBroker's account and fill rules for one pair, plus the position-management half of
a strategy (time stop, break-even stop after the first target, ATR trailing stop).

It mirrors trader/backtest/broker.py step for step, per bar: funding settled inside a data gap, market orders at
the open (taker, slippage), levels and the liquidation price the open gapped through, funding stamped at the open,
then the bar walked as a path (open, the extreme adverse to the position, the other extreme) filling stops,
take-profits and liquidation in the order the path reaches them; then what the strategy's ``notify_order`` does
with that bar's fills, then the strategy's ``next`` for an open position. When the strategy is flat and its signal
fires, the kernel returns ``NEED_ENTRY`` with the bar: the Python twin sizes the entry with the project's own
sizing rules and hands back the orders (``place_entry``), and the loop resumes on the next bar. Everything the
strategy decides about money is therefore made by the same Python functions the Backtrader path calls; only the
per-fill arithmetic runs here, through trader/screening/rules.py.

State lives in small numpy arrays so a run can stop and resume without Python objects:
- ``st`` (float64): the account, the open trade's ledger and the strategy's per-pair state (indices S_*);
- ``orders``: the pair's alive orders in submission order (the broker's ``p.orders``), one row per order (O_*);
- ``kids``: protective orders waiting for their entry to fill (the broker's ``_children``);
- ``trades``: one closed round trip per row (T_*), ``equity``: the account value after each bar's broker step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from trader.screening import rules as r

# bars rows (BATR: the ATR the trailing stop reads; BEXL/BEXS: the setup's exit events, 1.0 on an exit bar)
BO, BH, BL, BC, BRATIO, BSIG, BATR, BEXL, BEXS = range(9)
N_BAR_ROWS = 9

# params (float64)
(P_LEV, P_MAKER, P_TAKER, P_SLIP_BPS, P_SLIP_RANGE, P_STEP, P_TICK, P_TICK_DEC, P_LIQ_RATE, P_TIME_STOP,
 P_BREAKEVEN, P_TRAIL_MULT, P_TRAIL_STEP, P_STRAT_FEE, P_MODE) = range(15)
N_PARAMS = 15
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

# state
(S_WALLET, S_POS, S_POS_PRICE, S_LP, S_LP_DIRTY, S_FPTR, S_NORD, S_NKIDS, S_FEES, S_FUNDING_PAID, S_LIQ_FEES,
 S_LIQS, S_INSURANCE, S_EXPOSURE, S_NTRADES,
 # open trade ledger
 S_T_OPEN, S_T_OPEN_I, S_T_SIDE, S_T_QTY, S_T_EQ, S_T_EQTY, S_T_EVAL, S_T_XQTY, S_T_XVAL, S_T_RPNL, S_T_FEES,
 S_T_FUND, S_T_LIQFEE, S_T_REASON, S_T_FILLS, S_T_LIQ,
 # strategy per-pair state
 S_ENTRY_ACTIVE, S_SIDE, S_HELD, S_EXITING, S_ENTRY_PRICE, S_STOP_PRICE, S_TRAILING,
 # this bar's notifications (what notify_order would see)
 S_EV_ENTRY_FILLED, S_EV_ENTRY_PRICE, S_EV_ENTRY_DEAD, S_EV_TP1, S_EV_OTHER_DEAD,
 # the strategy's own running P&L of the trade (``st.realized``) as notify_order sees it: fills add to it in
 # notification order, and the first order notification of a bar that ends flat hands it to the risk book —
 # a stop replaced on the previous bar is notified (cancelled) before this bar's fills, so it hands the P&L as it
 # stood at the bar's start
 S_REAL, S_SNAP, S_SEEN, S_REPLACED,
 # the position's own management settings, fixed at the entry decision
 S_TRAIL_MULT, S_TRAIL_ON_FILL, S_HOLD_MS, S_OPEN_TS) = range(51)
N_STATE = 51

# trades columns
(T_OPEN_I, T_CLOSE_I, T_SIDE, T_QTY, T_ENTRY, T_EXIT, T_RPNL, T_FEES, T_FUND, T_LIQFEE, T_REASON, T_FILLS, T_LIQ,
 T_EQ, T_WALLET, T_STRAT_PNL) = range(16)
N_TRADE_COLS = 16

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


@njit(cache=True)
def _cancel_all(st: np.ndarray) -> None:
    if st[S_NORD] > 0 or st[S_NKIDS] > 0:
        st[S_EV_OTHER_DEAD] = 1.0
    st[S_NORD] = 0.0
    st[S_NKIDS] = 0.0


@njit(cache=True)
def _close_trade(st: np.ndarray, trades: np.ndarray, i: int) -> None:
    n = int(st[S_NTRADES])
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
    trades[n, T_WALLET] = st[S_WALLET]  # what the strategy's notify_order reads when it sees the position flat
    trades[n, T_STRAT_PNL] = st[S_SNAP]  # the P&L it hands to the risk book then
    st[S_NTRADES] = n + 1
    st[S_T_OPEN] = 0.0


@njit(cache=True)
def _fill(st: np.ndarray, orders: np.ndarray, kids: np.ndarray, trades: np.ndarray, P: np.ndarray, k: int,
          price: float, maker: bool, i: int) -> None:
    """FuturesBroker._fill for order row ``k`` (removed from the list once filled or dropped)."""
    buy = orders[k, O_BUY] > 0
    qty = orders[k, O_QTY]
    tag = orders[k, O_TAG]
    flag = orders[k, O_FLAG]
    pos = st[S_POS]
    nord = int(st[S_NORD])
    if flag > 0:  # reduce-only / close-position
        if pos == 0 or (pos > 0) == buy:
            st[S_NORD] = _remove(orders, nord, k)  # -2022: nothing to reduce
            if tag == TAG_ENTRY:
                st[S_EV_ENTRY_DEAD] = 1.0
            else:
                st[S_EV_OTHER_DEAD] = 1.0
                _seen(st)
            return
        want = abs(pos) if flag == F_CLOSE else min(qty, abs(pos))
        side = 1.0 if pos > 0 else -1.0
        fee_rate = P[P_MAKER] if maker else P[P_TAKER]
        fee = r.commission(price, want, fee_rate)
        pnl = r.realized_pnl(want, st[S_POS_PRICE], price, side)
        newpos = r.snap_position(pos - side * want, P[P_STEP])
        st[S_POS] = newpos
        if newpos == 0:
            st[S_POS_PRICE] = 0.0
        st[S_WALLET] += pnl - fee
        st[S_FEES] += fee
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
                _close_trade(st, trades, i)
        nord = _remove(orders, nord, k)
        st[S_NORD] = nord
        if tag == TAG_TP1:
            st[S_EV_TP1] = 1.0
        st[S_EV_OTHER_DEAD] = 1.0
        if newpos == 0:
            # _cancel_reduce_only: every reduce-only / close-position order goes with the position.
            j = 0
            while j < nord:
                if orders[j, O_FLAG] > 0:
                    nord = _remove(orders, nord, j)
                else:
                    j += 1
            st[S_NORD] = nord
        st[S_LP_DIRTY] = 1.0
        return
    # Opening from flat (the strategies this kernel serves never add to or reverse a position).
    lev = P[P_LEV]
    fee_rate = P[P_MAKER] if maker else P[P_TAKER]
    need = r.initial_margin(qty, price, lev) + r.commission(price, qty, fee_rate)
    upnl = 0.0
    im = 0.0
    if pos != 0:
        upnl = pos * (price - st[S_POS_PRICE])
        im = abs(pos) * price / lev
    available = max(0.0, st[S_WALLET] + upnl - im)
    if need > available:
        st[S_NORD] = _remove(orders, nord, k)
        st[S_NKIDS] = 0.0  # children cancelled with their parent
        st[S_EV_ENTRY_DEAD] = 1.0
        return
    side = 1.0 if buy else -1.0
    fee = r.commission(price, qty, fee_rate)
    st[S_POS] = r.snap_position(side * qty, P[P_STEP])
    st[S_POS_PRICE] = price
    st[S_WALLET] -= fee
    st[S_FEES] += fee
    st[S_T_OPEN] = 1.0
    st[S_T_OPEN_I] = i
    st[S_T_SIDE] = side
    st[S_T_EQ] = st[S_WALLET] + fee
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
    nord = _remove(orders, nord, k)
    # The protective children go live the moment the entry fills.
    nk = int(st[S_NKIDS])
    for j in range(nk):
        nord = _append(orders, nord, kids[j, O_KIND], kids[j, O_BUY], kids[j, O_PRICE], kids[j, O_QTY],
                       kids[j, O_TAG], kids[j, O_FLAG])
    st[S_NKIDS] = 0.0
    st[S_NORD] = nord
    if tag == TAG_ENTRY:
        st[S_EV_ENTRY_FILLED] = 1.0
        st[S_EV_ENTRY_PRICE] = price
    st[S_LP_DIRTY] = 1.0


@njit(cache=True)
def _lp_last(st: np.ndarray, P: np.ndarray, br: np.ndarray, bars: np.ndarray, i: int) -> float:
    """FuturesBroker._lp_last: the liquidation price in last-price terms, NaN when there is none."""
    q = st[S_POS]
    if q == 0:
        return math.nan
    if st[S_LP_DIRTY] > 0:
        st[S_LP] = r.liquidation_price(1.0 if q > 0 else -1.0, abs(q), st[S_POS_PRICE], st[S_WALLET], br, 0.0, 0.0,
                                       bars[BO, i] * bars[BRATIO, i])
        st[S_LP_DIRTY] = 0.0
    return st[S_LP] / bars[BRATIO, i]


@njit(cache=True)
def _liquidate(st: np.ndarray, trades: np.ndarray, P: np.ndarray, br: np.ndarray, i: int, mark: float) -> None:
    q = st[S_POS]
    if st[S_NORD] > 0 or st[S_NKIDS] > 0:
        _seen(st)  # the cancellations are notified before the liquidation itself
    _cancel_all(st)
    old_price = st[S_POS_PRICE]
    st[S_POS] = 0.0
    st[S_POS_PRICE] = 0.0
    pnl = r.realized_pnl(q, old_price, mark, 1.0 if q > 0 else -1.0)
    st[S_WALLET] += pnl
    st[S_REAL] += pnl
    _seen(st)
    notional = abs(q) * mark
    fee = r.liquidation_fee(notional, P[P_LIQ_RATE], r.maintenance_margin(notional, br), st[S_WALLET])
    st[S_WALLET] -= fee
    st[S_LIQ_FEES] += fee
    if st[S_WALLET] < 0:
        st[S_INSURANCE] += -st[S_WALLET]
        st[S_WALLET] = 0.0
    st[S_LIQS] += 1.0
    st[S_EV_OTHER_DEAD] = 1.0
    if st[S_T_OPEN] > 0:
        st[S_T_RPNL] += pnl
        st[S_T_LIQFEE] += fee
        st[S_T_XQTY] += abs(q)
        st[S_T_XVAL] += abs(q) * mark
        st[S_T_FILLS] += 1.0
        st[S_T_LIQ] = 1.0
        st[S_T_REASON] = TAG_LIQ
        _close_trade(st, trades, i)
    st[S_LP_DIRTY] = 1.0


@njit(cache=True)
def _rising(orders: np.ndarray, k: int) -> bool:
    return (orders[k, O_KIND] == K_STOP) == (orders[k, O_BUY] > 0)


@njit(cache=True)
def _fill_conditional(st: np.ndarray, orders: np.ndarray, kids: np.ndarray, trades: np.ndarray, P: np.ndarray,
                      bars: np.ndarray, k: int, level: float, i: int, at_open: bool) -> None:
    if orders[k, O_KIND] == K_STOP:
        price = r.slippage(level, orders[k, O_BUY] > 0, bars[BH, i] - bars[BL, i], P[P_SLIP_BPS], P[P_SLIP_RANGE])
        _fill(st, orders, kids, trades, P, k, price, False, i)
    else:
        _fill(st, orders, kids, trades, P, k, bars[BO, i] if at_open else level, not at_open, i)


@njit(cache=True)
def _fill_at_open(st, orders, kids, trades, P, br, bars, i) -> None:  # noqa: ANN001
    o = bars[BO, i]
    ratio = bars[BRATIO, i]
    for _ in range(64):
        lp = _lp_last(st, P, br, bars, i)
        q = st[S_POS]
        if not math.isnan(lp) and ((q > 0 and o <= lp) or (q < 0 and o >= lp)):
            _liquidate(st, trades, P, br, i, o * ratio)
            continue
        hit = -1
        for k in range(int(st[S_NORD])):
            if orders[k, O_KIND] == K_MARKET:
                continue
            lvl = orders[k, O_PRICE]
            if (_rising(orders, k) and o >= lvl) or (not _rising(orders, k) and o <= lvl):
                hit = k
                break
        if hit < 0:
            break
        _fill_conditional(st, orders, kids, trades, P, bars, hit, o, i, True)


@njit(cache=True)
def _walk_bar(st, orders, kids, trades, P, br, bars, i) -> None:  # noqa: ANN001
    o, h, lo, c = bars[BO, i], bars[BH, i], bars[BL, i], bars[BC, i]
    ratio = bars[BRATIO, i]
    lp = _lp_last(st, P, br, bars, i)
    q = st[S_POS]
    if math.isnan(lp) or not (lo <= lp <= h or (q > 0 and o <= lp) or (q < 0 and o >= lp)):
        reach = False
        for k in range(int(st[S_NORD])):
            if orders[k, O_KIND] == K_MARKET:
                continue
            lvl = orders[k, O_PRICE]
            if (h >= lvl) if _rising(orders, k) else (lo <= lvl):
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
                if orders[k, O_KIND] == K_MARKET or _rising(orders, k) != rising_seg:
                    continue
                lvl = orders[k, O_PRICE]
                if (rising_seg and cur <= lvl <= b) or (not rising_seg and b <= lvl <= cur):
                    d = abs(lvl - cur)
                    if d < best_d:
                        best = k
                        best_d = d
            lp = _lp_last(st, P, br, bars, i)
            q = st[S_POS]
            liq_d = math.inf
            if not math.isnan(lp):
                if q > 0 and not rising_seg and b <= lp <= cur:
                    liq_d = cur - lp
                elif q < 0 and rising_seg and cur <= lp <= b:
                    liq_d = lp - cur
            if liq_d < best_d:
                _liquidate(st, trades, P, br, i, lp * ratio)
                cur = lp
                continue
            if best < 0:
                break
            cur = orders[best, O_PRICE]
            _fill_conditional(st, orders, kids, trades, P, bars, best, cur, i, False)


@njit(cache=True)
def _funding(st, P, bars, fms, frate, fmark, i, upto) -> None:  # noqa: ANN001
    while st[S_FPTR] < len(fms) and fms[int(st[S_FPTR])] <= upto:
        f = int(st[S_FPTR])
        q = st[S_POS]
        if q != 0:
            mark = fmark[f]
            if not math.isfinite(mark):
                mark = bars[BO, i] * bars[BRATIO, i]
            cash = r.funding_cashflow(q, mark, frate[f])
            st[S_WALLET] += cash
            st[S_FUNDING_PAID] -= cash
            if st[S_T_OPEN] > 0:
                st[S_T_FUND] += cash
            st[S_LP_DIRTY] = 1.0
        st[S_FPTR] = f + 1


@njit(cache=True)
def _replace_stop(st: np.ndarray, orders: np.ndarray, price: float, tag: float) -> None:
    nord = int(st[S_NORD])
    for k in range(nord):
        if orders[k, O_KIND] == K_STOP:
            nord = _remove(orders, nord, k)
            break
    pos = st[S_POS]
    nord = _append(orders, nord, K_STOP, 1.0 if pos < 0 else 0.0, price, abs(pos), tag, F_CLOSE)
    st[S_NORD] = nord
    st[S_STOP_PRICE] = price
    st[S_REPLACED] = 1.0  # the old stop's cancellation reaches the strategy at the next bar's start


@njit(cache=True)
def run(bars: np.ndarray, ts: np.ndarray, fms: np.ndarray, frate: np.ndarray, fmark: np.ndarray, P: np.ndarray,
        br: np.ndarray, st: np.ndarray, orders: np.ndarray, kids: np.ndarray, trades: np.ndarray,
        equity: np.ndarray, start: int) -> tuple[int, int]:
    """Advance from bar ``start``; returns (code, bar). NEED_ENTRY: the strategy is flat, has no pending entry and
    its signal fired at the bar's close — call again from bar + 1 after ``place_entry`` (or without it when the
    entry is refused). NEED_SPACE: ``trades`` is full — grow it and call again from the same bar. DONE: the
    segment ended and the position (if any) was closed at the last close."""
    n = bars.shape[1]
    tick_dec = int(P[P_TICK_DEC])
    for i in range(start, n):
        if st[S_NTRADES] + 2 >= trades.shape[0]:
            return NEED_SPACE, i
        st[S_EV_ENTRY_FILLED] = 0.0
        st[S_EV_ENTRY_DEAD] = 0.0
        st[S_EV_TP1] = 0.0
        st[S_EV_OTHER_DEAD] = 0.0
        st[S_SEEN] = 0.0
        if st[S_REPLACED] > 0:
            st[S_REPLACED] = 0.0
            _seen(st)
        # --- broker.next ---
        t = ts[i]
        f = int(st[S_FPTR])
        due = f < len(fms) and fms[f] <= t
        if due and fms[f] < t:
            _funding(st, P, bars, fms, frate, fmark, i, t - 1)
        if st[S_NORD] > 0:
            # market orders at the open, in submission order (a fill or a drop always removes the order)
            for _ in range(MAX_ORDERS):
                k = _find_kind(orders, int(st[S_NORD]), K_MARKET)
                if k < 0:
                    break
                price = r.slippage(bars[BO, i], orders[k, O_BUY] > 0, bars[BH, i] - bars[BL, i],
                                   P[P_SLIP_BPS], P[P_SLIP_RANGE])
                _fill(st, orders, kids, trades, P, k, price, False, i)
        if st[S_NORD] > 0 or st[S_POS] != 0:
            _fill_at_open(st, orders, kids, trades, P, br, bars, i)
        if due:
            _funding(st, P, bars, fms, frate, fmark, i, t)
            if st[S_POS] != 0:
                _fill_at_open(st, orders, kids, trades, P, br, bars, i)
        if st[S_NORD] > 0 or st[S_POS] != 0:
            _walk_bar(st, orders, kids, trades, P, br, bars, i)
        pos = st[S_POS]
        if st[S_T_OPEN] > 0:
            st[S_EXPOSURE] += 1.0
        equity[i] = st[S_WALLET] + (pos * (bars[BC, i] * bars[BRATIO, i] - st[S_POS_PRICE]) if pos != 0 else 0.0)
        # --- strategy.notify_order for this bar's notifications ---
        if st[S_EV_ENTRY_FILLED] > 0:
            st[S_ENTRY_PRICE] = st[S_EV_ENTRY_PRICE]
            if st[S_TRAIL_ON_FILL] > 0 and st[S_TRAIL_MULT] > 0:
                st[S_TRAILING] = 1.0
        if st[S_EV_ENTRY_DEAD] > 0:
            st[S_ENTRY_ACTIVE] = 0.0
        if pos != 0 and st[S_EV_TP1] > 0:
            side = 1.0 if pos > 0 else -1.0
            if P[P_BREAKEVEN] > 0:
                be = r.round_price(st[S_ENTRY_PRICE] * (1 + side * 2 * P[P_STRAT_FEE]), P[P_TICK], tick_dec)
                if P[P_MODE] == MODE_REFERENCE or side * (be - st[S_STOP_PRICE]) > 0:
                    _replace_stop(st, orders, be, TAG_STOP_BE)
            st[S_TRAILING] = 1.0 if st[S_TRAIL_MULT] > 0 else 0.0
        if pos == 0 and (st[S_EV_OTHER_DEAD] > 0 or st[S_EV_ENTRY_DEAD] > 0):
            st[S_ENTRY_ACTIVE] = 0.0
            st[S_HELD] = 0.0
            st[S_EXITING] = 0.0
            st[S_TRAILING] = 0.0
        # --- strategy.next ---
        if pos != 0:
            exit_tag = -1.0
            trail = False
            if P[P_MODE] == MODE_REFERENCE:
                st[S_HELD] += 1.0
                if st[S_HELD] >= P[P_TIME_STOP] and st[S_EXITING] == 0:
                    exit_tag = TAG_TIME
                elif st[S_TRAILING] > 0 and st[S_EXITING] == 0:
                    trail = True
            elif st[S_EXITING] == 0:
                if ts[i] - st[S_OPEN_TS] >= st[S_HOLD_MS]:
                    exit_tag = TAG_TIME
                elif (bars[BEXL, i] if pos > 0 else bars[BEXS, i]) == 1.0:
                    exit_tag = TAG_EXIT
                elif st[S_TRAILING] > 0:
                    trail = True
            if exit_tag >= 0:
                st[S_EXITING] = 1.0
                st[S_NORD] = _append(orders, int(st[S_NORD]), K_MARKET, 1.0 if pos < 0 else 0.0, 0.0, abs(pos),
                                     exit_tag, F_REDUCE)
            elif trail:
                atr = bars[BATR, i]
                if math.isfinite(atr) and atr > 0:
                    side = 1.0 if pos > 0 else -1.0
                    c = bars[BC, i]
                    cand = r.round_price(c - side * st[S_TRAIL_MULT] * atr, P[P_TICK], tick_dec)
                    if side * (cand - st[S_STOP_PRICE]) > P[P_TRAIL_STEP] * c:
                        _replace_stop(st, orders, cand, TAG_STOP_TRAIL)
            continue
        if st[S_ENTRY_ACTIVE] > 0:
            continue
        if bars[BSIG, i] != 0.0:
            return NEED_ENTRY, i
    # --- broker.stop: close_all ---
    last = n - 1
    st[S_NORD] = 0.0
    st[S_NKIDS] = 0.0
    q = st[S_POS]
    if q != 0:
        price = r.slippage(bars[BC, last], q < 0, 0.0, P[P_SLIP_BPS], P[P_SLIP_RANGE])
        nord = _append(orders, 0, K_MARKET, 1.0 if q < 0 else 0.0, 0.0, abs(q), TAG_END, F_REDUCE)
        st[S_NORD] = nord
        _fill(st, orders, kids, trades, P, 0, price, False, last)
    if n:
        equity[last] = st[S_WALLET]
    return DONE, n


@njit(cache=True)
def place_entry(st: np.ndarray, orders: np.ndarray, kids: np.ndarray, side: float, qty: float, stop: float,
                tp_prices: np.ndarray, tp_qtys: np.ndarray, trail_mult: float, trail_on_fill: bool,
                hold_ms: float, open_ts: float) -> None:
    """FuturesStrategy.open_position for a decided entry: a market order with a close-position stop and reduce-only
    take-profit children (tiers with zero quantity are not sent), and the strategy's per-pair state reset."""
    buy = 1.0 if side > 0 else 0.0
    st[S_NORD] = _append(orders, int(st[S_NORD]), K_MARKET, buy, 0.0, qty, TAG_ENTRY, 0.0)
    nk = _append(kids, 0, K_STOP, 1.0 - buy, stop, qty, TAG_STOP, F_CLOSE)
    for j in range(len(tp_prices)):
        if tp_qtys[j] > 0:
            nk = _append(kids, nk, K_LIMIT, 1.0 - buy, tp_prices[j], tp_qtys[j], TAG_TP1 + j, F_REDUCE)
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
