"""The benchmark's machinery (not its speed: speed targets are read off its output, never asserted here)."""

import json
import math
import statistics
import time

import pytest
import torch

from fastattn_lib import attention, bench
from fastattn_lib.bench import extras, run


@pytest.mark.parametrize("method", ["sdpa", "anna_tables", "anna_linear_memory"])
def test_each_method_computes_what_it_claims(method):
    q, k, v = bench.inputs(256, 16, torch.device("cpu"))
    out = bench.forward(method, q, k, v, 4, 1, "cross_polytope")()
    if method == "sdpa":
        expected = torch.softmax(q @ k.transpose(-1, -2) / 4, dim=-1) @ v
    else:
        expected = attention.anna_attention(q, k, v, 4, 1, impl="dense")
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.skipif(
    not bench.reformer_available(), reason="reformer-pytorch (the bench extra) is not installed"
)
def test_reformer_runs_with_our_number_of_tables_as_its_n_hashes():
    q, k, v = bench.inputs(256, 16, torch.device("cpu"))
    out = bench.forward("reformer", q, k, v, 4, 1, "cross_polytope")()
    assert out[0].shape == (1, 256, 16)


def test_measure_reports_time_memory_and_anna_split():
    result = bench.measure("anna_tables", 512, 16, 4, 1, "cross_polytope", "cpu", 2)
    assert result["seconds"] > 0 and len(result["times"]) == 2 and result["peak_extra_bytes"] >= 0
    assert set(result["split"]) == {"hashing", "bucketing", "aggregation"}
    assert all(seconds > 0 for seconds in result["split"].values())


def test_loglog_slope_and_summary():
    ns = [4096, 8192, 16384]
    assert bench.loglog_slope(ns, [n**2 * 1e-9 for n in ns]) == pytest.approx(2)
    results = [{"method": "sdpa", "n": n, "seconds": n**2 * 1e-9, "sweep": "n"} for n in ns]
    results += [{"method": "anna_tables", "n": n, "seconds": n * 1e-5, "sweep": "n"} for n in ns]
    summary = bench.summarize(results, "n")
    assert summary["anna_tables"]["slope"] == pytest.approx(1)
    assert summary["anna_tables"]["crossover_n"] == 16384  # 16384²·1e-9 = 0.27 s > 0.16 s
    assert summary["anna_tables"]["growth_4k_to_16k"] == pytest.approx(4)
    assert math.isclose(summary["anna_tables"]["speedup_vs_sdpa"][4096], 4096**2 * 1e-9 / (4096 * 1e-5))
    names = [trace.name for trace in bench.figure(results).data]
    assert names == ["softmax (torch's fused SDPA)", "ANNA, Algorithm 1"]  # the legend names methods in words


