"""Live latency: candle close → order request on the wire, in-process against the simulator.

The simulator runs on its own thread with a stepped clock; the live engine (one thread: the host loop, with
Backtrader's live loop in a greenlet it resumes, trader/live/runner.py) trades a strategy that enters on one bar
and leaves on the next, so every closed candle produces exactly one order. Per candle, three instants on one monotonic clock (``time.perf_counter``, shared by all threads):

- t0: the closed-kline websocket message reaches the engine (``KlineStreams.on_text``, before it is decoded);
- t1: ccxt hands the signed order request to its HTTP session ("on the wire");
- t2: the simulator's matching engine gets it (after loopback transfer, HTTP parsing and signature check).

Figures: t1 − t0 (the engine's own path: stream, candle gate, indicators, strategy, broker, desk, client) and
t2 − t0, from the first closed kline of the minute (any pair: the simulator sends the ten in a burst, as the
exchange can) and from the order pair's own (its rank in the burst is printed). Target ≤ 2 ms p99 for t1 − t0.
With ``--sim-process`` also from when the simulator frames the closed kline(s) the order needs (its own pair's,
and in pair order every pair's before it in the whitelist): t0 there is stamped in the simulator's process, on the
same monotonic clock, before aiohttp frames and writes the message, so a frame waiting in the socket or in
aiohttp's queue while the engine handles the burst's earlier frames counts against the engine (the "own kline"
figure, stamped when the engine reads it, leaves that out).
Beside them, the CPU time of the engine's thread per candle (from /proc; the whole candle: the order's fills, its
stop, the ledger's bookkeeping — most of it after the order is out), which the machine's load moves far less.

    .venv/bin/python bench/live_latency.py [--bars 400] [--db] [--sim-process] [--pairs 10] [--strategy master]
                                           [--stages] [--order-pair first|last] [--metronome-ms 60]
                                           [--spin on|off] [--gc paced|python]

``--metronome-ms`` (with ``--sim-process``) has the simulator stepped by a process of its own, a minute every so
many ms at fixed instants, as the exchange's clock closes minutes; without it this process steps the simulator
after each order and a pause. ``--spin off`` lets the engine loop sleep between candles
(trader/live/close_spin.py).

``--stages`` also prints each step of the order pair's path (first kline of the minute → its own kline → its
candle released to its feed → strategy ``next()`` → order submitted → the desk's send task starts → write-ahead
written (the order journal's line; committed rows without the journal) → on the wire).

``--strategy master`` (the default) runs the decision engine: ``MasterFlip`` is the master strategy on every pair
(incremental columns in the feed, regime routing, grading, fusion, position management; it never enters BTC) plus
one market order per candle on BTC (first in the whitelist, or last with ``--order-pair last``), so every candle has an order to time while the master's
per-candle work for all pairs is on the same threads. Its warm-up (~11,000 1m bars per pair) is preloaded from the
simulator, which replays ../shared/data: the six pairs with 1m candles there, and — for pairs 7 to 10 — the same
candles again under four more symbols (their prices do not matter here, their per-candle work does).
``--strategy flipflop --pairs 1`` is the earlier single-pair measurement.

``--sim-process`` runs the simulator in a child process (stepped over its admin API) so that its Python work does
not compete with the engine for this process's GIL; t2 is not measured then.

Measured here (December 2026, `--db`, master on 10 pairs, 2 cores shared with other sessions, load average
0.1–1.6, alternating runs of the trees). p50 / p99 from the first pair's kline, simulator on a thread |
in a child process:
- ccxt.pro's ``watch_ohlcv``, hand-overs at the GIL's pace: 6.2–6.9 / 11.6–16.5 ms | 4.0–6.1 / 6.6–14.3 ms;
- ``KlineStreams`` (one raw socket, closed klines by their ``x`` flag) and blocking thread hand-overs:
  4.2–5.6 / 7.8–12.6 ms | 3.2–4.6 / 5.4–9.5 ms;
- one thread (the strategy in a greenlet on the loop, no hand-overs; lean live feed; each pair's feed work on its
  kline's arrival): 3.7–3.9 / 6.6 ms (child process).
Then (child process, 200–300 candles, from the minute's first kline | from the order pair's own kline):
- the write-ahead rows on SQLite's DB-API connection and the order body built without ccxt's create_order, the
  whole minute still released at once: 3.5–3.6 / 5.3–5.9 ms, whitelist first or last alike;
- each pair's candle released once it and the pairs before it in the whitelist are in (the master decides in pair
  order), its pass and its order's first step done before the next candle is read: BTC first in the whitelist
  2.2–3.3 / 3.5–6.6 ms | 1.6–2.0 / 2.4–4.8 ms — the spread is where BTC's kline falls in the minute's burst (the
  simulator's order, fixed per run: from 3rd to 10th here; arriving last, it releases all ten pairs into one pass);
  BTC last in the whitelist (``--order-pair last``): 3.8–4.1 / 6.4–6.7 ms | 2.5–3.2 / 4.0–4.9 ms: it waits for the
  passes of the pairs before it. A pass per pair (tried, reverted) made the last pair 5.4 / 9.1 ms: Backtrader's
  fixed cost per pass (~0.3–0.4 ms) is too dear to pay ten times;
- and ``LiveCerebro`` (trader/live/cerebro.py: the feeds whose next bar is the earliest move, no per-feed waits,
  second asks and rewinds), with ``--hash-seed`` fixing the burst's order (BTC's rank in it 2nd | 6th | 8th):
  BTC first 1.9 / 3.0 | 2.5 / 3.6 | 3.0 / 4.3 ms from the minute's first kline, 1.6 / 2.5 | 1.6 / 2.3 |
  1.8 / 2.7 ms from its own; BTC last (8th in the burst) 3.6–3.8 / 5.3–6.7 ms | 1.8–2.1 / 2.9–4.5 ms. CPU per
  candle on the engine's thread 12–14 ms (was 15–17).
Then (December 2026, later): a candle the pairs before it hold back keeps its feed work until their pass is done
(trader/live/store.py; the minute's first kline → BTC's own: 0.49–0.62 / 1.28–1.52 ms without, 0.21–0.28 / 0.71–0.84
with, toggled in one tree), the kline
socket takes messages aiohttp already read without setting up a receive timeout, ``FuturesStrategy._clk_update``
reads the datas' line buffers directly (17.5 → 5.8 µs a pass), and the ledger checkpoints the WAL at the start of
every 20th flush so that no write-ahead commit restarts it (that commit's p99 0.29–0.35 → 0.08–0.10 ms: the first
write after a complete checkpoint syncs the WAL header). BTC first, seeds 1–5 (its kline 2nd to 8th): 1.2–1.7 /
2.0–2.9 ms from the minute's first kline, 1.0–1.5 / 1.4–2.4 ms from its own. Then the bench itself: its driver
thread read the step request's HTTP answer while the klines came in (urllib, ~0.3 ms on this process's GIL), which
held the engine back before it stamped the first kline; now the answer is read after the order. Measured that way
(load 0.1–0.9): BTC first 1.3–2.2 / 2.2–4.1 ms from the first kline, 1.0–1.5 / 1.6–2.3 ms from its own. Against
the last stop's tree (fe6a1aa), alternating runs, seed 1, 300 candles, load 0.6–0.9: 2.36–2.39 / 3.55–4.10 → 2.00–2.18
/ 3.05–3.81 ms from the first kline (reading the step answer at once, as before: 1.92–1.95 / 3.11–3.39 → 1.58–1.66 /
2.33–2.70), unchanged from its own kline (1.35–1.46 / 2.0–2.3). A baseline tree made with ``git archive`` needs
``PYTHONPATH=<tree>``: the venv's editable install otherwise imports this checkout's ``trader`` into both runs; the engine
busy 1.1–1.7 / 2.1–3.1 ms of it (``--stages``: the rest it sat waiting for the burst's next frame — the simulator
writes them one by one, 40–90 µs apart, each waking the loop: a read, aiohttp's parse, the handler); entries cost
0.3–0.5 ms more than exits (a trade row beside the order row, a Backtrader bracket). BTC last 2.7–3.0 / 4.5–5.5 ms
from the first kline, 1.7–1.9 / 3.2–4.0 ms from its own (an extra pass when its candle releases held ones: was 1.5 /
2.8 from its own). Tried and left out: uvloop for the engine loop, preparing held candles when aiohttp's queue is
empty (frames in flight are not in it: BTC first 1.75–2.0 / 3.0–3.4), JSON at push time in the simulator; no
measurable change from ``gc.disable()``.
Then (7 December 2026): the ledger's deferred flush runs on the write-ahead inserts' own SQLite connection. Another
connection's commit makes SQLite drop a connection's page cache (``PRAGMA data_version`` moves), and the next
order's insert re-read the tables' pages: its execute p50 98 → 60 µs in this bench (9 → 30 µs after such a commit in
a loop of its own), below the run-to-run noise of the end-to-end figures. The new "needed kline leaving the
simulator" figure, 300 candles, load 0.0–0.9: BTC first, seeds 1 | 2 | 3 (its kline 6th | 2nd | 8th): p50 1.62 |
1.46 | 1.58, p99 2.75 | 2.19 | 2.52 ms (from the first kline as the engine reads it 1.93 | 1.51 | 1.92 / 3.18 |
2.31 | 3.35; from its own as the engine reads it 1.28 | 1.20 | 1.27 / 1.98 | 1.57 | 1.95); BTC last, seed 1: 2.45 /
4.48 ms. Where an idle engine's first frame goes (``--stages``): the simulator writes it → the engine's selector
returns 0.05 ms p50 → ``data_received`` 0.013 ms → ``on_text`` 0.09–0.12 ms, with one frame in the read as with
ten: aiohttp's frame parser, its queue waking the receive task, a loop turn. The same path in a loop of its own
takes 10–12 µs with 2 ms between messages and 38–40 µs with 20 ms (the bench's pause between candles): cold caches
after the engine sat idle, which a real minute between candles makes no warmer. The order's own steps after the
write-ahead, in this bench: ccxt's ``sign`` 0.10 ms, the order body 0.04 ms, the two write-ahead rows' bind
processing 0.035 ms each.
Then (7 December 2026, later): three changes, measured one at a time against the tree before, alternating runs,
seed 2, 200 candles (p50 / p99 ms from BTC's own kline; this machine ran slower than for the figures above):
- ``MasterFlip`` places BTC's order at BTC's turn in the master's loop over the due pairs (``_candidate``), where
  the master decides a real entry or exit of that pair, instead of after the loop: the first pair's order no
  longer waits for the master's work on the nine after it (1.74 / 2.74 → 1.68 / 2.40, one run each);
- the garbage collector runs after each minute's work (trader/live/gc_pacer.py: young generations collected once the
  minute is done and the engine idle, start-up objects frozen, Python's own collection kept as a backstop past
  10,000 new objects; ``--gc python`` for Python's own timing). Printed per run: with Python's own, 24–36 young
  collections and 2–3 of the second generation (1.7–2.4 ms each) while the candles ran, none inside a candle's
  window in these runs, and four full collections at start-up of 130–220 ms each: one of those on a candle's path
  is the tail this removes by design (in a 300-candle run the allocations fall short of the next full one; a live
  process gets there). Paced: one young collection after each minute (p50 0.05–0.09, max 0.3–1.3 ms), none in a
  window, none by the backstop; a full one after the start-up freeze costs 1.6 ms (measured with a full collection
  every minute). In ``bsmart run`` (three pairs, bot on, speed 1): 3 paced collections (the longest, 40 ms, the
  take-over after the history), 12 by the backstop over the run (longest 5.1 ms). The end-to-end figures did not
  move beyond the noise (own kline 1.42–1.60 / 2.35–2.50 either way);
- the candle's order is signed by the client (``BinanceUSDM.sign_fapi_post``): write-ahead committed → on the wire
  0.22–0.26 → 0.15–0.17 ms p50, 0.32–0.36 → 0.26 ms p99.
All three, 300 candles, seeds 1 | 2 | 3 (BTC's kline 6th | 2nd | 8th in the burst), load 0.5–0.9, in the faster
hour: from the first kline 1.91 | 1.81 | 2.12 / 3.74 | 2.71 | 4.11 ms, from its own 1.26 | 1.40 | 1.35 / 1.94 |
2.09 | 2.00 ms, from the needed kline leaving the simulator 1.56 | 1.76 | 1.76 / 2.61 | 2.72 | 2.63 ms; BTC last
(seed 1) 3.09 / 5.49 from the first kline, 1.83 / 3.76 from its own. An hour later the same tree gave 1.45–1.76 /
2.06–3.69 ms from its own kline over the three seeds. Against the morning's tree (0921295, its own bench), seed 3,
alternating: from its own kline 1.67 / 2.32 and 1.32 / 2.17 (before), 1.34 / 2.08 and 1.50 / 2.18 (after); from
the needed kline leaving the simulator 2.13 / 3.17 and 1.72 / 2.92 (before), 1.67 / 3.19 and 1.97 / 3.56 (after):
end to end, the session's changes are inside the machine's noise; the steps they touch moved as said above. Every
300-candle run has a few candles at 6–13 ms (before and after, with ``--gc python`` too; they are not in the
stages' slowest candles: a stall of the machine or the simulator).
Then (7 December 2026, evening): the order journal (trader/persistence/order_journal.py). The engine's ledger no
longer commits an order's rows to SQLite before the send: it copies them as one line into a file mapped into
memory (trade ids reserved beforehand, migration 0005) and inserts them with the next flush; a start applies what a
crash left. ``write()`` was tried first: in situ it cost 0.06 ms p50 (0.005 ms in a loop of its own; beside SQLite
commits with 20 ms between calls 0.044–0.059 / 0.09–0.12 ms, also into a preallocated file), the copy into the
mapping 0.011 / 0.03 ms. Desk sends → write-ahead written (now the line in the journal) 0.35–0.37 / 0.59–0.65 →
0.14–0.15 / 0.26–0.35 ms. Against the tree before (d751aa0), one run each, 300 candles, load 0.5–1.1, seeds 1 | 2 |
3 (BTC's kline 6th | 2nd | 8th): from the first kline p50 2.14 → 1.92 | 1.90 → 1.65 | 2.26 → 1.87, p99 3.85 → 3.78
| 3.27 → 2.68 | 4.00 → 3.76 ms; from its own p50 1.54 → 1.31 | 1.58 → 1.32 | 1.51 → 1.16, p99 2.49 → 2.65 | 2.41
→ 1.94 | 2.39 → 2.26; from the needed kline leaving the simulator p50 2.01 → 1.71 | 1.98 → 1.73 | 1.95 → 1.53, p99
3.67 → 3.73 | 3.10 → 2.77 | 3.50 → 3.37; BTC last (seed 1) 3.81 / 9.43 → 3.73 / 8.02 from the first kline (this
hour's machine was slower than the afternoon's for both trees). The medians moved by 0.2–0.4 ms; the tails are the
machine's. Finer stages (seed 2, p50 / p99 ms, from a wrapper not kept): candle released → next() 0.29–0.33,
next() → the first Backtrader order 0.15–0.18 (the master's decision for the pair), → the transmitting order
submitted 0.07–0.09, → handed to the desk 0.12–0.14, → the desk's send 0.03, → journalled 0.15, → ``_post_order``
0.04, → body built 0.05, → signed 0.095, → on the wire 0.005. Every step costs 3–6× what it costs in a loop of
its own (``sign_fapi_post`` 14.5 µs there): the path touches more code than the CPU's caches keep between candles,
whether 2 ms or 200 ms pass between them (tried: the same figures both ways).
Tried and left out then (both taken up on 7 December 2026, when counting calls showed what they save): running the
strategy's turn inside the candle handler instead of after the loop's next ``select`` (no change measured); a
``BuyOrder`` built around Backtrader's metaclass (warm: 23 → 19 µs an order).
Then: the engine loop polls instead of sleeping around the predicted arrival of the next candles
(trader/live/close_spin.py). Polling all the time, as an upper bound (stepped by this process, 150 candles, two
runs each way): the first frame → the engine's selector p50 0.11–0.15 / p99 0.56–1.66 ms → 0.001 / 0.35 ms, from
the needed kline leaving the simulator p50 1.93–2.03 → 1.53–1.60, p99 2.77–4.12 → 2.52–2.53 ms. Polling in a
window predicted from the arrivals could not be shown while this process stepped the simulator: the polling
thread keeps the GIL from the stepping thread, which shifts the arrivals it predicts (57–100 of ~130 windows
caught their candle). ``--metronome-ms 60`` steps the simulator from a process of its own at fixed instants, as
the exchange's minutes close whatever the engine does; this process then only waits. So measured (seed 2, 200
candles, alternating, ``--spin on`` | ``off``): 161–166 of 177–187 windows caught their candle in three runs, 113
of 187 in one; 3–7 ms polled per 60 ms candle; the first frame → the engine's selector p50 0.08–0.11 | 0.54–0.59,
p99 0.83–1.01 | 0.98–1.11 ms; from the needed kline leaving the simulator p50 1.70–1.73 | 2.01–2.11, p99
2.63–2.85 | 3.06–3.25 ms; from the minute's first kline p50 1.44–1.45 | 1.50–1.53, p99 2.09–2.22 | 2.31–2.39 ms;
from its own kline p50 1.23 | 1.33–1.35, p99 1.82–1.85 | 1.89–2.00 ms.
Then (7 December 2026, night), two things. Fewer Python calls on the order pair's path: counted with a profiler
hook from its own kline to the wire over 100 candles (seed 2), 1,571 → 1,070 calls. Each costs about 1 µs there
(a bare call is 26 ns warm on this machine), so the count is the path's cost: Backtrader's marker round trip for
empty notification queues and ``queue.Empty`` raised for every empty feed on every pass, ``len(data)`` through
three classes per data, generators per data, ``copy.copy`` for each notification's order copy, ``quote`` for each
key and value of the signed query, the redactor once per string of the journal line. Then the stalls: every
300-candle run had a few candles at 6–13 ms; timing the ledger's flushes against the slowest candles showed a
flush (3–8 ms, now and then a checkpoint's sync) inside each. A candle waiting at the gate for an operation on its
pair went on only after the flush that operation's end had scheduled. The desk now holds its flush while candles
are on their way (trader/live/desk.py ``_flush_held``). Against the session's first tree (a943af9), 1,000 candles,
``--metronome-ms 60``, seeds 1 | 2 | 3 (BTC's kline 6th | 2nd | 8th), one run each, a slow hour (load 0.6–0.8):
from the first kline p50 1.89 → 1.80 | 1.85 → 1.77 | 2.06 → 1.71, p99 3.21 → 2.75 | 3.18 → 3.08 | 3.10 → 3.00,
max 12.7 → 6.1 | 9.5 → 5.6 | 10.4 → 5.8 ms; from its own p50 1.40 → 1.34 | 1.55 → 1.47 | 1.48 → 1.20, p99 2.02 →
1.87 | 2.61 → 2.12 | 2.14 → 1.78 ms; from the needed kline leaving the simulator p99 3.83 → 3.24 | 4.24 → 3.85 |
3.54 → 3.19 ms. Earlier the same evening, this tree and the one before the flush hold, 200–300 candles, seed 2:
from its own kline p50 1.06–1.32, p99 1.6–1.9 ms; from the first kline p50 1.26–1.57, p99 2.1–2.6 ms (in the
slower hour after it 1.4–1.5 / 2.0–2.2 and 1.7–1.8 / 2.75–3.4). Tried and left out: polling on after the minute's first
kline until the whole minute is in (the loop sleeps between the burst's frames): from the first kline p99 2.5–4.4
→ 4.9–5.3 ms in three alternating runs each, before and after the flush hold, with its own kline unchanged;
warming the order path's code (a dummy order body signed, a journal line encoded) when the polling window opens:
0.02–0.05 ms off three steps' p50, inside the noise.
Target p99 ≤ 2 ms: not met. ``--stages`` for BTC first (child process, 300 candles, p50 / p99 ms, its kline 10th
in the burst, before LiveCerebro): first kline → own kline 1.23 / 2.66 (the other pairs' messages and feed steps),
→ candle released 0.08 / 0.18, → strategy ``next()`` 0.66 / 1.04 (Backtrader's pass; ten feeds loaded here), →
order submitted 0.30 / 0.61 (the master's decisions, Backtrader order objects), → the desk's send starts
0.19 / 0.44, → write-ahead committed 0.41 / 0.90, → on the wire 0.30 / 0.42. Everything is CPU on one thread, in
series, and runs with cold CPU caches: the write-ahead insert and commit take 0.12 ms in a loop of their own,
0.41 ms after other Python work has run (measured both ways in one process). CPU per candle on the engine's thread
is mostly the ledger's bookkeeping after the order is out.
Then (7 December 2026, second evening): every step costs ~1 µs a Python call on cold caches (an append to a
feed's 17 line buffers: 2.4 µs warm in a loop, 37 µs in place), so calls were cut again, counted with a profiler
hook from the minute's first kline to the order pair's own (seed 1) and from its own kline to the wire (seed 2):
open-candle updates and final updates read off the socket's text instead of ``json.loads`` (anything but Binance's
compact shape still decoded in full); the close spinner's next window planned 5-20 ms after the arrival, not in the
minute's first kline (``spinner.arrived`` 55 → 19 µs); the candle gate's coroutines skipped when the desk has
nothing in flight, resting or refreshing for the pair (``OrderDesk.gate_open``); no clock read per message; the
strategy resumed by the candle that woke it (``StrategyRunner.settled``) instead of after the loop's next turn;
orders built by ``new_order`` (the metaclass's ~60 calls an order, and each parameter read without
``Order.__getattr__``); this bench's own probe reading its kline stamps off the text (its ``json.loads`` ran on the
engine's loop inside the window). Calls first kline → own 611 → 400, own kline → wire 1,070 → 907; the minute's
first kline's handling p50 173 → 96 µs. Where the rest of the tail is (per message, 300 candles, seed 1): in ~3 %
of candles the simulator's burst stops for ~1 ms between two frames (the engine waits, the "busy" figure leaves it
out), and in ~1 % the first kline waits at the gate for the last minute's balance refresh. Tried and left out: the
metronome reading the step's answer and resetting the weights a quarter period later instead of at once, to keep
it off the cores during the burst: worse, 10.7-21.3 % of candles over 2 ms against 5.3-5.7 % in alternating runs,
the simulator then writing the burst a frame every ~0.1 ms in one candle of ten (pinned, the engine to one core
and the simulator and metronome to the other, that delayed metronome gave 2.7-3.7 % against 14.0-14.7 % unpinned,
no better than this metronome unpinned; with this metronome pinning gave 7.0 % against 10.0 %, one run each).
Against the tree before (8fbbdc0), 300 candles, seeds 1 | 2 | 3, two runs each, alternating, a slow hour (16-22 ms CPU per candle): from the first
kline p50 1.78, 1.99 → 1.56, 1.66 | 1.54, 1.67 → 1.53, 1.49 | 1.87, 1.86 → 1.68, 1.59 ms; p99 3.00, 6.42 → 2.05,
2.27 | 2.38, 4.30 → 2.81, 2.21 | 3.13, 2.79 → 2.76, 2.20 ms; candles over 2 ms 19.3, 48.3 → 1.3, 4.7 | 3.7, 13.0 →
3.3, 2.0 | 30.7, 23.7 → 8.3, 6.7 %; from its own p99 1.76, 3.67 → 1.53, 1.74 | 1.73, 3.04 → 2.09, 1.77 | 1.69, 1.77
→ 1.76, 1.77 ms. Target p99 ≤ 2 ms from the first kline: still not met.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import gc
import http.client
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import backtrader as bt
import numpy as np

from trader.config.pairs import exchange_symbol
from trader.events import EventBus
from trader.exchange.backoff import BackoffPolicy
from trader.exchange.client import ClientOptions, ExchangeClient
from trader.exchange.klines import KlineStreams
from trader.exchange.streams import StreamOptions
from trader.live.engine import EngineConfig, LiveEngine
from trader.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from trader.sim.server import SimulatorThread
from trader.strategy.base import FuturesStrategy
from trader.strategy.master import MasterStrategy
from trader.strategy.preflight import live_requirements

BTC = "BTC/USDT:USDT"
MINUTE = 60_000


class FlipFlop(FuturesStrategy):
    """Flat: market entry with a close-position stop 2 % away. In a position: market close. One order per bar."""

    params = (("qty", 0.002),)
    indicator_lines: ClassVar[tuple[str, ...]] = ()

    def next(self) -> None:
        d = self.data
        if not d.bar_is_live:
            return
        size = self.getposition(d).size
        if size:
            self.close_position(d, tag="exit_signal")
            return
        entry = self.buy(data=d, size=self.p.qty, transmit=False, tag="entry")
        self.sell(data=d, size=self.p.qty, exectype=bt.Order.Stop, price=round(d.close[0] * 0.98, 1),
                  parent=entry, transmit=True, close_position=True, tag="stop")


class MasterFlip(MasterStrategy):
    """The master on every pair but BTC; on BTC, one market order per live candle (enter, then leave). BTC is the
    whitelist's first pair, or its last with ``--order-pair last`` (then its candle waits for every other pair's
    candle and pass, in pair order).

    BTC's order is placed where the master would decide on BTC: at BTC's turn in the pass's loop over the due pairs,
    in whitelist order (``ManagedStrategy.next`` asks ``_candidate`` of each pair without a position, after the risk
    rules have seen its bar). A real entry or exit of the first pair does not wait for the master's work on the pairs
    after it, and a last pair's waits for all of it; placing the order after the whole loop charged the first pair
    with the other nine's decisions."""

    params = (("flip_qty", 0.005),)
    stages: ClassVar[Any] = None  # bench ``--stages``
    _flip_len = 0

    def start(self) -> None:
        super().start()
        self._flip = next(d for d in self.datas if d._name == BTC)

    def next(self) -> None:
        d = self._flip
        if self.stages is not None and d.bar_is_live and len(d) != self._flip_len:
            self.stages.mark("strategy next()")  # the pass that moved BTC
        self._flip_len = len(d)
        super().next()

    def _candidate(self, d: bt.DataBase) -> Any:
        if d is not self._flip:
            return super()._candidate(d)
        if d.bar_is_live:  # BTC is due in this pass (``due_datas``) and never holds a master position
            self._flip_once(d)
        return None

    def _flip_once(self, d: bt.DataBase) -> None:
        if self.getposition(d).size:
            self.close_position(d, tag="exit_signal")
            return
        q = self.p.flip_qty
        entry = self.buy(data=d, size=q, transmit=False, tag="entry")
        self.sell(data=d, size=q, exectype=bt.Order.Stop, price=round(d.close[0] * 0.98, 1), parent=entry,
                  transmit=True, close_position=True, tag="stop")


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "futures"
REAL_1M = ["BTC", "ETH", "SOL", "BNB", "XRP", "DOGE"]
RELABELED = {"LTC": "BNB", "BCH": "ETH", "ADA": "XRP", "TRX": "DOGE"}  # symbol → the pair whose candles it replays


