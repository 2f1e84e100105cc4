"""Cut the dataset the project ships from the shared Binance data (run from the repository root).

The slice is 2025-05-04 → 2025-06-03 for BTC, ETH and SOL USDT-M perpetuals: 1m candles, 1h mark price and
funding rates. It is what the offline demo, the simulator's default market and the test suite replay.
Usage: python scripts/make_sample_data.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

START = int(pd.Timestamp("2025-05-04", tz="UTC").timestamp() * 1000)
END = int(pd.Timestamp("2025-06-04", tz="UTC").timestamp() * 1000)
PAIRS = ["BTC_USDT_USDT", "ETH_USDT_USDT", "SOL_USDT_USDT"]
KINDS = ["1m-futures", "1h-mark", "8h-funding_rate"]


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data") / "futures"
    dst = Path("trader/resources/data/binance/futures")
    dst.mkdir(parents=True, exist_ok=True)
    for pair in PAIRS:
        for kind in KINDS:
            df = pd.read_parquet(src / f"{pair}-{kind}.parquet")
            df = df[(df.timestamp >= START) & (df.timestamp < END)].reset_index(drop=True)
            df.to_parquet(dst / f"{pair}-{kind}.parquet", index=False, compression="zstd")
            print(f"{pair}-{kind}: {len(df)} rows")


if __name__ == "__main__":
    main()
