"""The HTTP face of the service (FastAPI): submit, list, poll, cancel, fetch reports, artifacts and bundles, and a
few server-rendered pages. It only writes job records, saves uploads and enqueues ids; workers run the jobs."""

import dataclasses
import json
import re
import time
from pathlib import Path
from typing import List, Optional

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from tfyolo.errors import one_line
from tfyolo.jobs.report import JOB_REPORT_JSON, JOB_REPORT_MD
from tfyolo.jobs.spec import KINDS
from tfyolo.service.redaction import Redactor
from tfyolo.service.security import BodyLimit, derived_secret, token_matches
from tfyolo.service.store import FINAL_STATES, ArtifactStore, JobStore, registered_datasets
from tfyolo.service.submission import Submission, UploadRefused, submit
from tfyolo.service.worker import LIVE_WORKER_SECONDS

MAX_UPLOAD_BYTES = 512 << 20
MAX_PENDING_JOBS = 100
# A request carries at most two files (model, calibration zip), each up to the upload limit, and a few form fields.
FORM_FIELDS_BYTES = 1 << 20
COOKIE = "tfyolo_session"
# Reachable without the token: the liveness probe, and the page where a browser hands the token over.
PUBLIC_PATHS = ("/healthz", "/login")
# What a browser session (the cookie) may post: the pages' own forms, each carrying the form secret. Everything else
# it may only read; the API's writes need the bearer header, which another site's page cannot send.
FORM_PATHS = re.compile(r"^/(submit|ui/jobs/[^/]+/cancel)$")


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    data_dir: str
    token: str
    broker: Optional[str] = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    # Jobs queued or running at once; a submission past it is a 429. Each job holds its uploads on disk until it
    # ends, and a client could otherwise fill the queue and the disk (1000 jobs were accepted in 33 s).
    max_pending_jobs: int = MAX_PENDING_JOBS


