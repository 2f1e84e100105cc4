"""The seed's indicator set on numpy arrays, causal: the value at bar t uses bars ≤ t only.

TA-Lib computes what it has. SuperTrend, Keltner, Ichimoku and CMF are not in TA-Lib and are built from its
primitives (ATR, EMA, MIDPRICE, SUM); the tests check them against plain loops written independently.
Inputs must be float64 (TA-Lib rejects float32); warm-up values are NaN, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib

from trader.analysis.bars import Bars

Array = np.ndarray


def _shift(x: Array, k: int) -> Array:
    """x delayed by k bars (NaN in front): the value of k bars ago, as known now."""
    out = np.full_like(x, np.nan)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def rsi(close: Array, period: int = 14) -> Array:
    return talib.RSI(close, timeperiod=period)


def stoch_rsi(close: Array, rsi_period: int = 14, stoch_period: int = 14, k_smooth: int = 3,
              d_smooth: int = 3) -> tuple[Array, Array]:
    """StochRSI(14, 14, 3, 3) as charting platforms define it: %K = SMA3 of the stochastic of RSI, %D = SMA3 of %K.
    TA-Lib's STOCHRSI has no %K smoothing, so STOCH is run on the RSI series instead (high = low = close = RSI)."""
    r = talib.RSI(close, timeperiod=rsi_period)
    k, d = talib.STOCH(r, r, r, fastk_period=stoch_period, slowk_period=k_smooth, slowk_matype=0,
                       slowd_period=d_smooth, slowd_matype=0)
    return k, d


def ultimate_oscillator(high: Array, low: Array, close: Array, p1: int = 7, p2: int = 14, p3: int = 28) -> Array:
    return talib.ULTOSC(high, low, close, timeperiod1=p1, timeperiod2=p2, timeperiod3=p3)


def atr(high: Array, low: Array, close: Array, period: int = 14) -> Array:
    return talib.ATR(high, low, close, timeperiod=period)


def supertrend(high: Array, low: Array, close: Array, period: int = 10, multiplier: float = 3.0) -> tuple[Array, Array]:
    """SuperTrend(10, 3): (line, direction +1/−1). Bands are hl2 ± m·ATR (TA-Lib's Wilder ATR); the lower band only
    rises and the upper only falls while the close stays beyond them; the direction flips when the close crosses
    the previous bar's opposite band. The recursion has no closed form, so this is one pass over Python floats
    (lists, not numpy scalars, which would be ~10× slower per element)."""
    n = len(close)
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    a = talib.ATR(high, low, close, timeperiod=period)
    valid = np.flatnonzero(~np.isnan(a))
    if not len(valid):
        return line, direction
    start = int(valid[0])
    hl2 = (high + low) / 2.0
    up_raw = (hl2 - multiplier * a).tolist()
    dn_raw = (hl2 + multiplier * a).tolist()
    c = close.tolist()
    out_line = [float("nan")] * n
    out_dir = [float("nan")] * n
    up, dn, trend = up_raw[start], dn_raw[start], 1.0
    out_line[start], out_dir[start] = up, trend
    for i in range(start + 1, n):
        prev_c = c[i - 1]
        u = up_raw[i]
        d = dn_raw[i]
        if prev_c > up:
            u = max(u, up)
        if prev_c < dn:
            d = min(d, dn)
        ci = c[i]
        if trend < 0 and ci > dn:
            trend = 1.0
        elif trend > 0 and ci < up:
            trend = -1.0
        up, dn = u, d
        out_line[i] = u if trend > 0 else d
        out_dir[i] = trend
    return np.asarray(out_line), np.asarray(out_dir)


def parabolic_sar(high: Array, low: Array, acceleration: float = 0.02, maximum: float = 0.2) -> Array:
    return talib.SAR(high, low, acceleration=acceleration, maximum=maximum)


