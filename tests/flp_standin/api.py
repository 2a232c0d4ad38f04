"""A stand-in for FasterLivePortrait's ``api.py`` (FastAPI there, aiohttp here): same request, same reply.

The contract copied (from reading warmshao/FasterLivePortrait ``api.py``, not its code):

* ``POST /predict/``, multipart: files ``source_image``, ``driving_video`` (and ``driving_pickle``,
  unused here) plus these form fields, every one required (FastAPI ``Form(...)``: a missing or
  unparsable one is HTTP 422): ``flag_is_animal``, ``flag_pickle``, ``flag_relative_input``,
  ``flag_do_crop_input``, ``flag_remap_input``, ``driving_multiplier``, ``flag_stitching``,
  ``flag_crop_driving_video_input``, ``flag_video_editing_head_rotation``, ``scale``, ``vx_ratio``,
  ``vy_ratio``, ``scale_crop_driving_video``, ``vx_ratio_crop_driving_video``,
  ``vy_ratio_crop_driving_video``, ``driving_smooth_observation_variance``.
* uploads are saved under ``results/temp-<timestamp>/<their filename>``, the run writes into
  ``results/<timestamp>/`` exactly as ``run.py`` does, and the reply is that folder zipped
  (``application/zip``, ``attachment; filename=output.zip``); both folders are then removed. No
  face in the picture: the folder stays empty and the zip is empty (HTTP 200).
* listens on ``FLIP_IP`` (127.0.0.1) and ``FLIP_PORT`` (9871), and only once its models are
  loaded: the port opens late (here after ``FLP_STANDIN_START_S``, default 1 s).
* one request at a time (a synchronous FastAPI handler on one GPU): others wait their turn.

Unlike FLP, results go under ``FLP_STANDIN_HOME`` (default: the working directory), not beside
this file, so tests never write into the repository. The knobs of ``run.py`` apply.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import io
import os
import shutil
import time
import zipfile
from pathlib import Path

from aiohttp import web

_spec = importlib.util.spec_from_file_location("flp_standin_run", Path(__file__).with_name("run.py"))
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)

BOOLS = (
    "flag_is_animal",
    "flag_pickle",
    "flag_relative_input",
    "flag_do_crop_input",
    "flag_remap_input",
    "flag_stitching",
    "flag_crop_driving_video_input",
    "flag_video_editing_head_rotation",
)
FLOATS = (
    "driving_multiplier",
    "scale",
    "vx_ratio",
    "vy_ratio",
    "scale_crop_driving_video",
    "vx_ratio_crop_driving_video",
    "vy_ratio_crop_driving_video",
    "driving_smooth_observation_variance",
)
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def _invalid(name: str, message: str) -> web.Response:
    return web.json_response({"detail": [{"loc": ["body", name], "msg": message}]}, status=422)


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")


_ONE_AT_A_TIME = asyncio.Lock()


async def predict(request: web.Request) -> web.Response:
    async with _ONE_AT_A_TIME:
        return await _predict(request)


async def openapi(request: web.Request) -> web.Response:
    """FastAPI serves its schema here; a readiness probe reads it."""
    return web.json_response(
        {"openapi": "3.1.0", "info": {"title": "FastAPI", "version": "0.1.0"}, "paths": {"/predict/": {}}}
    )


async def _predict(request: web.Request) -> web.Response:
    form = await request.post()
    for name in BOOLS:
        if name not in form:
            return _invalid(name, "field required")
        if str(form[name]).lower() not in _TRUE | _FALSE:
            return _invalid(name, "value could not be parsed to a boolean")
    for name in FLOATS:
        if name not in form:
            return _invalid(name, "field required")
        try:
            float(str(form[name]))
        except ValueError:
            return _invalid(name, "value is not a valid float")
    result_dir = Path(os.environ.get("FLP_STANDIN_HOME", os.getcwd())) / "results"
    temp_dir = result_dir / f"temp-{_stamp()}"
    temp_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("source_image", "driving_video"):
        field = form.get(name)
        if isinstance(field, web.FileField) and field.filename:
            paths[name] = temp_dir / os.path.basename(field.filename)
            paths[name].write_bytes(field.file.read())
    save_dir = result_dir / _stamp()
    save_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if "source_image" in paths and "driving_video" in paths:
        await asyncio.get_running_loop().run_in_executor(
            None,
            standin.run_with_video,
            str(paths["source_image"]),
            str(paths["driving_video"]),
            str(save_dir),
            lambda line: None,
        )
    standin.record(
        uploads={name: path.name for name, path in paths.items()},
        started=started,
        ended=time.time(),
        driving_has_audio=standin._video_has_audio(str(paths["driving_video"]))
        if "driving_video" in paths
        else None,
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(save_dir.rglob("*")):
            if path.is_file():
                archive.write(path, arcname=str(path.relative_to(save_dir)))
    shutil.rmtree(temp_dir, ignore_errors=True)
    shutil.rmtree(save_dir, ignore_errors=True)
    return web.Response(
        body=buffer.getvalue(),
        content_type="application/zip",
        headers={"Content-Disposition": "attachment; filename=output.zip"},
    )


def make_app() -> web.Application:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/predict/", predict)
    app.router.add_get("/openapi.json", openapi)
    return app


if __name__ == "__main__":
    time.sleep(float(os.environ.get("FLP_STANDIN_START_S", "1")))  # loading the models: no port yet
    web.run_app(
        make_app(),
        host=os.environ.get("FLIP_IP", "127.0.0.1"),
        port=int(os.environ.get("FLIP_PORT", 9871)),
        print=None,
        shutdown_timeout=1.0,
    )