def bench_data(n_pairs: int, into: Path) -> tuple[list[str], int]:
    """A data directory of ``n_pairs`` 1m pairs (links into ../shared/data) and the first minute all of them have."""
    from trader.data.store import load_candles

    names = (REAL_1M + list(RELABELED))[:n_pairs]
    if len(names) < n_pairs:
        raise SystemExit(f"at most {len(REAL_1M) + len(RELABELED)} pairs")
    for name in names:
        src = RELABELED.get(name, name)
        for f in SHARED.glob(f"{src}_USDT_USDT-*"):
            (into / f.name.replace(f"{src}_USDT_USDT-", f"{name}_USDT_USDT-", 1)).symlink_to(f)
    pairs = [f"{n}/USDT:USDT" for n in names]
    start = max(int(load_candles(into, p, "1m")["timestamp"].iloc[0]) for p in pairs)
    return pairs, start


KLINE_MARKS = re.compile(r'"s":"([A-Z0-9]+)".*?"t":(\d+)[,}]')  # the symbol, then the candle's open time


class Probe:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol  # the exchange id of the pair the bench's order is for (the first pair)
        self.kline_at: dict[int, float] = {}  # first closed kline of the minute (any pair)
        self.kline_own: dict[int, float] = {}  # the order's pair's closed kline
        self.kline_last: dict[int, float] = {}  # last one: every pair's candle is in
        self.arrival: dict[int, int] = {}  # how many closed klines of the minute came before the order pair's
        self.sent_at: list[tuple[int, float]] = []
        self.last_kline: int | None = None
        self.sent = threading.Event()
        self.stages: Stages | None = None

    def on_text(self, text: str) -> None:
        """A raw message on the engine's kline socket (stamped before anything decodes it)."""
        now = time.perf_counter()
        if '"x":true' not in text:
            return
        # Read off the text, not decoded: this runs on the engine's loop, inside the window it measures, for every
        # pair's close before the order pair's (json.loads cost ~6-10 µs a message there).
        m = KLINE_MARKS.search(text)
        if m is None:
            raise RuntimeError(f"unexpected kline message: {text[:200]}")
        t, symbol = int(m.group(2)), m.group(1)
        if t not in self.kline_at:
            self.kline_at[t] = now
            self.arrival[t] = 0
        self.kline_last[t] = now
        if symbol == self.symbol:
            self.kline_own[t] = now
            self.last_kline = t
        elif t not in self.kline_own:
            self.arrival[t] += 1

    def on_fetch(self, url: str, method: str, body: Any) -> None:
        if (method == "POST" and url.split("?")[0].endswith("/fapi/v1/order") and self.last_kline is not None
                and f"symbol={self.symbol}&" in f"{url}&{body}&"):
            now = time.perf_counter()
            self.sent_at.append((self.last_kline, now))
            if self.stages is not None:
                self.stages.sent(self.last_kline, now)
            self.last_kline = None
            self.sent.set()