@dataclass(frozen=True)
class Ichimoku:
    """Every line as it can be read at bar t.

    The cloud is drawn 26 bars ahead of the bar that computes it, so the cloud *under* bar t was computed 26 bars
    earlier: ``span_a[t]``/``span_b[t]`` are the values computed at t − 26 (never the ones computed at t, which
    belong to a future bar). The lagging span is the close drawn 26 bars back; causally it is the comparison of
    today's close with the close of 26 bars ago (``chikou_diff``), never a future close plotted over the past."""

    tenkan: Array
    kijun: Array
    span_a: Array
    span_b: Array
    chikou_diff: Array


def ichimoku(high: Array, low: Array, close: Array, tenkan: int = 9, kijun: int = 26, senkou: int = 52) -> Ichimoku:
    t = talib.MIDPRICE(high, low, timeperiod=tenkan)  # (highest high + lowest low) / 2 over the period
    k = talib.MIDPRICE(high, low, timeperiod=kijun)
    b = talib.MIDPRICE(high, low, timeperiod=senkou)
    return Ichimoku(t, k, _shift((t + k) / 2.0, kijun), _shift(b, kijun), close - _shift(close, kijun))


def bollinger(close: Array, period: int = 20, dev: float = 2.0) -> tuple[Array, Array, Array]:
    return talib.BBANDS(close, timeperiod=period, nbdevup=dev, nbdevdn=dev, matype=0)


def keltner(high: Array, low: Array, close: Array, period: int = 20, multiplier: float = 2.0) -> tuple[Array, Array, Array]:
    """Keltner(20, 2): EMA(close, 20) ± 2·ATR(20) (the modern definition; both lengths are the one period)."""
    mid = talib.EMA(close, timeperiod=period)
    a = talib.ATR(high, low, close, timeperiod=period)
    return mid + multiplier * a, mid, mid - multiplier * a


def atr_channels(high: Array, low: Array, close: Array, period: int = 14, multiplier: float = 3.0) -> tuple[Array, Array]:
    """ATR channels (chandelier form): (highest high − m·ATR, lowest low + m·ATR) over ``period`` — the trailing
    stop levels a long and a short would sit at; distinct from Keltner, which centres on an average."""
    a = talib.ATR(high, low, close, timeperiod=period)
    return talib.MAX(high, timeperiod=period) - multiplier * a, talib.MIN(low, timeperiod=period) + multiplier * a


def obv(close: Array, volume: Array) -> Array:
    return talib.OBV(close, volume)


def cmf(high: Array, low: Array, close: Array, volume: Array, period: int = 20) -> Array:
    """Chaikin Money Flow: Σ money-flow volume / Σ volume over ``period``. A bar with high == low has no location
    in its range and contributes 0 flow (its volume still counts); a window with no volume at all is NaN."""
    rng = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        mult = np.where(rng > 0, ((close - low) - (high - close)) / np.where(rng > 0, rng, 1.0), 0.0)
        flow = talib.SUM(mult * volume, timeperiod=period)
        vol = talib.SUM(volume, timeperiod=period)
        return np.where(vol > 0, flow / np.where(vol > 0, vol, 1.0), np.nan)


def mfi(high: Array, low: Array, close: Array, volume: Array, period: int = 14) -> Array:
    return talib.MFI(high, low, close, volume, timeperiod=period)


def cci(high: Array, low: Array, close: Array, period: int = 20) -> Array:
    return talib.CCI(high, low, close, timeperiod=period)


def williams_r(high: Array, low: Array, close: Array, period: int = 14) -> Array:
    return talib.WILLR(high, low, close, timeperiod=period)


def macd(close: Array, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Array, Array, Array]:
    return talib.MACD(close, fastperiod=fast, slowperiod=slow, signalperiod=signal)


