"""ecg_mi.serve: the packaged model behind HTTP — a real server process on loopback, real requests."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from test_server import _answers, _stop_group, _wait_until, free_port

from conftest import REPO, make_signal, standin_info, standin_python_model


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """The base URL of ``python -m ecg_mi.serve`` serving a stand-in network (threshold 0.5),
    one server for the module's tests."""
    import mlflow

    folder = tmp_path_factory.mktemp("serve")
    model, port, log = folder / "model", free_port(), folder / "serve.log"
    mlflow.pyfunc.save_model(str(model), python_model=standin_python_model(), pip_requirements=["numpy"],
                             metadata={"ecg_mi": standin_info()})  # fmt: skip
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "ecg_mi.serve", "--model-uri", str(model),
                                    "--port", str(port)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _answers(f"{url}/ping"), "ecg_mi.serve", process, log)
        yield url
    finally:
        _stop_group(process)


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def windows(n: int = 2) -> np.ndarray:
    return np.stack([make_signal(1000, 100, seed=i) for i in range(n)]).astype(np.float32)


def test_a_valid_request_gets_the_models_probabilities(server):
    x = windows()
    status, answer = post(server, json.dumps({"inputs": x.tolist()}).encode())
    assert status == 200
    expected = 1 / (1 + np.exp(-4 * x.mean(axis=(1, 2))))  # the stand-in's P(MI)
    np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-5)
    assert answer["pred_mi"] == [int(p >= 0.5) for p in expected]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"instances": []}', 'the body must be a JSON object {"inputs"'),
        (json.dumps({"inputs": [[[0.0] * 10] * 12]}).encode(), "inputs: shape [1, 12, 10]; expected [N, 12, 1000]"),
        (json.dumps({"inputs": [[["a"] * 1000] * 12]}).encode(), "inputs: not a rectangular array of numbers"),
        (b'{"inputs": [' + b",".join([b"[" + b",".join([b"[" + b",".join([b"NaN"] * 1000) + b"]"] * 12) + b"]"]) + b"]}",
         "finite: window 0"),
        (json.dumps({"inputs": (windows(1) * 30_000).tolist()}).encode(), "amplitude: window 0: lead"),
        (json.dumps({"inputs": np.zeros((1, 12, 1000)).tolist()}).encode(), "amplitude: window 0: largest lead"),
        (json.dumps({"inputs": windows(1).tolist(), "prevalence": 2}).encode(), "prevalence=2: must be a fraction"),
    ],
    ids=["not-json", "no-inputs", "wrong-shape", "not-numbers", "nan", "30000-mV", "all-flat", "bad-prevalence"],
)  # fmt: skip
def test_a_bad_request_is_400_with_one_line_and_no_stack_trace(server, body, message):
    status, answer = post(server, body)
    assert status == 400 and set(answer) == {"error"}
    assert answer["error"].startswith(message) and "\n" not in answer["error"] and "Traceback" not in answer["error"]


def test_prevalence_moves_the_probabilities(server):
    from ecg_mi.calibration import prior_shift

    x = windows()
    _, plain = post(server, json.dumps({"inputs": x.tolist()}).encode())
    status, shifted = post(server, json.dumps({"inputs": x.tolist(), "prevalence": 0.15}).encode())
    assert status == 400 and "pass train_prevalence" in shifted["error"]  # the stand-in packs no prevalence
    assert len(plain["predictions"]) == 2 and prior_shift(np.array([0.5]), 0.5, 0.5)[0] == pytest.approx(0.5)


def test_make_serve_without_a_model_says_how():
    done = subprocess.run(["make", "-s", "serve"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and "error: MODEL: missing; make serve MODEL=" in done.stderr
