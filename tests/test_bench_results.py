"""bench/results.py keeps every run and names the best and worst round the right way round."""

from __future__ import annotations

import json

import pytest

from bench import results


def test_durations_best_is_the_fastest_round_and_throughputs_the_highest() -> None:
    seconds = results.summarise([12.0, 10.0, 15.0], higher_is_better=False)
    assert seconds == {"rounds": 3, "median": 12.0, "best": 10.0, "worst": 15.0}
    rates = results.summarise([700.0, 900.0, 800.0])
    assert (rates["best"], rates["worst"], rates["median"]) == (900.0, 700.0, 800.0)
    assert results.quote(seconds, " s") == "12.0 s (10.0 s - 15.0 s)"


def test_summarise_rounds_covers_only_keys_every_round_has() -> None:
    rounds = [{"full_s": 3.0, "extra": 1}, {"full_s": 5.0}, {"full_s": 4.0}]
    assert results.summarise_rounds(rounds, ("full_s", "extra")) == {
        "full_s": {"rounds": 3, "median": 4.0, "best": 3.0, "worst": 5.0}}


def test_every_run_is_appended_with_commit_time_and_load(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    for value in (1.0, 2.0):
        path = results.append_run("demo", {**results.run_header(), "rounds": [value]})
    runs = json.loads(path.read_text())
    assert [r["rounds"] for r in runs] == [[1.0], [2.0]]
    for run in runs:
        assert run["commit"] and run["started_at"].endswith("+00:00")
        assert len(run["loadavg_at_start"]) == 3 and len(run["loadavg_at_end"]) == 3
