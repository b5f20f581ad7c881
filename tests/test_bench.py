"""The benchmark's machinery (not its speed: speed targets are read off its output, never asserted here)."""

import json
import math
import time

import pytest
import torch

from fastattn_lib import attention, bench


@pytest.mark.parametrize("method", ["sdpa", "anna_tables", "anna_linear_memory"])
def test_each_method_computes_what_it_claims(method):
    q, k, v = bench._inputs(256, 16, torch.device("cpu"))
    out = bench._forward(method, q, k, v, 4, 1, "cross_polytope")()
    if method == "sdpa":
        expected = torch.softmax(q @ k.transpose(-1, -2) / 4, dim=-1) @ v
    else:
        expected = attention.anna_attention(q, k, v, 4, 1, impl="dense")
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.skipif(
    not bench.reformer_available(), reason="reformer-pytorch (the bench extra) is not installed"
)
def test_reformer_runs_with_our_number_of_tables_as_its_n_hashes():
    q, k, v = bench._inputs(256, 16, torch.device("cpu"))
    out = bench._forward("reformer", q, k, v, 4, 1, "cross_polytope")()
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
    summary = bench.summarize(results)
    assert summary["anna_tables"]["slope"] == pytest.approx(1)
    assert summary["anna_tables"]["crossover_n"] == 16384  # 16384²·1e-9 = 0.27 s > 0.16 s
    assert summary["anna_tables"]["growth_4k_to_16k"] == pytest.approx(4)
    assert math.isclose(summary["anna_tables"]["speedup_vs_sdpa"][4096], 4096**2 * 1e-9 / (4096 * 1e-5))


def test_command_line_writes_json_and_html(tmp_path):
    assert (
        bench.main(
            [
                "--sizes",
                "256,512",
                "--methods",
                "sdpa,anna_tables",
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
    assert "anna_tables" in report["summary"]
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
    median, times = bench._median_seconds(lambda: calls.append(time.sleep(0.001)), torch.device("cpu"), 3)
    assert len(calls) == len(times) == 3 and median == sorted(times)[1] and min(times) >= 0.001