def create_app(config, huey=None):
    """The FastAPI app over `config.data_dir`; `huey` is the queue to enqueue on (built from the config if None)."""
    from tfyolo.service.queue import make_huey

    store, artifacts = JobStore(config.data_dir), ArtifactStore(config.data_dir)
    huey = huey or make_huey(config.data_dir, config.broker)
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    session, form_secret = derived_secret(config.token, "session"), derived_secret(config.token, "form")

    def page(request, name, context, status_code=200):
        """A page; its forms carry the form secret, which a page of another site cannot read (CSRF)."""
        context = {**context, "form_secret": form_secret}
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def check_form(secret):
        if not token_matches(form_secret, secret):
            raise HTTPException(403, "this form did not come from this server's pages (its form secret is wrong)")

    app = FastAPI(
        title="tfyolo conversion service",
        description="Submit a YOLO detector and calibration images; get verified TFLite artifacts, a report and an "
        "edge bundle. Every endpoint but /healthz needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=2 * config.max_upload_bytes + FORM_FIELDS_BYTES)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error):
        # FastAPI's own answer repeats each rejected value; a client's value may be a server path it is probing.
        fields = [
            {"field": ".".join(str(part) for part in item.get("loc", ())[1:]), "problem": item.get("msg", "")}
            for item in error.errors()
        ]
        return JSONResponse({"detail": fields}, status_code=422)

    # Swagger UI's scripts come from a pinned package, not a CDN: /docs works on a network without the internet.
    import swagger_ui_bundle

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="docs-assets")

    @app.middleware("http")
    async def require_token(request, call_next):
        if request.url.path in PUBLIC_PATHS:
            return await call_next(request)
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and token_matches(config.token, header[7:]):
            return await call_next(request)
        if token_matches(session, request.cookies.get(COOKIE, "")):
            if request.method in ("GET", "HEAD") or FORM_PATHS.match(request.url.path):
                return await call_next(request)
            return JSONResponse(
                {"detail": "a browser session may only post the pages' forms; the API needs the bearer header"},
                status_code=403,
            )
        if "text/html" in request.headers.get("accept", "") and request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        return JSONResponse(
            {"detail": "missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def accept(submission, model, calibration):
        """Stores the uploads and the job's record and enqueues it; a refusal is the HTTP error it names."""
        try:
            job_id = submit(store, config, submission, model, calibration)
        except UploadRefused as error:
            raise HTTPException(error.status, error.detail)
        huey.run_job_task(job_id)
        return job_id

    def record_or_404(job_id):
        try:
            store.job_dir(job_id)
        except KeyError:
            raise HTTPException(404, f"job {job_id!r}: not a job id.")
        record = store.get(job_id)
        if record is None:
            raise HTTPException(404, f"job {job_id}: no such job.")
        return record

    def redactor(job_id):
        return Redactor(config.data_dir, registered_datasets(config.data_dir), store.job_dir(job_id))

    def public(record):
        keys = ("id", "state", "stage", "progress", "created", "updated", "error", "attempts", "worker", "spec")
        values = {key: record[key] for key in keys} | {"kind": record["spec"].get("kind", "convert")}
        return redactor(record["id"]).value(values)

    def events_of(job_id):
        return redactor(job_id).value(store.events(job_id))

    def report_of(job_id):
        record_or_404(job_id)
        path = store.work_dir(job_id) / JOB_REPORT_JSON
        if not path.is_file():
            raise HTTPException(404, f"job {job_id}: no report yet.")
        return redactor(job_id).value(json.loads(path.read_text()))

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        problems, live = [], []
        try:
            store.list(limit=1)
            live = store.live_workers(LIVE_WORKER_SECONDS)
            if not live:
                problems.append(f"no live worker (none sent a heartbeat in the last {LIVE_WORKER_SECONDS:.0f} s)")
        except Exception as error:
            problems.append(f"job database: {one_line(error)}")
        try:
            pending = huey.pending_count()
        except Exception as error:
            pending = None
            problems.append(f"queue: {one_line(error)}")
        body = {"ready": not problems, "pending": pending, "workers": len(live), "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.post("/jobs", status_code=201)
    def post_job(
        model: UploadFile = File(...),
        calibration: Optional[UploadFile] = File(None),
        kind: str = Form("convert"),
        recipes: List[str] = Form([]),
        auto: bool = Form(False),
        max_drop: Optional[float] = Form(None),
        calibration_dataset: Optional[str] = Form(None),
        data_dataset: Optional[str] = Form(None),
        threads: int = Form(2),
        bundle: bool = Form(True),
        target: Optional[str] = Form(None),
    ):
        submission = Submission(
            kind=kind,
            recipes=tuple(recipes),
            auto=auto,
            max_drop=max_drop,
            calibration_dataset=calibration_dataset,
            data_dataset=data_dataset,
            threads=threads,
            bundle=bundle,
            target=target or None,
        )
        job_id = accept(submission, model, calibration)
        return public(store.get(job_id))

    @app.get("/jobs")
    def list_jobs(limit: int = 100):
        return [public(record) for record in store.list(limit=min(max(limit, 1), 1000))]

    @app.get("/jobs/{job_id}")
    def get_job(job_id: str):
        return public(record_or_404(job_id)) | {"events": events_of(job_id)}

    @app.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str):
        record_or_404(job_id)
        return {"id": job_id, "state": store.cancel(job_id)}

    @app.get("/jobs/{job_id}/report")
    def get_report(job_id: str):
        return report_of(job_id)

    @app.get("/jobs/{job_id}/report.md", response_class=PlainTextResponse)
    def get_report_markdown(job_id: str):
        report_of(job_id)
        text = redactor(job_id).text((store.work_dir(job_id) / JOB_REPORT_MD).read_text())
        return PlainTextResponse(text, media_type="text/markdown")

    @app.get("/jobs/{job_id}/bundle.zip")
    def get_bundle(job_id: str):
        report = report_of(job_id)
        bundle = next((a for a in report["artifacts"] if a["kind"] == "bundle"), None)
        path = bundle and artifacts.path(bundle["sha256"])
        if not path:
            raise HTTPException(404, f"job {job_id}: no bundle (no artifact passed the gate, or bundle=false).")
        return FileResponse(path, media_type="application/zip", filename=f"{job_id}_bundle.zip")

    @app.get("/jobs/{job_id}/plots/{name}.png")
    def get_plot(job_id: str, name: str):
        record_or_404(job_id)
        if name not in ("latency", "pr"):
            raise HTTPException(404, f"plot {name!r}: expected latency or pr.")
        path = store.job_dir(job_id) / f"{name}.png"
        if not path.is_file():
            raise HTTPException(404, f"job {job_id}: no {name} plot.")
        return FileResponse(path, media_type="image/png")

    @app.get("/artifacts/{sha256}")
    def get_artifact(sha256: str):
        path = artifacts.path(sha256)
        if path is None:
            raise HTTPException(404, f"artifact {sha256[:80]!r}: not stored here (expected 64 hex digits).")
        return FileResponse(path, media_type="application/octet-stream", filename=f"{sha256}.bin")

    @app.get("/datasets")
    def get_datasets():
        return sorted(registered_datasets(config.data_dir))

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="tfyolo conversion service - API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    # === Pages ===

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request):
        return page(request, "login.html", {"error": None})

    @app.post("/login")
    def login(request: Request, token: str = Form(...)):
        if not token_matches(config.token, token):
            return page(request, "login.html", {"error": "wrong token"}, status_code=401)
        response = RedirectResponse("/", status_code=303)
        # The cookie is derived from the token, never the token itself: a leaked cookie does not open the API.
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    def job_list_page(request: Request):
        return page(request, "jobs.html", {"jobs": [public(r) for r in store.list(200)]})

    @app.get("/submit", response_class=HTMLResponse)
    def submit_page(request: Request):
        context = {"kinds": sorted(KINDS), "datasets": sorted(registered_datasets(config.data_dir)), "error": None}
        return page(request, "submit.html", context)

    @app.post("/submit")
    def submit_form(
        request: Request,
        model: UploadFile = File(...),
        calibration: Optional[UploadFile] = File(None),
        kind: str = Form("convert"),
        recipes: str = Form(""),
        auto: bool = Form(False),
        max_drop: Optional[str] = Form(None),
        calibration_dataset: Optional[str] = Form(None),
        data_dataset: Optional[str] = Form(None),
        form_secret_sent: str = Form("", alias="form_secret"),
    ):
        check_form(form_secret_sent)
        try:
            drop = float(max_drop) if max_drop not in (None, "") else None
            submission = Submission(
                kind=kind,
                recipes=(recipes,),
                auto=auto,
                max_drop=drop,
                calibration_dataset=calibration_dataset or None,
                data_dataset=data_dataset or None,
            )
            job_id = accept(submission, model, calibration)
        except (HTTPException, ValueError) as error:
            context = {
                "kinds": sorted(KINDS),
                "datasets": sorted(registered_datasets(config.data_dir)),
                "error": getattr(error, "detail", str(error)),
            }
            return page(request, "submit.html", context, status_code=422)
        return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)

    @app.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str):
        record = record_or_404(job_id)
        path = store.work_dir(job_id) / JOB_REPORT_JSON
        report = report_of(job_id) if path.is_file() else None
        folder = store.job_dir(job_id)
        context = {
            "job": public(record),
            "events": events_of(job_id),
            "report": report,
            "plots": [name for name in ("latency", "pr") if (folder / f"{name}.png").is_file()],
            "final": record["state"] in FINAL_STATES,
            "now": time.time(),
        }
        return page(request, "job.html", context)

    @app.post("/ui/jobs/{job_id}/cancel")
    def cancel_from_page(job_id: str, form_secret_sent: str = Form("", alias="form_secret")):
        check_form(form_secret_sent)
        record_or_404(job_id)
        store.cancel(job_id)
        return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)

    return app
