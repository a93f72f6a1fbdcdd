#!/usr/bin/env bash
# Mutation testing of the feed's correctness core with mutmut, on the fast unit tests only (tests/unit).
#
#   scripts/mutation.sh [module ...]      e.g. scripts/mutation.sh sequence orderbook
#
# mutmut mutates packages found under ./ or ./src, while this repository lays packages out by process
# (daemon/, shared/, mcp_server/). The script copies the three packages into a src/ layout in a scratch folder
# (the repository is never touched), writes the mutmut section there, runs it and prints the survivors.
# A tool for developers, not a CI gate. Results: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
declare -A MODULES=(
  [sequence]=binance_streamd/sequence.py
  [orderbook]=binance_streamd/orderbook.py
  [frames]=binance_streamd/frames.py
  [catchup]=binance_streamd/catchup.py
  [restqueue]=binance_streamd/restqueue.py
  [limits]=binance_streamd/limits.py
  [streams]=binance_common/streams.py
  [ratelimit]=binance_common/ratelimit.py
  [feedstore]=binance_common/feedstore.py
  [datapath]=binance_streamd/datapath.py
  [futures_book]=binance_streamd/futures_book.py
  [account_state]=binance_streamd/account_state.py
  [routes]=binance_streamd/routes.py
  [signing]=binance_common/signing.py
  [recovery]=binance_streamd/recovery.py
  [localbook]=binance_streamd/localbook.py
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(sequence orderbook frames streams ratelimit catchup feedstore datapath restqueue)
work=${MUTATION_WORKDIR:-$(mktemp -d /tmp/binance-mutation.XXXXXX)}
mkdir -p "$work/src"
rm -rf "$work/src"/* "$work/tests" "$work/mutants"
cp -r daemon/binance_streamd shared/binance_common mcp_server/binance_mcp "$work/src/"
cp -r tests "$work/tests"
cp pyproject.toml "$work/"
{
  echo
  echo "[tool.mutmut]"
  printf 'source_paths = ["src/"]\nonly_mutate = ['
  for n in "${names[@]}"; do printf '"src/%s", ' "${MODULES[$n]}"; done
  printf ']\npytest_add_cli_args_test_selection = ["tests/unit"]\n'
  # the layout test reads the repository's folders, which the src/ copy does not have
  printf 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-o", "timeout=20", "--ignore=tests/unit/test_layout.py"]\n'
} >> "$work/pyproject.toml"
cd "$work"
echo "== mutmut in $work on: ${names[*]}"
python3 -m mutmut run --max-children "${MUTATION_JOBS:-2}" > run.log 2>&1 || true
tail -c 400 run.log | tr '\r' '\n' | grep -E "[0-9]+/[0-9]+" | tail -1
python3 -m mutmut results --all true > results.txt 2>&1 || true
echo "== per module: mutants, killed, survived (results in $work/results.txt; mutmut show <name> for a diff)"
python3 - <<'PY'
import collections, re
rows = collections.defaultdict(collections.Counter)
for line in open("results.txt"):
    m = re.match(r"\s*(\S+?)\.(?:x_|xǁ)\S*: (\S.*)$", line)
    if m:
        rows[m.group(1)][m.group(2)] += 1
for mod, c in sorted(rows.items()):
    total = sum(c.values())
    killed = c["killed"] + c.get("timeout", 0)
    print(f"{mod:40s} {total:5d} mutants  {killed:5d} killed  {c['survived']:4d} survived  "
          f"{c['no tests']:4d} no tests  score {100 * killed / total:.0f}%")
PY
echo "== survivors"
grep -E "survived|no tests" results.txt || echo "none"