class RemoteSim:
    """A simulator in a child process, stepped over its admin API."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.rest_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"

    def _post(self, path: str, body: dict[str, Any]) -> None:
        req = urllib.request.Request(self.rest_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def step_begin(self, ms: int) -> http.client.HTTPConnection:
        """Send the step request and return without reading the answer: the answer comes back while the engine
        handles the minute's klines, and reading it then (urllib's parsing, on this process's GIL) would put the
        bench's own work on the path it measures. ``step_end`` reads it once the order is out."""
        host, port = self.rest_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/_sim/clock/step", body=json.dumps({"ms": ms}).encode(),
                     headers={"Content-Type": "application/json"})
        return conn

    @staticmethod
    def step_end(conn: http.client.HTTPConnection) -> None:
        with contextlib.closing(conn):
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"simulator step: HTTP {r.status}")

    def reset_weights(self) -> None:
        self._post("/_sim/weights/reset", {})

    def metronome(self, pace_s: float, steps: int) -> subprocess.Popen[str]:
        """A process that steps this simulator a minute every ``pace_s`` at fixed instants, as the exchange's
        minutes close whatever the engine does, and forgets the minute's request weight after each step."""
        host, port = self.rest_url.removeprefix("http://").split(":")
        return subprocess.Popen([sys.executable, "-c", METRONOME.format(host=host, port=port, pace=pace_s,
                                                                        steps=steps, minute=MINUTE)], text=True)


