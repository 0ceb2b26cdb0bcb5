#!/usr/bin/env bash
# Debian packages the test suite runs for real, installed with apt-get only when their program is absent:
#   chromium      headless browser of the scorecard test (tests/test_scorecard.py)
#   redis-server  Celery broker of tests/test_celery_live.py when no Redis answers on 127.0.0.1:6379
#   gcc           compiles libfaketime for the shifted-clock run (scripts/ensure_faketime.sh)
set -euo pipefail
missing=()
for pair in /usr/bin/chromium:chromium /usr/bin/redis-server:redis-server /usr/bin/gcc:gcc; do
  if [ ! -x "${pair%%:*}" ]; then missing+=("${pair##*:}"); fi
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""; if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
