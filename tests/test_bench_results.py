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


def test_report_shows_median_best_and_worst_of_the_newest_run(tmp_path) -> None:
    from bench import report

    runs = [{"commit": "old", "started_at": "2026-01-01T00:00:00+00:00", "sizes": [10],
             "summary": {"10": {"full_build_s": {"median": 99.0, "best": 99.0, "worst": 99.0}}}},
            {"commit": "abc1234", "started_at": "2026-12-06T15:00:00+00:00", "loadavg_at_start": [0.5, 0.4, 0.3],
             "loadavg_at_end": [1.0, 0.9, 0.8], "cores": 2, "sizes": [10],
             "summary": {"10": {key: {"median": 2.0, "best": 1.5, "worst": 3.25} for key in (
                 "full_build_s", "incremental_s", "hand_sql_s", "incremental_over_full", "full_over_hand_sql")}}}]
    (tmp_path / "transform.json").write_text(json.dumps(runs))
    block = report.render("transform", tmp_path)
    assert "commit `abc1234`" in block and "Newest of 2 run(s)" in block and "0.50 / 0.40 / 0.30" in block
    assert "2.0 s (1.5 s - 3.2 s)" in block and "99.0" not in block


def test_bench_readme_quotes_the_results_files_and_nothing_else() -> None:
    from bench import report

    text = report.README.read_text()
    assert {m.group("bench") for m in report.BLOCK.finditer(text)} == set(report.RENDERERS)
    assert report.rewrite(text) == text, "bench/README.md differs from bench/results/: run bench.report --write"


def test_freshness_report_shows_every_size_point(tmp_path) -> None:
    from bench import report
    from bench.freshness import point_summary

    samples = [{"sample": i + 1, "latency_s": s, "outside_tasks_s": s - b - 0.3,
                "task_seconds": {"dbt_build": b, "publish": 0.3}, "queued_to_start_s": [0.5]}
               for i, (s, b) in enumerate([(9.0, 4.0), (11.0, 6.0), (30.0, 5.0)])]
    point = point_summary(samples)
    assert (point["n"], point["p50"], point["p95"]) == (3, 11.0, 30.0)
    assert point["median_task_seconds"] == {"dbt_build": 5.0, "publish": 0.3}
    run = {"commit": "abc1234", "started_at": "2026-12-07T00:00:00+00:00", "cores": 2, "sizes": [0, 100000],
           "samples_per_point": 3, "clicks_per_order": 5, "target_p50_s": 15.0,
           "points": {"0": {"summary": point}, "100000": {"summary": {**point, "p50": 14.25}}}}
    (tmp_path / "freshness.json").write_text(json.dumps([run]))
    block = report.render("freshness", tmp_path)
    assert "| 0 | 11.0 s | 30.0 s | 3 | 0.5 s | 4.7 s | dbt_build 5.0, publish 0.3 |" in block
    assert "| 100,000 | 14.2 s |" in block and "target <= 15 s" in block


def test_summary_table_prints_median_best_and_worst_per_size() -> None:
    summary = {"1000": {"build_s": results.summarise([3.0, 1.0, 2.0], higher_is_better=False),
                        "share": results.summarise([0.25, 0.5, 0.3], higher_is_better=False)}}
    table = results.summary_table(summary, [1000], [("build", "build_s", results.seconds),
                                                    ("share", "share", results.share),
                                                    ("later", "not_measured_then", results.seconds)])
    assert table.splitlines() == ["| orders | build | share | later |", "|---:|---:|---:|---:|",
                                  "| 1,000 | 2.0 s (1.0 s - 3.0 s) | 30.0 % (25.0 % - 50.0 %) | n/a |"]