METRONOME = """
import http.client, time
conn = http.client.HTTPConnection({host!r}, {port}, timeout=30)
headers = {{"Content-Type": "application/json"}}
t0 = time.perf_counter() + 0.1
for i in range({steps}):
    wait = t0 + i * {pace} - time.perf_counter()
    if wait > 0:
        time.sleep(wait)
    for path, body in (("/_sim/clock/step", '{{"ms": {minute}}}'), ("/_sim/weights/reset", "{{}}")):
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, (path, r.status)
"""


# Run in the simulator's process: every closed kline is stamped (``time.perf_counter``: CLOCK_MONOTONIC, one clock
# for all processes of the machine) just before aiohttp frames it and writes it to the socket, and the stamps are
# written out when the simulator stops. Stamping before the framing counts aiohttp's frame work against the engine.
SEND_STAMPS = """
import atexit, json, time
from aiohttp import web
_stamps = []
_send_str = web.WebSocketResponse.send_str
async def _stamped(self, data, compress=None):
    if '"x":true' in data:
        _stamps.append((time.perf_counter(), data))
    return await _send_str(self, data, compress)
web.WebSocketResponse.send_str = _stamped
def _dump():
    with open({path!r}, "w") as f:
        for at, data in _stamps:
            k = json.loads(data).get("data", {{}}).get("k", {{}})
            f.write(json.dumps([k.get("s"), k.get("t"), at]) + "\\n")
atexit.register(_dump)
"""


