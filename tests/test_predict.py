"""predict.py: export files / folders / globs → packaged MLflow model → one CSV row per record.

Most tests use a stand-in pyfunc model with the packaging contract's metadata
(conftest.standin_model); the end-to-end test with a real trained run needs
``ecg_mi.packaging`` and is skipped until it exists.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, cardiosoft_xml, compose_config, make_signal
from ecg_mi.calibration import prior_shift
from ecg_mi.data.readers import read_ecg
from ecg_mi.errors import ConfigError, DataError, InputError
from ecg_mi.predict import COLUMNS, reading_workers, run, select_ecg_files, stitch

COLUMN_LIST = ["path", "record_id", "format", "status", "error", "fs_in", "n_leads_in", "duration_s",
               "prob_mi", "pred_mi", "threshold", "model_uri", "signal_sha256", "duplicate_of"]  # fmt: skip


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` and the SHA-256 of its bytes."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def sigmoid_mean(windows: np.ndarray) -> np.ndarray:
    """What the stand-in model returns per window."""
    return 1 / (1 + np.exp(-4 * windows.mean(axis=(1, 2))))


@pytest.fixture
def mixed_folder(tmp_path, write_wfdb) -> Path:
    """A WFDB record (.hea + .dat), a CardioSoft XML, a garbage file and a SOURCE.txt."""
    folder = tmp_path / "exports"
    write_wfdb(folder / "wfdb", "rec1", make_signal(1000, 100, seed=1) + 0.3)
    (folder / "xml").mkdir(parents=True)
    (folder / "xml" / "cs.xml").write_text(cardiosoft_xml(), encoding="latin-1")
    (folder / "junk.bin").write_bytes(b"\x00\x01 not an ECG \xff" * 50)
    (folder / "SOURCE.txt").write_text("where these files come from\n")
    return folder


def trained_model_uri(cfg) -> str:
    """Train ``cfg`` (a tiny run) and return ``runs:/<id>``: the model that run logged."""
    import os

    from mlflow.tracking import MlflowClient

    from ecg_mi.train import run as train

    train(cfg)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    [latest] = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                  max_results=1)  # fmt: skip
    return f"runs:/{latest.info.run_id}"


def predict(model: str, input_: Path | str, output: Path, *extra: str) -> pd.DataFrame:
    """predict's route in-process (the CLI's behaviour on errors is tested separately)."""
    return run(compose_config("predict", f"model_uri={model}", f"input={input_}", f"output={output}", *extra))


def test_csv_has_exactly_the_documented_columns(tmp_path, standin_model, write_wfdb):
    record = write_wfdb(tmp_path / "in", "one")
    predict(standin_model(), f"{record}.hea", tmp_path / "out.csv")
    assert list(pd.read_csv(tmp_path / "out.csv").columns) == COLUMN_LIST == list(COLUMNS)


def test_mixed_folder_scores_good_files_and_flags_garbage(run_cli, tmp_path, standin_model, mixed_folder):
    out = tmp_path / "pred.csv"
    done = run_cli("predict.py", f"model_uri={standin_model()}", f"input={mixed_folder}", f"output={out}",
                   f"hydra.run.dir={tmp_path}/hydra")  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {mixed_folder}: 1 of 3 files could not be scored (see {out})"
    )
    assert "Traceback" not in done.stderr
    rows = pd.read_csv(out).set_index("record_id")
    assert rows.loc["rec1", "status"] == "ok" and rows.loc["rec1", "format"] == "wfdb"
    assert rows.loc["cs", "status"] == "ok" and rows.loc["cs", "format"] == "cardiosoft_xml"
    assert rows.loc["junk", "status"] == "error" and "not a supported ECG format" in rows.loc["junk", "error"]


def test_a_downloaded_model_is_not_left_behind(run_cli, tmp_path, standin_model, write_wfdb, monkeypatch):
    uri, record = standin_model(run=True), write_wfdb(tmp_path / "in", "one")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # predict's temporary files
    done = run_cli("predict.py", f"model_uri={uri}", f"input={record}.hea", f"output={tmp_path / 'p.csv'}",
                   f"hydra.run.dir={tmp_path}/hydra")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(scratch.iterdir())


def test_wfdb_record_is_one_row_and_companions_are_skipped(mixed_folder):
    files, skipped = select_ecg_files(p for p in mixed_folder.rglob("*") if p.is_file())
    assert [f.name for f in files] == ["junk.bin", "rec1.hea", "cs.xml"]
    assert skipped == 2  # rec1.dat (read through its header) and SOURCE.txt


def test_probability_is_the_mean_over_windows_and_threshold_decides(tmp_path, standin_model, write_wfdb):
    signal = make_signal(2500, 100, seed=3) + np.linspace(-0.2, 0.4, 2500)  # 25 s: 3 windows
    record = write_wfdb(tmp_path / "in", "long", signal)
    table = predict(standin_model(threshold=0.52), f"{record}.hea", tmp_path / "out.csv")
    x = read_ecg(f"{record}.hea").signal
    windows = np.stack([x[:, 0:1000], x[:, 1000:2000], x[:, 1500:2500]])  # the window policy
    expected = sigmoid_mean(windows).mean()
    row = table.iloc[0]
    assert row["prob_mi"] == pytest.approx(expected, rel=1e-5)
    assert row["pred_mi"] == int(expected >= 0.52) and row["threshold"] == 0.52
    assert row["duration_s"] == 25.0 and row["fs_in"] == 100.0 and row["n_leads_in"] == 12


def test_record_is_resampled_to_the_model_rate(tmp_path, standin_model, write_wfdb):
    record = write_wfdb(tmp_path / "in", "hi", make_signal(5000, 500, seed=4), fs=500)
    row = predict(standin_model(sample_rate=250), f"{record}.hea", tmp_path / "out.csv").iloc[0]
    assert row["status"] == "ok" and row["fs_in"] == 500.0 and 0 < row["prob_mi"] < 1


def test_short_record_is_a_refused_row(tmp_path, standin_model, write_wfdb):
    record = write_wfdb(tmp_path / "in", "short", make_signal(500, 100))
    with pytest.raises(DataError, match=r"1 of 1 files could not be scored \(1 refused by the input gate\)"):
        predict(standin_model(), f"{record}.hea", tmp_path / "out.csv")
    row = pd.read_csv(tmp_path / "out.csv").iloc[0]
    assert row["status"] == "refused" and row["error"] == "duration: 5.00 s < 9.98 s (the model reads 10 s windows)"
    assert row["duration_s"] == 5.0 and np.isnan(row["prob_mi"])


def test_glob_input_and_runs_uri(tmp_path, standin_model, write_wfdb):
    for name in ("r0", "r1", "x2"):
        write_wfdb(tmp_path / "in", name, make_signal(1000, 100, seed=len(name)))
    table = predict(standin_model(run=True), tmp_path / "in" / "r*", tmp_path / "out.csv")
    assert sorted(table["record_id"]) == ["r0", "r1"] and (table["status"] == "ok").all()
    assert table["model_uri"].iloc[0].startswith("runs:/")


def test_failed_run_leaves_an_existing_csv_untouched(tmp_path, standin_model, write_wfdb, monkeypatch):
    write_wfdb(tmp_path / "in", "r0")
    out = tmp_path / "out.csv"
    out.write_text("previous,results\n")

    def broken(self, windows):
        raise RuntimeError("model crashed mid-run")

    monkeypatch.setattr("ecg_mi.predict.PackagedModel.probabilities", broken)
    with pytest.raises(RuntimeError):
        predict(standin_model(), tmp_path / "in", out)
    assert out.read_text() == "previous,results\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["input={in}"], "error: model_uri: missing; pass model_uri=<MLflow model URI>"),
        (["model={model}", "input={in}"], "error: model={model}: pass model_uri=<MLflow model URI> instead"),
        (["model_uri={model}", "input={tmp}/nothing/*.xml"], "error: {tmp}/nothing/*.xml: matches no file"),
        (["model_uri={tmp}/no-model", "input={in}"], "error: {tmp}/no-model: cannot load the MLflow model"),
        (["model_uri={model}", "input={in}", "output={model}/MLmodel/out.csv"], "error: {model}/MLmodel/out.csv: {model}/MLmodel is a file"),
        (["model_uri={model}", "input={in}", "output={in}/r0.hea"], "error: {in}/r0.hea: is one of the input files"),
        (["model_uri={model}", "input={in}/r0", "output={in}/r0.dat"], "error: {in}/r0.dat: is one of the input files"),
        (["model_uri={model}", "input={in}", "output={in}/sub/out.csv"], "error: {in}/sub/out.csv: is inside the input folder"),
        (["model_uri={model}", "input={in}/r0", "output={tmp}"], "error: {tmp}: is a folder"),
        (["model_uri={model}", "input={in}/r0", "gradcam=true", "gradcam_dir={in}/r0.hea"], "error: {in}/r0.hea: is one of the input files"),
        (["model_uri={model}", "input={in}/r0", "gradcam=true", "gradcam_dir={model}/MLmodel"], "error: {model}/MLmodel: is a file; gradcam_dir="),
        (["model_uri={model}", "input={in}/r0", "output=123"], "error: output=123: must be a path"),
        (["model_uri={model}", "input={in}/r0", "output=[a,b]"], "error: output=['a', 'b']: must be a path"),
        (["model_uri={model}", "input={in}/r0", "tracking.uri=123"], "error: tracking.uri=123: must be a tracking URI"),
        (["model_uri={model}", "input={in}/r0", "gradcam=maybe"], "error: gradcam='maybe': must be true or false"),
        (["model_uri={model}", "input={in}/r0", "resume=1"], "error: resume=1: must be true or false"),
        (["model_uri={model}", "input={in}/r0", "batch_size=0"], "error: batch_size=0: must be a positive integer"),
        (["model_uri={model}", "input={in}/r0", "workers=-1"], "error: workers=-1: must be auto or a whole number >= 0"),
        (["model_uri={model}", "input={in}/r0", "input_list={tmp}/none.txt"], "error: input and input_list: pass one"),
        (["model_uri={model}", "input_list={tmp}/none.txt"], "error: {tmp}/none.txt: cannot read the input list"),
    ],
    ids=["missing-model", "model-is-a-config-group", "input-matches-nothing", "unloadable-model", "output-under-a-file",
         "output-is-an-input", "output-is-an-input-signal-file", "output-inside-the-inputs", "output-is-a-folder",
         "gradcam-dir-is-an-input", "gradcam-dir-is-a-file", "output-int", "output-list", "tracking-uri-int",
         "gradcam-not-bool", "resume-not-bool", "batch-size-0", "workers-negative", "input-and-input-list", "input-list-missing"],
)  # fmt: skip
def test_cli_errors_are_one_line_exit_2(run_cli, tmp_path, standin_model, write_wfdb, args, message):
    write_wfdb(tmp_path / "in", "r0")
    fill = {"in": tmp_path / "in", "tmp": tmp_path, "model": standin_model()}
    args = [a.format(**fill) for a in args]
    if not any(a.startswith("output=") for a in args):
        args.append(f"output={tmp_path / 'out.csv'}")
    before = tree_digest(tmp_path)
    done = run_cli("predict.py", *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(**fill)), done.stderr
    assert "Traceback" not in done.stderr
    assert tree_digest(tmp_path) == before  # nothing written, nothing changed


def test_gradcam_writes_one_png_per_record(tmp_path, standin_model, mixed_folder):
    (mixed_folder / "junk.bin").unlink()
    out = tmp_path / "res" / "pred.csv"
    predict(standin_model(), mixed_folder, out, "gradcam=true")
    pngs = sorted(p.name for p in (tmp_path / "res" / "pred_gradcam").iterdir())
    assert pngs == ["wfdb__rec1.hea.png", "xml__cs.xml.png"]
    assert all((tmp_path / "res" / "pred_gradcam" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_gradcam_needs_a_network_model(tmp_path, standin_model, write_wfdb):
    record = write_wfdb(tmp_path / "in", "r0")
    with pytest.raises(ConfigError, match="gradcam=true needs a network model"):
        predict(standin_model(family="classical"), f"{record}.hea", tmp_path / "out.csv", "gradcam=true")


def test_stitch_rebuilds_a_long_record_from_overlapping_windows():
    x = np.arange(2 * 25, dtype=np.float32).reshape(2, 25)
    windows = np.stack([x[:, 0:10], x[:, 10:20], x[:, 15:25]])
    cams = np.stack([np.full(10, 0.1), np.full(10, 0.5), np.full(10, 0.3)])
    signal, cam = stitch(windows, cams, 25)
    np.testing.assert_array_equal(signal, x)
    np.testing.assert_allclose(cam, [0.1] * 10 + [0.5] * 10 + [0.3] * 5, rtol=1e-6)


def test_folder_of_only_companions_is_an_input_error(tmp_path, standin_model):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "LICENSE.txt").write_text("MIT")
    with pytest.raises(InputError, match="holds only 1 non-ECG companion file"):
        predict(standin_model(), tmp_path / "docs", tmp_path / "out.csv")


def test_every_shared_export_is_scored(tmp_path, standin_model, shared_formats):
    """Integration: the folder of real exports users point predict at."""
    table = predict(standin_model(sample_rate=500), shared_formats, tmp_path / "out.csv")
    assert (table["status"] == "ok").all(), table[table["status"] != "ok"][["path", "error"]]
    assert set(table["format"]) == {"cardiosoft_xml", "ge_muse_xml", "philips_sierra_xml", "hl7_aecg",
                                    "dicom_ecg", "scp_ecg", "wfdb"}  # fmt: skip
    assert len(table) == 11  # one row per record: the WFDB record's .dat/.xyz are not rows


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ecg_mi.packaging") is None,
                    reason="ecg_mi.packaging (the packaged pyfunc model) is not in this tree yet")  # fmt: skip
@pytest.mark.parametrize("model", ["cnn", "random_forest"])
def test_real_trained_run_scores_files(tmp_path, compose_train, mixed_folder, model):
    """End to end: a tiny synthetic training logs its model; predict scores exports with runs:/<id>."""
    uri = trained_model_uri(compose_train(f"model={model}", "explain.enabled=false"))
    with pytest.raises(DataError, match="1 of 3 files"):  # junk.bin
        predict(uri, mixed_folder, tmp_path / "out.csv", *(["gradcam=true"] if model == "cnn" else []))
    rows = pd.read_csv(tmp_path / "out.csv").set_index("record_id")
    assert rows.loc[["rec1", "cs"], "prob_mi"].between(0, 1).all()


# ---- never touch the inputs, stops and resume, any file name, duplicates


def test_no_file_is_left_in_the_working_directory(tmp_path, standin_model, write_wfdb):
    record, work = write_wfdb(tmp_path / "in", "r0"), tmp_path / "work"
    work.mkdir()
    done = subprocess.run([sys.executable, str(REPO / "predict.py"), f"model_uri={standin_model()}",
                           f"input={record}", f"output={tmp_path / 'p.csv'}"], cwd=work, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(work.iterdir()) == []  # no outputs/ folder, no log file


def test_a_partial_file_left_behind_needs_resume(tmp_path, standin_model, write_wfdb):
    record = write_wfdb(tmp_path / "in", "r0")
    (tmp_path / "out.csv.partial").write_text("path\n")
    with pytest.raises(InputError, match="pass resume=true"):
        predict(standin_model(), record, tmp_path / "out.csv")


def test_sigterm_keeps_the_scored_rows_and_resume_scores_only_the_rest(tmp_path, standin_model, write_wfdb):
    for i in range(8):
        write_wfdb(tmp_path / "in", f"r{i}", make_signal(1000, 100, seed=i))
    out, partial, model = tmp_path / "out.csv", tmp_path / "out.csv.partial", standin_model()
    command = [sys.executable, str(REPO / "predict.py"), f"model_uri={model}", f"input={tmp_path / 'in'}",
               f"output={out}", "batch_size=1"]  # fmt: skip
    env = {**os.environ, "ECG_MI_STANDIN_DELAY_S": "0.5"}
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not partial.exists() or len(partial.read_text().splitlines()) < 3):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and not out.exists()
    kept = pd.read_csv(partial)
    assert 2 <= len(kept) < 8 and (kept["status"] == "ok").all()
    done = subprocess.run(command + ["resume=true"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(kept)} resumed from out.csv.partial" in done.stdout
    table = pd.read_csv(out)
    assert sorted(table["record_id"]) == [f"r{i}" for i in range(8)] and not partial.exists()
    resumed = table.set_index("path").loc[kept["path"], "prob_mi"].to_numpy()
    np.testing.assert_array_equal(resumed, kept["prob_mi"].to_numpy())  # every digit kept


@pytest.mark.parametrize("name", ["with space", "comma,name", "brackets[1]", "equals=sign", "quote'and\"double", "paren(1)"])
def test_any_file_name_can_be_scored_through_an_input_list(tmp_path, run_cli, standin_model, write_wfdb, name):
    record = write_wfdb(tmp_path / "in", "r0")
    weird = tmp_path / "in" / f"{name}.hea"
    weird.write_text(Path(f"{record}.hea").read_text())  # the header names r0.dat, which stays beside it
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{weird}\n")
    done = run_cli("predict.py", f"model_uri={standin_model()}", f"input_list={listing}", f"output={tmp_path / 'p.csv'}")
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert table["path"].tolist() == [str(weird)] and table["status"].tolist() == ["ok"]


def test_identical_signals_under_two_names_are_flagged(tmp_path, standin_model, write_wfdb):
    write_wfdb(tmp_path / "in", "a", make_signal(1000, 100, seed=1))
    write_wfdb(tmp_path / "in", "b", make_signal(1000, 100, seed=1))
    write_wfdb(tmp_path / "in", "c", make_signal(1000, 100, seed=2))
    table = predict(standin_model(), tmp_path / "in", tmp_path / "out.csv").set_index("record_id")
    assert table.loc["b", "duplicate_of"] == str(tmp_path / "in" / "a.hea")
    assert table.loc["a", "duplicate_of"] == "" and table.loc["c", "duplicate_of"] == ""
    assert table.loc["a", "signal_sha256"] == table.loc["b", "signal_sha256"] != table.loc["c", "signal_sha256"]



def test_prevalence_moves_p_mi_to_the_site_and_keeps_the_decisions(tmp_path, standin_model, write_wfdb):
    for i in range(4):
        write_wfdb(tmp_path / "in", f"r{i}", make_signal(1000, 100, seed=i) + 0.1 * i)
    model = standin_model()
    plain = predict(model, tmp_path / "in", tmp_path / "a.csv", "train_prevalence=0.333")
    shifted = predict(model, tmp_path / "in", tmp_path / "b.csv", "train_prevalence=0.333", "prevalence=0.15")
    np.testing.assert_allclose(shifted["prob_mi"], prior_shift(plain["prob_mi"].to_numpy(), 0.333, 0.15))
    assert shifted["pred_mi"].tolist() == plain["pred_mi"].tolist()


def test_prevalence_needs_the_packaged_one(tmp_path, standin_model, write_wfdb):
    record = write_wfdb(tmp_path / "in", "r0")
    with pytest.raises(ConfigError, match="pass train_prevalence="):
        predict(standin_model(), record, tmp_path / "out.csv", "prevalence=0.15")


@pytest.mark.parametrize(("uri", "run_id"), [("runs:/abc", "abc"), ("runs:/abc/", "abc"), ("runs:/abc/model", "abc"),
                                             ("runs:/abc/resnet-fold0", None), ("models:/ecg-mi@champion", None)])  # fmt: skip
def test_a_runs_uri_names_the_model_that_run_logged(uri, run_id):
    from ecg_mi.predict import run_of

    assert run_of(uri) == run_id


def test_reading_workers_give_the_rows_of_one_process(tmp_path, standin_model, mixed_folder, write_wfdb):
    for i in range(6):
        write_wfdb(mixed_folder / "more", f"r{i}", make_signal(1000, 100, seed=i) + 0.05 * i)
    tables, model = [], standin_model()
    for workers in (0, 2):
        with pytest.raises(DataError, match="1 of 9 files"):  # junk.bin, in either
            predict(model, mixed_folder, tmp_path / f"{workers}.csv", "batch_size=2", f"workers={workers}")
        tables.append(pd.read_csv(tmp_path / f"{workers}.csv", keep_default_na=False))
    pd.testing.assert_frame_equal(tables[0], tables[1])


@pytest.mark.parametrize(("setting", "n_files", "expected"), [("auto", 33, len(os.sched_getaffinity(0))),
                         ("auto", 32, 0), (3, 100, 3), (0, 100, 0)])  # fmt: skip
def test_reading_workers_start_only_past_one_batch(setting, n_files, expected):
    assert reading_workers(setting, n_files, batch_records=32) == expected