def test_command_line_writes_json_and_html(tmp_path):
    assert (
        run.main(
            [
                "--sizes",
                "256,512",
                "--methods",
                "sdpa,anna_tables",
                "--sections",
                "n,causal,heads,tables",
                "--heads-max-n",
                "256",
                "--memory-tables",
                "1,2",
                "--repeats",
                "1",
                "--device",
                "cpu",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "bench.json").read_text())
    sweep = [r for r in report["results"] if r["sweep"] == "n"]
    assert {(r["method"], r["n"]) for r in sweep} == {
        (m, n) for m in ("sdpa", "anna_tables") for n in (256, 512)
    }
    assert all("seconds" in r for r in report["results"]), report["results"]
    # --repeats 1, but a call at N = 256 is fast: the run's time budget takes more of them
    assert all(len(r["times"]) > 1 for r in sweep if r["method"] == "anna_tables")
    causal = {(r["method"], r["n"]) for r in report["results"] if r["sweep"] == "causal"}
    assert causal == {(m, n) for m in ("sdpa", "anna_tables") for n in (256, 512)}
    heads = [r for r in report["results"] if r["sweep"] == "heads"]
    assert {r["n"] for r in heads} == {256} and all(r["heads"] == 8 for r in heads)  # capped by --heads-max-n
    assert "anna_tables" in report["summary"]["n"] and "anna_tables" in report["summary"]["causal"]
    assert "one head, causal" in bench.markdown(report)
    assert (tmp_path / "bench.html").stat().st_size > 100_000  # plotly.js is embedded: viewable offline


def test_cpu_threads_sets_and_restores_the_thread_count_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with bench.cpu_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        with bench.cpu_threads(0):
            pass


def test_median_of_repeats_is_the_middle_call():
    calls = []
    median, times = bench.median_seconds(lambda: calls.append(time.sleep(0.001)), torch.device("cpu"), 3)
    assert len(calls) == len(times) == 3 and median == sorted(times)[1] and min(times) >= 0.001


def test_a_time_budget_takes_more_calls_of_a_fast_function_up_to_a_limit():
    calls = []
    median, times = bench.median_seconds(
        lambda: calls.append(time.sleep(0.002)), torch.device("cpu"), 3, 0.02
    )
    assert 3 < len(calls) == len(times) <= 10 and median == statistics.median(times)  # each call ≥ 2 ms
    _, times = bench.median_seconds(lambda: None, torch.device("cpu"), 3, budget=10.0, most=7)
    assert len(times) == 7
    _, times = bench.median_seconds(lambda: time.sleep(0.01), torch.device("cpu"), 2, budget=0.005)
    assert len(times) == 2  # a slow call: `repeats`, however small the budget


@pytest.mark.parametrize("method", ["sdpa", "anna_tables", "anna_hadamard", "anna_linear_memory"])
def test_causal_multi_head_forward_computes_what_it_claims(method):
    q, k, v = bench.inputs(128, 16, torch.device("cpu"), heads=3)
    out = bench.forward(method, q, k, v, 4, 1, "cross_polytope", causal=True)()
    if method == "sdpa":
        expected = attention.Softmax(0.25, normalize=False)(q, k, v, causal=True)
    else:
        rotation = "hadamard" if method == "anna_hadamard" else "dense"
        expected = attention.Anna(4, 1, impl="dense", rotation=rotation)(q, k, v, causal=True)
    assert torch.allclose(out, expected, atol=1e-5)


def test_causal_split_and_collision_check_report_their_parts():
    q, k, v = bench.inputs(256, 16, torch.device("cpu"), heads=2)
    split = bench.timing.anna_time_split(q, k, v, 4, 1, "cross_polytope", torch.device("cpu"), 1, causal=True)
    assert set(split) == {"hashing", "bucketing", "aggregation"} and all(s > 0 for s in split.values())
    rows = extras.collision_check(dim=16, n_draws=4, n_pairs=20, device="cpu")
    assert [r["angle"] for r in rows][0] == 0.3 and all(0 <= r["hadamard"] <= 1 for r in rows)
    assert rows[0]["dense"] > rows[-1]["dense"]  # near pairs collide more often than orthogonal ones


def test_gpu_check_says_clearly_when_there_is_no_gpu(tmp_path):
    import os
    import subprocess
    import sys

    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "fastattn_lib.gpu_check"], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 2 and "torch sees no CUDA device" in done.stderr


def test_gpu_check_writes_its_table_between_the_readme_markers(tmp_path):
    from fastattn_lib import gpu_check

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{gpu_check.BEGIN}\nold\n{gpu_check.END}\n\n## next\n")
    gpu_check.write_readme_table("| a |\n|---|", "NVIDIA H200", readme)
    text = readme.read_text()
    assert "old" not in text and "`make gpu-check` on NVIDIA H200" in text and text.endswith("## next\n")
    assert text.count(gpu_check.BEGIN) == 1


def test_control_moves_go_one_and_two_steps_where_there_is_room_and_come_home():
    import ipywidgets as widgets

    assert extras.control_moves(widgets.IntSlider(value=8, min=0, max=16)) == [9, 10, 8]
    assert extras.control_moves(widgets.IntSlider(value=44, min=4, max=48, step=4)) == [40, 36, 44]
    assert extras.control_moves(widgets.Dropdown(value=2.0, options=[0.0, 2.0, 8.0])) == [0.0, 8.0, 2.0]


def test_the_extras_tables_give_the_training_step_against_softmax_and_each_panel_median_and_slowest():
    from fastattn_lib.bench import report

    text = report.format_extras(
        {
            "training_step": {"softmax": 0.04, "straight-through ANNA, dense rotation": 0.2},
            "panels": {"05 policies": {"median": 0.002, "slowest": 1.8, "moves": 9}},
        }
    )
    assert "| straight-through ANNA, dense rotation | 200 | 5.0 |" in text
    assert "| 05 policies | 2 | 1800 | 9 |" in text