def adx(high: Array, low: Array, close: Array, period: int = 14) -> tuple[Array, Array, Array]:
    """(ADX, +DI, −DI): trend strength for the regime classifier."""
    return (talib.ADX(high, low, close, timeperiod=period), talib.PLUS_DI(high, low, close, timeperiod=period),
            talib.MINUS_DI(high, low, close, timeperiod=period))


@dataclass(frozen=True)
class IndicatorParams:
    """The seed's settings; change them here rather than at call sites so every timeframe agrees."""

    rsi_fast: int = 9
    rsi_slow: int = 14
    stoch_rsi: tuple[int, int, int, int] = (14, 14, 3, 3)
    ultosc: tuple[int, int, int] = (7, 14, 28)
    supertrend: tuple[int, float] = (10, 3.0)
    sar: tuple[float, float] = (0.02, 0.2)
    ichimoku: tuple[int, int, int] = (9, 26, 52)
    bollinger: tuple[int, float] = (20, 2.0)
    keltner: tuple[int, float] = (20, 2.0)
    atr_period: int = 14
    atr_channel_multiplier: float = 3.0
    cmf_period: int = 20
    mfi_period: int = 14
    cci_period: int = 20
    willr_period: int = 14
    macd: tuple[int, int, int] = (12, 26, 9)
    adx_period: int = 14
    ema_fast: int = 20
    ema_slow: int = 50


def indicator_set(bars: Bars, p: IndicatorParams | None = None) -> dict[str, Array]:
    """Every indicator of the seed on one timeframe, keyed by a flat name (one array per line)."""
    p = p or IndicatorParams()
    h, lo, c, v = bars.high, bars.low, bars.close, bars.volume
    out: dict[str, Array] = {"close": c}
    out["rsi_9"] = rsi(c, p.rsi_fast)
    out["rsi_14"] = rsi(c, p.rsi_slow)
    out["stochrsi_k"], out["stochrsi_d"] = stoch_rsi(c, *p.stoch_rsi)
    out["ultosc"] = ultimate_oscillator(h, lo, c, *p.ultosc)
    out["supertrend"], out["supertrend_dir"] = supertrend(h, lo, c, *p.supertrend)
    out["sar"] = parabolic_sar(h, lo, *p.sar)
    ich = ichimoku(h, lo, c, *p.ichimoku)
    out.update(ichi_tenkan=ich.tenkan, ichi_kijun=ich.kijun, ichi_span_a=ich.span_a, ichi_span_b=ich.span_b,
               ichi_chikou_diff=ich.chikou_diff)
    out["bb_upper"], out["bb_mid"], out["bb_lower"] = bollinger(c, *p.bollinger)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["bb_width"] = (out["bb_upper"] - out["bb_lower"]) / out["bb_mid"]
        out["bb_percent_b"] = (c - out["bb_lower"]) / (out["bb_upper"] - out["bb_lower"])
    out["kc_upper"], out["kc_mid"], out["kc_lower"] = keltner(h, lo, c, *p.keltner)
    out["atr"] = atr(h, lo, c, p.atr_period)
    out["natr"] = out["atr"] / c  # ATR as a fraction of price: comparable across pairs and through time
    out["atr_long_stop"], out["atr_short_stop"] = atr_channels(h, lo, c, p.atr_period, p.atr_channel_multiplier)
    out["obv"] = obv(c, v)
    out["cmf"] = cmf(h, lo, c, v, p.cmf_period)
    out["mfi"] = mfi(h, lo, c, v, p.mfi_period)
    out["cci"] = cci(h, lo, c, p.cci_period)
    out["willr"] = williams_r(h, lo, c, p.willr_period)
    out["macd"], out["macd_signal"], out["macd_hist"] = macd(c, *p.macd)
    out["adx"], out["plus_di"], out["minus_di"] = adx(h, lo, c, p.adx_period)
    out["ema_fast"] = talib.EMA(c, timeperiod=p.ema_fast)
    out["ema_slow"] = talib.EMA(c, timeperiod=p.ema_slow)
    return out
