#!/usr/bin/env bash
# libfaketime for the shifted-clock test runs (scripts/test_clocks.sh); prints the path of the library to preload.
#
# Why not Debian's `faketime` package: bookworm ships libfaketime 0.9.10, which breaks Python 3.11 either way
# (upstream issues #426 and #390): with the monotonic clock left real, time.sleep() fails with EINVAL (its
# clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) deadline is shifted anyway); with it faked, every timed lock wait
# (threading.Event.wait, queue.get(timeout=...)) hangs, since sem_clockwait is not intercepted. Both are fixed
# upstream since 0.9.11; PyPI's `libfaketime` wheel (python-libfaketime) vendors such a source tree. It is
# installed with uv into .tools/faketime, outside the project's locked environment (the tests never import it).
#
# Why we build it rather than preload the wheel's prebuilt library: that build fakes pthread_cond_timedwait
# (FAKE_PTHREAD), and its wrapper calls getenv() on every call. CPython hands the GIL over with
# pthread_cond_timedwait, so threads call getenv() without the GIL while another thread's os.environ[...] = ...
# (a test's monkeypatch.setenv) reallocates the environment: a use-after-free that segfaulted a pytest worker in
# CI (a server thread starting; reproduced in seconds by threads waiting on Events while the main thread sets
# variables). Nothing here needs faked condition variables (the monotonic clock stays real, CPython's conditions
# wait on it), so the library is compiled from the same vendored source with the wheel's flags minus FAKE_PTHREAD.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=3.0.1
TARGET="$ROOT/.tools/faketime-$VERSION"
SOURCE="$TARGET/libfaketime/vendor/libfaketime/src"
LIB="$ROOT/.tools/faketime-$VERSION-build/libfaketime.so.1"
if [ ! -f "$LIB" ]; then
  if [ ! -f "$SOURCE/libfaketime.c" ]; then
    UV="$(command -v uv 2>/dev/null || echo "$ROOT/.tools/bin/uv")"
    "$UV" pip install --quiet --no-deps --target "$TARGET" --python "$ROOT/.venv/bin/python" "libfaketime==$VERSION" >&2
  fi
  bash "$ROOT/scripts/ensure_debian_packages.sh" >&2  # the C compiler
  build="$(mktemp -d "${TMPDIR:-/tmp}/alliance-faketime.XXXXXX")"
  cp -r "$SOURCE/." "$build/"
  rm -f "$build"/*.o "$build"/*.so.1
  # the wheel's own build leaves out file-stat, utime and sleep faking; we also leave out FAKE_PTHREAD (above)
  make -s -C "$build" libfaketime.so.1 \
    FAKETIME_COMPILE_CFLAGS="-UFAKE_STAT -UFAKE_UTIME -UFAKE_SLEEP -UFAKE_PTHREAD" >&2
  mkdir -p "$(dirname "$LIB")"
  mv "$build/libfaketime.so.1" "$LIB"
  rm -rf "$build"
fi
echo "$LIB"
