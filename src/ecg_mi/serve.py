"""``make serve MODEL=<uri>``: a packaged model behind HTTP, on loopback, with the input gate.

``python -m ecg_mi.serve --model-uri models:/ecg-mi@best [--host 127.0.0.1] [--port 5002]``

Routes (JSON):

* ``POST /invocations`` — body ``{"inputs": [[[...12 leads × L samples...]], ...]}`` (MLflow's
  tensor format: float ``[N, 12, L]`` in mV at the model's rate, ``L`` its window); optional
  ``"prevalence": <fraction>`` moves P(MI) to the site's prevalence (``predict.py``'s
  ``prevalence=``). Answers ``{"predictions": [P(MI)...], "pred_mi": [0/1...], "threshold": t}``.
* ``GET /ping`` — ``ok`` once the model is loaded; ``GET /version`` — the packaged metadata.

The input gate is the package's (:mod:`ecg_mi.data.gate`, limits fitted on the training data):
a window it refuses (NaN, amplitude out of the training band, flat or clipped leads) makes the
request a 400 naming the window and the check; nothing of that request is scored.

Every refusal is HTTP 400 with one line, ``{"error": "<what is wrong>"}``: a body that is not
JSON or not such a tensor, a wrong shape, NaN/inf, windows the model's input gate refuses
(:func:`~ecg_mi.data.gate.check_windows`). An unexpected failure is HTTP 500 ``{"error": "internal error (<type>)"}``;
stack traces go to the server's log, never into a response.

Why not ``mlflow models serve``: its error bodies carry the Python stack trace and echo the whole
input into the message, it runs the model without the gate, and it needs the virtual
environment's ``bin/`` on ``PATH`` to find ``uvicorn``. This server loads the same packaged
model (:func:`ecg_mi.predict.load_for_scoring`) and runs uvicorn in-process.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.

import argparse
import logging
import math
import sys
from typing import Any

import numpy as np

from ecg_mi.data.gate import check_windows
from ecg_mi.errors import EcgMiError, InputError
from ecg_mi.predict import PackagedModel, at_prevalence, load_for_scoring, one_line

log = logging.getLogger(__name__)

#: Largest request body read (bytes): 64 records of 10 s at 500 Hz as JSON text are ~40 MB.
MAX_BODY_BYTES = 64 << 20


def parse_inputs(body: Any, model: PackagedModel) -> tuple[np.ndarray, float | None]:
    """The float32 windows ``[N, 12, L]`` and the site prevalence of a request body; InputError
    (Refused for windows the input gate refuses)."""
    if not isinstance(body, dict) or "inputs" not in body:
        raise InputError('the body must be a JSON object {"inputs": [[[...]]]} (float [N, 12, L] in mV)')
    try:
        x = np.asarray(body["inputs"], dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InputError("inputs: not a rectangular array of numbers") from None
    expected = (12, model.window)
    if x.ndim != 3 or x.shape[1:] != expected or x.shape[0] == 0:
        raise InputError(f"inputs: shape {list(x.shape)}; expected [N, 12, {model.window}] "
                      f"({model.window_s:g} s at {model.sample_rate:g} Hz, mV)")  # fmt: skip
    check_windows(x, model.gate)  # the package's input gate: Refused names the window and the check
    prevalence = body.get("prevalence")
    if prevalence is not None and not (isinstance(prevalence, int | float) and 0 < prevalence < 1
                                       and math.isfinite(prevalence)):  # fmt: skip
        raise InputError(f"prevalence={prevalence!r}: must be a fraction in (0, 1)")
    return x, prevalence


def create_app(model: PackagedModel) -> Any:
    """The FastAPI application serving ``model`` (module docstring)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI(title="ecg-mi", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s", request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.get("/ping")
    def ping() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/version")
    def version() -> dict[str, Any]:
        return {k: v for k, v in model.info.items() if isinstance(v, str | int | float | bool | list)}

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        import json

        raw = await request.body()
        try:
            if len(raw) > MAX_BODY_BYTES:
                raise InputError(f"body of {len(raw)} bytes; at most {MAX_BODY_BYTES} (send fewer records per request)")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"the body is not JSON ({one_line(str(exc), 120)})") from None
            x, prevalence = parse_inputs(body, model)
            scorer = at_prevalence(model, prevalence)
            probs = scorer.probabilities(x)
        except EcgMiError as exc:
            return JSONResponse({"error": one_line(str(exc), 300)}, status_code=400)
        return JSONResponse({"predictions": probs.tolist(), "pred_mi": (probs >= scorer.threshold).astype(int).tolist(),
                             "threshold": scorer.threshold})  # fmt: skip

    return app


def main(argv: list[str] | None = None) -> int:
    """Load the model, then serve it until SIGTERM/SIGINT (exit 0 when stopped by a signal)."""
    parser = argparse.ArgumentParser(prog="python -m ecg_mi.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True, help="runs:/<run id>, models:/<name>@<alias>, a folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--tracking-uri", default=None, help="where runs:/ and models:/ resolve")
    args = parser.parse_args(argv)
    try:
        model = load_for_scoring(args.model_uri, args.tracking_uri)
    except EcgMiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    print(f"serving {model.uri} ({model.info.get('model', '?')}) on http://{args.host}:{args.port}/invocations")
    uvicorn.run(create_app(model), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