def read_send_stamps(path: Path) -> dict[tuple[str, int], float]:
    """(symbol, candle open ms) → when the simulator put that closed kline on the socket."""
    out: dict[tuple[str, int], float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            symbol, t, at = json.loads(line)
            out.setdefault((symbol, int(t)), at)  # the first send (one engine socket: there is one)
    return out


@contextlib.contextmanager
def remote_sim(pairs: list[str], data_dir: Path | None, start_ms: int | None,
               hash_seed: int | None = None, stamps: Path | None = None) -> Iterator[RemoteSim]:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    code = ((SEND_STAMPS.format(path=str(stamps)) if stamps is not None else "")
            + "from pathlib import Path; from trader.sim.config import SimConfig; from trader.sim.server import run; "
            f"run(SimConfig(port={port}, clock_mode='stepped', pairs={pairs!r}, tick_interval_s=1.0, "
            f"data_dir={'None' if data_dir is None else f'Path({str(data_dir)!r})'}, "
            f"start_ms={start_ms!r}))")
    # The simulator sends a minute's klines in its subscription set's order, which the hash seed fixes: a seed
    # makes runs comparable (the order pair's rank in the burst is printed either way).
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed)) if hash_seed is not None else None
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "binance simulator on" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield RemoteSim(proc, port)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)


def instrumented_client(sim: Any, probe: Probe) -> ExchangeClient:
    client = ExchangeClient(ClientOptions(api_url=sim.rest_url, ws_url=sim.ws_url.removesuffix("/ws"),
                                          api_key=DEFAULT_API_KEY, secret=DEFAULT_API_SECRET,
                                          backoff=BackoffPolicy(attempts=4, base_s=0.01, cap_s=0.05)))
    ex = client.ccxt
    fetch = ex.fetch

    async def traced_fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        probe.on_fetch(url, method, body)
        return await fetch(url, method, headers, body)

    ex.fetch = traced_fetch
    return client


