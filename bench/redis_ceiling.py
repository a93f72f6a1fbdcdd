"""Redis ceiling: redis-benchmark pipelining XADD MAXLEN ~ 10000 of the flood's ~200-byte aggTrade payload.

    python bench/redis_ceiling.py [--n 500000]

The upper bound for any writer on this machine; compare with bench/ingest.py's sustained msgs/s.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.redis_server import RedisServer

PAYLOAD = ('{"e":"aggTrade","E":1700000000000,"s":"S0001USDT","a":1000001,"p":"0.00100000","q":"100.00000000",'
           '"f":1000001,"l":1000001,"T":1700000000000123,"m":true,"M":true}')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=500_000)
    ap.add_argument("--pipeline", type=int, default=64)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()
    exe = shutil.which("redis-benchmark")
    if not exe:
        raise SystemExit("redis-benchmark not found (apt-get install redis-tools)")
    with RedisServer() as rs:
        for label, cmd in (
            ("XADD MAXLEN ~ 10000 (d, r fields)", ["XADD", "bench:hist", "MAXLEN", "~", "10000", "*", "d", PAYLOAD,
                                                    "r", "1700000000000"]),
            ("SET latest", ["SET", "bench:latest", PAYLOAD]),
        ):
            out = subprocess.run([exe, "-p", str(rs.port), "-P", str(a.pipeline), "-c", str(a.clients), "-n",
                                  str(a.n), "-q", *cmd], capture_output=True, text=True, timeout=300).stdout
            m = re.findall(r"([\d.]+) requests per second", out)
            print(f"{label}: {float(m[-1]):,.0f} ops/s  (payload {len(PAYLOAD)} bytes, -P {a.pipeline} -c {a.clients})"
                  if m else out)


if __name__ == "__main__":
    main()
