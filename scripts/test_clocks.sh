#!/usr/bin/env bash
# Run tests with the system clock moved to other dates (libfaketime), each date on a FRESH embedded warehouse
# started under that clock (a warehouse already running keeps the real clock; PostgreSQL's now() must move too).
#
#   scripts/test_clocks.sh                           the date-touching tests (-m dates) at the three dates
#   CLOCK_DATES="2030-01-01" scripts/test_clocks.sh  one date
#   scripts/test_clocks.sh tests/test_cli.py -k demo  any pytest arguments instead of `-m dates`
#
# One fixed offset for every process (FAKETIME="+<seconds>", computed once per date): pytest, the CLI subprocesses,
# dbt, Airflow and PostgreSQL agree on the time, and it advances normally. Monotonic clocks stay real. The offset is
# read once per process (FAKETIME_CACHE_DURATION): libfaketime otherwise re-reads it with getenv() every 10 s from
# whichever thread asks the time, racing a test's os.environ changes (scripts/ensure_faketime.sh says why that kills).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$(bash "$ROOT/scripts/ensure_faketime.sh")" || { echo "cannot install libfaketime" >&2; exit 2; }
DATES="${CLOCK_DATES:-2026-12-31 2027-03-01 2030-01-01}"
if [ "$#" -eq 0 ]; then set -- -m dates; fi
status=0
summary=""
for day in $DATES; do
  home="$(mktemp -d "${TMPDIR:-/tmp}/alliance-clock-$day.XXXXXX")"
  chmod 755 "$home"  # the embedded server may run as its own service user
  offset=$(( $(date -ud "$day 00:00:00" +%s) - $(date -u +%s) ))
  echo "=== clock at $day 00:00:00 UTC (offset ${offset}s), fresh warehouse under $home"
  clock=(env -u ALLIANCE_WAREHOUSE_URL -u ALLIANCE_TEST_SERVER_URL LD_PRELOAD="$LIB" FAKETIME="+${offset}"
         FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_CACHE_DURATION=100000000 ALLIANCE_HOME="$home")
  # start the warehouse under the shifted clock and prove that PostgreSQL and Python both see the date
  if (cd "$ROOT" && "${clock[@]}" "$ROOT/.venv/bin/python" - "$day" <<'PY'
import sys
from datetime import UTC, datetime

from alliance.warehouse import connect, warehouse_url

with connect(warehouse_url()) as conn:
    server_day = conn.execute("select (now() at time zone 'UTC')::date").fetchone()[0]
here = datetime.now(UTC).date()
if server_day.isoformat() != sys.argv[1] or here.isoformat() != sys.argv[1]:
    sys.exit(f"clock not shifted: PostgreSQL says {server_day}, Python says {here}, wanted {sys.argv[1]}")
PY
  ); then
    (cd "$ROOT" && "${clock[@]}" "$ROOT/.venv/bin/pytest" -q -p no:cacheprovider "$@")
    rc=$?
  else
    rc=2
  fi
  (cd "$ROOT" && "${clock[@]}" "$ROOT/.venv/bin/alliance" warehouse stop >/dev/null 2>&1)
  rm -rf "$home"
  summary+="  $day: $([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)")"$'\n'
  [ "$rc" -eq 0 ] || status=1
done
echo "=== shifted clocks:"
printf '%s' "$summary"
exit $status