class GcWatch:
    """Every garbage collection of the process: its generation and span on the bench's clock. Those while
    the candles ran are counted, and those inside a candle's window (its first kline → its order on the wire);
    the full ones of the start-up show what one costs on this heap."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, float, float]] = []
        self.candles = (math.inf, math.inf)  # when the measured candles started and ended
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._start = now
        else:
            self.spans.append((info["generation"], self._start, now))

    def report(self, windows: list[tuple[float, float]]) -> None:
        c0, c1 = self.candles
        by_gen: dict[int, list[float]] = {}
        for gen, a, b in self.spans:
            if c0 <= a <= c1:
                by_gen.setdefault(min(gen, 2), []).append((b - a) * 1000)
        inside = [(gen, (b - a) * 1000) for gen, a, b in self.spans
                  if any(a < w1 and b > w0 for w0, w1 in windows)]
        full_start = [(b - a) * 1000 for gen, a, b in self.spans if gen == 2 and a < c0]
        parts = [f"generation {'0' if g == 0 else '1' if g == 1 else '2 (full)'}: {len(v)} (p50 {pct(v, 50):.3f} / "
                 f"max {max(v):.3f} ms)" for g, v in sorted(by_gen.items())]
        print(f"  garbage collections while the candles ran: {'; '.join(parts) or 'none'}; inside a candle's window "
              f"(first kline → on the wire): {len(inside)}"
              + (f" (generations {sorted({g for g, _ in inside})}, {sum(d for _, d in inside):.2f} ms in all)"
                 if inside else ""))
        if full_start:
            print(f"  full collections before the candles (start-up, automatic): {len(full_start)}, "
                  f"{min(full_start):.0f}–{max(full_start):.0f} ms each: what one costs this heap when Python runs it")


class LoopWaits:
    """When the engine's event loop sat in its selector with nothing to do (``--sim-process``: it is the only loop
    in this process). Between the minute's first kline and the order, such a wait is the engine waiting for the
    next frame of the burst, which the simulator writes one by one: time the engine did not spend."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def install(self) -> None:
        import selectors

        spans = self.spans
        select = selectors.EpollSelector.select

        def timed(sel: selectors.EpollSelector, timeout: float | None = None) -> Any:
            t = time.perf_counter()
            out = select(sel, timeout)
            spans.append((t, time.perf_counter()))
            return out

        selectors.EpollSelector.select = timed  # type: ignore[method-assign]

    def idle(self, a: float, b: float) -> float:
        """Seconds of waiting inside [a, b]."""
        i = bisect.bisect_left(self.spans, (a - 1.0,))
        total = 0.0
        for s, e in self.spans[i:]:
            if s >= b:
                break
            total += max(0.0, min(e, b) - max(s, a))
        return total


def stamp_klines(probe: Probe) -> None:
    """t0: the engine's kline socket hands a message to ``KlineStreams.on_text``."""
    on_text = KlineStreams.on_text

    async def stamped(self: KlineStreams, text: str) -> None:
        probe.on_text(text)
        await on_text(self, text)

    KlineStreams.on_text = stamped  # type: ignore[method-assign]


STAGES = ("first kline", "own kline", "candle released", "strategy next()", "order submitted", "desk sends",
          "write-ahead written", "on the wire")


