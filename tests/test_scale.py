"""benchmarks/scale.py (issue 37, item 2): the growth fits, the generated PTB-XL-layout cohort, the
memory measurement of a process tree, and the script's record (stages stubbed in the default
suite; the real stages end to end in a slow test)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import wfdb

from conftest import REPO, load_script

scale = load_script("benchmarks/scale.py")


def test_growth_exponent_recovers_known_powers():
    ns = [1000, 5000, 20000]
    for k in (0.5, 1.0, 1.3):
        seconds = [3.0 * n**k for n in ns]
        assert scale.growth_exponent(ns, seconds) == pytest.approx(k)
        assert scale.pairwise_exponent(ns, seconds) == pytest.approx(k)
    # The pair is the two largest sizes whatever the order given.
    assert scale.pairwise_exponent([20000, 1000, 5000], [40.0, 1.0, 10.0]) == pytest.approx(1.0)
    assert math.isnan(scale.growth_exponent([1000], [1.0]))
    assert math.isnan(scale.pairwise_exponent([1000, 1000], [1.0, 2.0]))


def test_projection_is_linear_below_one_and_a_power_above():
    ns = [1000, 5000, 20000]
    affine = [10 + 0.01 * n for n in ns]  # start-up 10 s + 10 ms per record: k < 1
    assert scale.project(ns, affine, scale.UKB_N) == pytest.approx(10 + 0.01 * scale.UKB_N)
    quadratic = [1e-6 * n**2 for n in ns]
    assert scale.project(ns, quadratic, scale.UKB_N) == pytest.approx(1e-6 * scale.UKB_N**2)


def test_generated_cohort_is_read_by_the_ptbxl_source_as_written(tmp_path):
    from ecg_mi.data.cohort import select_cohort
    from ecg_mi.data.sources import PtbxlSource
    from ecg_mi.data.sources.synthetic import synthesize_record

    master = scale.cohort_index(45)
    generation = scale.generate(tmp_path / "records", master, seed=0, jobs=1)
    assert generation["written"] == 45 and generation["bytes"] > 45 * 12 * 5000 * 2
    assert scale.generate(tmp_path / "records", master, seed=0, jobs=1)["reused"] == 45  # not rewritten
    index = scale.subset(master, 30)
    assert set(index["ecg_id"]) <= set(scale.subset(master, 45)["ecg_id"])  # a smaller cohort lies inside
    root = scale.make_root(tmp_path / "n30", tmp_path / "records", index)
    source = PtbxlSource(root)
    table = source.index()
    assert len(table) == 30 and table["label"].sum() == 10  # MI : non-MI = 1 : 2
    assert len(select_cohort(table)) == 30  # the cohort rule keeps every record
    for (_, row), (_, made) in list(zip(table.iterrows(), index.iterrows(), strict=True))[:3]:
        record = source.read(row, source.native_rate(500))
        assert record.fs == 500 and record.signal.shape == (12, 5000)
        np.testing.assert_allclose(record.signal, synthesize_record(made), atol=0.51e-3)  # 1 µV steps
        by_wfdb = wfdb.rdrecord(source.record_path(row, 500)).p_signal.T  # checksums and header as WFDB reads them
        np.testing.assert_allclose(by_wfdb, record.signal, atol=1e-6)


def test_measure_counts_the_memory_of_child_processes(tmp_path):
    # The parent allocates nothing; its child holds 200 MB for a second.
    child = "import numpy, time; a = numpy.ones(25_000_000); time.sleep(1.0)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    done = scale.measure([sys.executable, "-c", parent], {}, tmp_path, tmp_path / "log", interval=0.05)
    assert done.returncode == 0 and done.seconds > 1.0
    assert done.anon_mb > 150 and done.rss_mb > 150 and done.largest_process_mb > 150
    assert done.max_processes >= 2


def test_script_writes_a_record_with_every_stage(tmp_path, monkeypatch):
    """The whole script at tiny sizes with each stage's command replaced by a short process (the
    real stages: test_real_stages_at_tiny_sizes, slow)."""
    work = tmp_path / "work"
    stub = [sys.executable, "-c", "import numpy, time; a = numpy.ones(2_000_000); time.sleep(0.2)"]
    monkeypatch.setattr(scale, "stage_commands", lambda stage, root, where, args: stub)
    monkeypatch.setattr(scale, "resnet_extras", lambda where: {"epoch_s": 0.1, "validation_s": 0.05})
    monkeypatch.setattr(scale, "xgboost_extras", lambda where: {"fit_s": 0.1})
    monkeypatch.setattr(scale, "scoring_extras", lambda where, n, s: {"n_scored": n, "n_inputs": n, "records_per_s": n / s})
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n")
    code = scale.main(["--sizes", "30,60", "--work-dir", str(work), "--publish", "--benchmarks-md", str(md)])
    assert code in (0, 1)  # 1: a target not met (tiny sizes say little)
    record = json.loads((work / "scale.json").read_text())
    assert [size["n"] for size in record["sizes"]] == [30, 60]
    for size in record["sizes"]:
        assert set(size["stages"]) == set(scale.STAGES)
        for measured in size["stages"].values():
            assert measured["seconds"] > 0 and measured["rss_mb"] > 0 and measured["anon_mb"] > 0
        assert size["disk_bytes"]["records"] > 0
    fits = record["summary"]["fits"]
    assert set(fits) == set(scale.STAGES) and all(np.isfinite(f["k_fit"]) for f in fits.values())
    assert record["summary"]["study"]["total_s"] > 0
    assert {"target", "value", "met"} <= set(record["summary"]["targets"][0])
    assert "<!-- generated: scale begin -->" in md.read_text() and "| cache |" in md.read_text()
    assert not (work / "n30" / "cache").exists()  # caches removed after each size unless --keep


def test_refuses_a_work_dir_inside_the_checkout(capsys):
    with pytest.raises(SystemExit):
        scale.parse_args(["--work-dir", str(REPO / "scale-out")])
    assert "inside the checkout" in capsys.readouterr().err


@pytest.mark.slow
def test_real_stages_at_tiny_sizes(tmp_path):
    """Every real stage (train.py, predict.py) at 45 and 90 records, a small ResNet."""
    work = tmp_path / "work"
    done = subprocess.run([sys.executable, "benchmarks/scale.py", "--sizes", "45,90", "--work-dir", str(work),
                           "--num-workers", "1", "--resnet-set", "model.channels=[8,8,8]",
                           "--set", "explain.n_examples=1", "--set", "explain.permutation_repeats=1"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((work / "scale.json").read_text())
    for size in record["sizes"]:
        stages = size["stages"]
        assert set(stages) == set(scale.STAGES)
        assert all(m["seconds"] > 0 and m["rss_mb"] > 0 for m in stages.values())
        assert 0 < stages["resnet"]["epoch_s"] < stages["resnet"]["seconds"]
        assert stages["scoring"]["n_scored"] == size["n"]
        assert stages["resnet"]["max_processes"] >= 2  # the DataLoader worker was measured
