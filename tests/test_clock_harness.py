"""The shifted-clock harness itself (scripts/ensure_faketime.sh): the preloaded libfaketime must not crash a
threaded Python process that changes its environment, as pytest workers do (monkeypatch.setenv while a test's
server threads run). The wheel's prebuilt library segfaulted such a process within a tenth of a second here."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

THREADS_WAIT_WHILE_ENVIRONMENT_CHANGES = """
import os, threading, time
from datetime import UTC, datetime
deadline = time.monotonic() + 3.0
def wait_in_turns():
    event = threading.Event()
    while time.monotonic() < deadline:
        event.wait(0.00001)  # hands the GIL over: pthread_cond_timedwait without the GIL
        time.time()
threads = [threading.Thread(target=wait_in_turns) for _ in range(4)]
for thread in threads:
    thread.start()
rounds = 0
while time.monotonic() < deadline:
    os.environ[f"ALLIANCE_HARNESS_{rounds % 2000}"] = "x" * (rounds % 40)  # grows, reallocates environ
    if rounds % 2000 == 1999:
        for name in [name for name in os.environ if name.startswith("ALLIANCE_HARNESS_")]:
            del os.environ[name]
    rounds += 1
for thread in threads:
    thread.join()
time.sleep(0.05)  # clock_nanosleep on the real monotonic clock still works
print(datetime.now(UTC).year, rounds)
"""


def test_preloaded_clock_survives_threads_and_environment_changes() -> None:
    library = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_faketime.sh")], capture_output=True,
                             text=True, check=True).stdout.strip()
    offset = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp() - datetime.now(UTC).timestamp())
    environment = {**os.environ, "LD_PRELOAD": library, "FAKETIME": f"+{offset}",
                   "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_CACHE_DURATION": "100000000"}
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", THREADS_WAIT_WHILE_ENVIRONMENT_CHANGES],
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    year, rounds = done.stdout.split()
    assert year in {"2029", "2030"}  # the clock moved (the offset was taken a moment before the process started)
    assert int(rounds) > 1000
