#!/usr/bin/env bash
# libfaketime for the shifted-clock test runs (scripts/test_clocks.sh); prints the path of the library to preload.
#
# Why not Debian's `faketime` package: bookworm ships libfaketime 0.9.10, which breaks Python 3.11 either way
# (upstream issues #426 and #390): with the monotonic clock left real, time.sleep() fails with EINVAL (its
# clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) deadline is shifted anyway); with it faked, every timed lock wait
# (threading.Event.wait, queue.get(timeout=...)) hangs, since sem_clockwait is not intercepted. Both are fixed
# upstream since 0.9.11; PyPI's `libfaketime` wheel (python-libfaketime) bundles such a build. It is installed
# with uv into .tools/faketime, outside the project's locked environment (the tests never import it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=3.0.1
TARGET="$ROOT/.tools/faketime-$VERSION"
LIB="$TARGET/libfaketime/vendor/libfaketime/src/libfaketime.so.1"
if [ ! -f "$LIB" ]; then
  UV="$(command -v uv 2>/dev/null || echo "$ROOT/.tools/bin/uv")"
  "$UV" pip install --quiet --no-deps --target "$TARGET" --python "$ROOT/.venv/bin/python" "libfaketime==$VERSION" >&2
fi
echo "$LIB"
