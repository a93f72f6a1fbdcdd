"""Plot bench/results/vs_cryptofeed.json: throughput into Redis and p99 latency vs offered rate (PNG).

    pip install matplotlib && python bench/plot.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    rows = json.loads((RESULTS / "vs_cryptofeed.json").read_text())
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for who, style in (("binance-streamd", "o-"), ("cryptofeed", "s--")):
        pts = [r for r in rows if r["who"] == who]
        # offered 0 means "as fast as the senders go": plot it at the right edge
        edge = max(r["offered"] for r in rows) * 1.35
        xs = [r["offered"] or edge for r in pts]
        a.plot(xs, [r["rate"] / 1000 for r in pts], style, label=who)
        b.plot(xs, [r["p99_ms"] for r in pts], style, label=f"{who} p99")
        b.plot(xs, [r["p50_ms"] for r in pts], style, alpha=0.4, label=f"{who} p50")
    a.plot([0, edge], [0, edge / 1000], ":", color="grey", label="offered")
    a.set(xlabel="offered msg/s (rightmost: max flood)", ylabel="into Redis, k msg/s", title="Sustained ingest")
    b.set(xlabel="offered msg/s (rightmost: max flood)", ylabel="send -> Redis latency, ms", yscale="log",
          title="Latency")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = RESULTS / "vs_cryptofeed.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