class Stages:
    """``--stages``: instants of the order pair's path on the same clock, from timing wrappers around the engine's
    own methods (the figures in the docstring's table come from here). The wrappers cost a few µs each."""

    def __init__(self, probe: Probe, pair: str) -> None:
        self.probe = probe
        self.pair = pair
        self.current: dict[str, float] = {}
        self.done: list[dict[str, float]] = []

    def mark(self, name: str) -> None:
        self.current.setdefault(name, time.perf_counter())

    def install(self) -> None:
        from trader.live.broker import LiveBroker
        from trader.live.desk import OrderDesk
        from trader.live.feed import LiveFeed

        stages, pair = self, self.pair
        deliver = LiveFeed.deliver

        def timed_deliver(feed: LiveFeed, prepared: Any, *, wake: bool = True) -> Any:
            bar = deliver(feed, prepared, wake=wake)
            if bar is not None and feed.p.pair == pair:
                stages.mark("candle released")
            return bar

        submit = LiveBroker.submit

        def timed_submit(broker: LiveBroker, order: Any, oco: Any = None) -> Any:
            if order.transmit and order.data._name == pair and "strategy next()" in stages.current:
                stages.mark("order submitted")
            return submit(broker, order, oco)

        send = OrderDesk._send

        async def timed_send(desk: OrderDesk, t: Any) -> None:
            if t.pair == pair and "order submitted" in stages.current:
                stages.mark("desk sends")
            await send(desk, t)

        build = OrderDesk._build_for_trade

        def timed_build(desk: OrderDesk, t: Any) -> Any:
            out = build(desk, t)
            if t.pair == pair and "desk sends" in stages.current:
                stages.mark("write-ahead written")
            return out

        LiveFeed.deliver = timed_deliver  # type: ignore[method-assign]
        LiveBroker.submit = timed_submit  # type: ignore[method-assign]
        OrderDesk._send = timed_send  # type: ignore[method-assign]
        OrderDesk._build_for_trade = timed_build  # type: ignore[method-assign]

    def sent(self, minute: int, at: float) -> None:
        """The order of ``minute`` is on the wire: close this candle's record."""
        row = dict(self.current)
        row["first kline"] = self.probe.kline_at.get(minute, math.nan)
        row["own kline"] = self.probe.kline_own.get(minute, math.nan)
        row["on the wire"] = at
        self.done.append(row)
        self.current = {}

    def report(self) -> None:
        rows = [r for r in self.done if all(k in r and math.isfinite(r[k]) for k in STAGES)]
        print(f"  stages ({len(rows)} of {len(self.done)} candles with every mark), p50 / p99 ms:")
        for a, b in zip(STAGES, STAGES[1:], strict=False):
            d = [(r[b] - r[a]) * 1000 for r in rows]
            print(f"    {a:>22} → {b:<22} {pct(d, 50):7.3f} / {pct(d, 99):7.3f}")
        # Where the slowest candles lose their time: each step's mean over the slowest 5 %, beside its median.
        total = sorted(rows, key=lambda r: r[STAGES[-1]] - r[STAGES[0]])
        slow = total[-max(1, len(total) // 20):]
        print(f"  the slowest {len(slow)} candles, mean ms per step (median candle beside it):")
        for a, b in zip(STAGES, STAGES[1:], strict=False):
            print(f"    {a:>22} → {b:<22} {statistics.fmean((r[b] - r[a]) * 1000 for r in slow):7.3f}  "
                  f"({pct([(r[b] - r[a]) * 1000 for r in rows], 50):.3f})")


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of each named thread of this process, from /proc (Linux; {} elsewhere)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for t in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[t.name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def entries_and_exits(label: str, values: list[float]) -> None:
    """The master bench's orders alternate: an entry (trade and order rows, a Backtrader bracket), then an exit (an
    order row). Their figures apart."""
    if len(values) > 20:
        entries, exits = values[0::2], values[1::2]
        print(f"  {label}: p50 {pct(entries, 50):.3f} | {pct(exits, 50):.3f} ms  "
              f"p99 {pct(entries, 99):.3f} | {pct(exits, 99):.3f} ms")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_stepped(sim: Any, engine: LiveEngine, probe: Probe, bars: int, remote: bool) -> None:
    """This process steps the simulator: a minute, the order, the engine idle again, a pause, the next minute."""
    for _ in range(bars):
        probe.sent.clear()
        pending = sim.step_begin(MINUTE) if remote else None
        if pending is None:
            sim.step(MINUTE)
        # Block (no polling: a spinning bench thread would take the GIL from the engine it measures).
        if not probe.sent.wait(10):
            raise RuntimeError("no order after a candle")
        if pending is not None:
            sim.step_end(pending)
        engine.wait_idle(10)
        # Bars run ~1000x faster than real time: forget the request weight and order counts the simulator
        # (like Binance) limits per minute, and leave the engine idle a moment as between real candles.
        if remote:
            sim.reset_weights()
        else:
            sim.call(lambda server: server.weights.reset())
        time.sleep(0.02)


def run_metronome(sim: RemoteSim, engine: LiveEngine, probe: Probe, bars: int, pace_s: float) -> None:
    """A process of its own steps the simulator at fixed instants; this one waits for the orders."""
    metronome = sim.metronome(pace_s, bars)
    # A blocking wait: no second thread of this process wakes while the candles run (a thread that wakes takes the
    # GIL from the engine's for a moment). A 50 ms sleep loop here measured the same, but the bench should not add
    # the wake-ups it measures. The metronome's requests time out, so the wait ends.
    if metronome.wait() != 0:
        raise RuntimeError(f"the metronome failed (exit {metronome.returncode})")
    deadline = time.monotonic() + 30
    while len(probe.sent_at) < bars and time.monotonic() < deadline:
        probe.sent.wait(0.05)  # the last minute's order may come after the metronome has exited
        probe.sent.clear()
    if len(probe.sent_at) < bars:
        raise RuntimeError(f"{len(probe.sent_at)} orders for {bars} candles")
    engine.wait_idle(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=400)
    ap.add_argument("--db", action="store_true", help="write Trade/Order/Fill rows to a SQLite file, as live does")
    ap.add_argument("--sim-process", action="store_true", help="run the simulator in a child process")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--strategy", choices=("master", "flipflop"), default="master")
    ap.add_argument("--stages", action="store_true", help="also time each step of the path (master only)")
    ap.add_argument("--hash-seed", type=int, default=None,
                    help="PYTHONHASHSEED of the simulator process (--sim-process): fixes the klines' order in a burst")
    ap.add_argument("--order-pair", choices=("first", "last"), default="first",
                    help="BTC (the pair the bench orders on) first or last in the whitelist (master only)")
    ap.add_argument("--gc", choices=("paced", "python"), default="paced",
                    help="garbage collection after each minute's work (the engine's default) or left to Python")
    ap.add_argument("--metronome-ms", type=float, default=None,
                    help="with --sim-process: a process of its own steps the simulator a minute every this many ms, "
                         "at fixed instants (the exchange's clock), instead of this process stepping it after each "
                         "order")
    ap.add_argument("--spin", choices=("on", "off"), default="on",
                    help="the engine loop polls around the predicted arrival of the next candles (the default) or "
                         "sleeps between them")
    args = ap.parse_args()
    if args.metronome_ms is not None and not args.sim_process:
        ap.error("--metronome-ms needs --sim-process (the simulator in a process the metronome can step)")

    probe = Probe("BTCUSDT")  # the first pair, in both strategies
    gc_watch = GcWatch()
    gc.callbacks.append(gc_watch)
    stamp_klines(probe)
    waits = LoopWaits()
    if args.sim_process and args.stages:
        waits.install()  # a few µs per loop turn: only with --stages
    if args.stages and args.strategy == "master":
        probe.stages = MasterFlip.stages = Stages(probe, BTC)
        probe.stages.install()
    received: list[tuple[float, str]] = []
    sessions = None
    tmp = tempfile.TemporaryDirectory()
    if args.db:
        from trader.persistence.database import make_engine, make_session_factory
        from trader.persistence.migrate import upgrade
        db = make_engine(f"sqlite:///{Path(tmp.name) / 'bench.db'}")
        upgrade(db)
        sessions = make_session_factory(db)

    if args.strategy == "master":
        data_dir: Path | None = Path(tmp.name) / "data"
        data_dir.mkdir()
        pairs, first = bench_data(args.pairs, data_dir)
        if args.order_pair == "last":
            pairs = pairs[1:] + pairs[:1]
        need = live_requirements(MasterStrategy, {}, "1m")
        start_ms: int | None = first + (need["history_bars"] + 60) * MINUTE
        start_ms -= start_ms % (60 * MINUTE)
        strategy: Any = MasterFlip
        history, window = need["history_bars"], need["window"]
    else:
        data_dir, start_ms, strategy, history, window = None, None, FlipFlop, 30, 1500
        pairs = [BTC] if args.pairs == 1 else [BTC, "ETH/USDT:USDT", "SOL/USDT:USDT"][: args.pairs]
    if args.sim_process:
        stamps_path: Path | None = Path(tmp.name) / "sent.jsonl"
        sim_cm: Any = remote_sim(pairs, data_dir, start_ms, args.hash_seed, stamps_path)
    else:
        stamps_path = None
        # Stepped clock: the periodic ticker only announces the open candle; slowed so it rarely competes.
        sim_cm = SimulatorThread(SimConfig(port=0, clock_mode="stepped", pairs=pairs, tick_interval_s=1.0,
                                           data_dir=data_dir, start_ms=start_ms))
    with sim_cm as sim:
        if not args.sim_process:
            def install(server: Any) -> None:
                place = server.exchange.place_order

                def stamped(params: dict[str, str], now: int) -> Any:
                    received.append((time.perf_counter(), str(params.get("type"))))
                    return place(params, now)
                server.exchange.place_order = stamped
            sim.call(install)
        engine = LiveEngine(EngineConfig(pairs=pairs, strategy=strategy, history_bars=history, window=window,
                                         stream=StreamOptions(heartbeat_s=30.0), gc_pacing=args.gc == "paced",
                                         spin_before_close=args.spin == "on"),
                            lambda: instrumented_client(sim, probe), bus=EventBus(), sessions=sessions)
        t_start = time.perf_counter()
        engine.start()
        engine.wait_idle(300)  # Backtrader has consumed the preloaded history (the master's: ~11,000 bars a pair)
        deadline = time.monotonic() + 5
        while args.gc == "paced" and not gc.get_freeze_count() and time.monotonic() < deadline:
            time.sleep(0.01)  # the pacer takes collection over once the engine is idle (trader/live/gc_pacer.py)
        t_started = time.perf_counter() - t_start
        cpu0 = thread_cpu_s()
        gc_watch.candles = (time.perf_counter(), math.inf)
        try:
            if args.metronome_ms is not None:
                run_metronome(sim, engine, probe, args.bars, args.metronome_ms / 1000)
            else:
                run_stepped(sim, engine, probe, args.bars, args.sim_process)
            cpu1 = thread_cpu_s()
            gc_watch.candles = (gc_watch.candles[0], time.perf_counter())
            spinner = engine.store.spinner if engine.store is not None else None
            spin = spinner.stats if spinner is not None else None
        finally:
            engine.stop()
    sent_by_sim = read_send_stamps(stamps_path) if stamps_path is not None else {}
    tmp.cleanup()

    wire = [(sent - probe.kline_at[k]) * 1000 for k, sent in probe.sent_at if k in probe.kline_at]
    wire_own = [(sent - probe.kline_own[k]) * 1000 for k, sent in probe.sent_at if k in probe.kline_own]
    before = [probe.arrival.get(k, 0) for k, _sent in probe.sent_at]
    # Pair each order with the server's receipt of it: one POST /fapi/v1/order per candle, in order.
    server = [(r - probe.kline_at[k]) * 1000 for (k, _), (r, _) in zip(probe.sent_at, received, strict=False)
              if k in probe.kline_at]
    where = "simulator in a child process" if args.sim_process else "simulator on a thread of this process"
    ledger = "SQLite ledger" if args.db else "in-memory ledger"
    what = (f"master strategy on {len(pairs)} pairs + one order per candle on {BTC}, "
            f"{'first' if pairs[0] == BTC else 'last'} in the whitelist" if args.strategy == "master"
            else f"flip-flop on {len(pairs)} pair(s)")
    print(f"live latency, {len(wire)} candles → orders ({what}; {where}, {ledger}; engine start with history "
          f"{t_started:.1f} s; load average {os.getloadavg()[0]:.2f})")
    print(f"  candle close → request on the wire : p50 {pct(wire, 50):.3f} ms  p99 {pct(wire, 99):.3f} ms  "
          f"max {max(wire):.3f} ms  mean {statistics.fmean(wire):.3f} ms  (from the first pair's kline)")
    if len(pairs) > 1:
        print(f"  from its own pair's kline          : p50 {pct(wire_own, 50):.3f} ms  "
              f"p99 {pct(wire_own, 99):.3f} ms  (the order pair's kline came after {statistics.fmean(before):.1f} "
              f"others of the minute on average, {max(before)} at most)")
    first_sent: dict[int, float] = {}  # minute → when the simulator framed its first closed kline
    for (_sym, t), at in sent_by_sim.items():
        first_sent[t] = min(at, first_sent.get(t, at))
    if sent_by_sim:
        # What the decision needs: in pair order, the candles of BTC and of every pair before it in the whitelist.
        symbols = [exchange_symbol(p) for p in pairs]
        needed_syms = symbols[: symbols.index(probe.symbol) + 1]
        first_out = [(sent - first_sent[k]) * 1000 for k, sent in probe.sent_at if k in first_sent]
        needed = [(sent - max(sent_by_sim[(sym, k)] for sym in needed_syms)) * 1000
                  for k, sent in probe.sent_at if all((sym, k) in sent_by_sim for sym in needed_syms)]
        print(f"  from the needed kline leaving the simulator: p50 {pct(needed, 50):.3f} ms  p99 "
              f"{pct(needed, 99):.3f} ms  max {max(needed):.3f} ms  ({len(needed_syms)} candle(s): "
              f"{'its own' if len(needed_syms) == 1 else 'the last of it and the pairs before it'}, stamped as "
              f"the simulator frames it)")
        print(f"  from the minute's first kline leaving the simulator: p50 {pct(first_out, 50):.3f} ms  p99 "
              f"{pct(first_out, 99):.3f} ms")
    if sent_by_sim and waits.spans:
        # The first frame's delivery to an idle engine: the simulator frames and writes it → the engine's selector
        # returns (loopback and the thread's wake-up) → the message reaches KlineStreams.on_text (aiohttp's read,
        # its frame parser, the receive loop's turn).
        woke, read = [], []
        ends = sorted(e for _s, e in waits.spans)
        for k, out in first_sent.items():
            if k not in probe.kline_at:
                continue
            i = bisect.bisect_left(ends, out)
            if i < len(ends) and ends[i] <= probe.kline_at[k]:
                woke.append((ends[i] - out) * 1000)
                read.append((probe.kline_at[k] - ends[i]) * 1000)
        print(f"  first frame: leaves the simulator → engine's selector returns p50 {pct(woke, 50):.3f} / p99 "
              f"{pct(woke, 99):.3f} ms → on_text p50 {pct(read, 50):.3f} / p99 {pct(read, 99):.3f} ms")
    if waits.spans:
        busy = [(sent - probe.kline_at[k] - waits.idle(probe.kline_at[k], sent)) * 1000
                for k, sent in probe.sent_at if k in probe.kline_at]
        print(f"  the engine busy in that time       : p50 {pct(busy, 50):.3f} ms  p99 {pct(busy, 99):.3f} ms  (the "
              f"rest it waited for the burst's next frames, which the simulator writes one by one)")
        if args.strategy == "master":
            entries_and_exits("busy, entries | exits              ", busy)
    if args.strategy == "master":
        entries_and_exits("entries | exits (from the first kline)", wire)
    if server:
        print(f"  candle close → simulator matches it: p50 {pct(server, 50):.3f} ms  p99 {pct(server, 99):.3f} ms")
    # What the engine's thread costs per candle, whatever the machine's load (clock ticks: ±1 tick in total).
    cpu = {n: (cpu1[n] - cpu0.get(n, 0.0)) * 1000 / args.bars for n in cpu1}
    if cpu:
        print("  CPU per candle (whole candle, not only the critical path): "
              + ", ".join(f"{n} thread {v:.3f} ms" for n, v in sorted(cpu.items())))
    gc_watch.report([(probe.kline_at[k], sent) for k, sent in probe.sent_at if k in probe.kline_at])
    if spin is not None:
        print(f"  polling before candles (trader/live/close_spin.py): {spin.windows} windows, {spin.hits} with the "
              f"minute's first kline inside, {spin.misses} ended first, {spin.early} klines before the window; "
              f"{spin.polled_s * 1000 / args.bars:.2f} ms polled per candle")
    else:
        print("  polling before candles: off")
    if probe.stages is not None:
        probe.stages.report()
    over = sum(w > 2.0 for w in wire) / len(wire) * 100  # p99 ≤ 2 ms: at most 1 % of the candles over 2 ms
    over_own = sum(w > 2.0 for w in wire_own) / len(wire_own) * 100 if wire_own else math.nan
    print(f"  target p99 ≤ 2 ms: {'met' if pct(wire, 99) <= 2.0 else 'NOT met'} ({over:.1f} % of the candles over "
          f"2 ms from the first kline, {over_own:.1f} % from the pair's own; the target allows 1 %)")


if __name__ == "__main__":
    main()
