"""The annotation web app (FastAPI): sign-in, one candidate group per page, rating, admin view, export.

Run it with ``dyadic feedback serve --db URL``. Everything except the sign-in page, its static assets, the
favicon and ``/healthz`` needs a token: ``Authorization: Bearer TOKEN`` for programs, or, for browsers, the
HttpOnly, SameSite=Strict cookie holding the session that signing in opens (signing out ends it on the
server; see :mod:`human_feedback.auth`). Cookie-authenticated requests that change state must also carry
``X-Dyadic-Request: 1`` (a custom header cannot be sent cross-site without CORS, which is not enabled), so
other sites cannot submit on an annotator's behalf.

Annotators see only their own pages, through per-page item ids and videos served blinded (no validators,
one size per group: :mod:`human_feedback.blinding`); the candidates' sources and policies never leave the
server, and a page is accepted only once its videos were fetched (:mod:`human_feedback.viewing`). Admins
see progress, statistics, agreement and watch times, and export.
"""

# No `from __future__ import annotations`: FastAPI must see the dependency types defined in closures.
import io
import logging
import zipfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from human_feedback import service
from human_feedback.auth import (
    SESSION_HOURS,
    Principal,
    TokenRefused,
    authenticate,
    check_token,
    close_session,
    open_session,
)
from human_feedback.criteria import rubric
from human_feedback.media import MediaPathError, resolve_media
from human_feedback.middleware import GuardMiddleware
from human_feedback.store import Campaign, Store
from human_feedback.videos import served_size, video_response
from human_feedback.viewing import record_fetch

log = logging.getLogger("human_feedback.server")
STATIC_DIR = Path(__file__).parent / "static"  # CSS and scripts only: public, hold no data
PAGES_DIR = Path(__file__).parent / "pages"  # HTML pages: served by routes that check the token
COOKIE = "dyadic_feedback"
CSRF_HEADER = "x-dyadic-request"
DEFAULT_MAX_BODY = 64 * 1024


# --------------------------------------------------------------------------------------------------------
# Request and response models


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=8, max_length=256)


class SignedIn(BaseModel):
    role: str
    name: str


class RatingIn(BaseModel):
    """Ratings of one item on a page (integers 1-5; strings, floats and booleans are refused)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    item_id: str = Field(min_length=1, max_length=64)
    empathy: int = Field(ge=1, le=5)
    appropriateness: int = Field(ge=1, le=5)
    engagement: int = Field(ge=1, le=5)
    naturalness: int = Field(ge=1, le=5)
    watched_ms: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)


class SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    submission_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="client-generated, one per page")
    ratings: list[RatingIn] = Field(min_length=1, max_length=64)
    time_spent_ms: int | None = Field(default=None, ge=0, le=7 * 24 * 3600 * 1000)


class SubmitOut(BaseModel):
    submission_id: str
    assignment_id: str
    ratings: int
    duplicate: bool
    received_at: str


class ItemOut(BaseModel):
    item_id: str
    label: str
    video_url: str | None
    ratings: dict[str, int] | None


class ProgressOut(BaseModel):
    done: int
    remaining: int
    groups: int


class AssignmentOut(BaseModel):
    assignment_id: str
    campaign: str
    instructions: str
    clip_duration_s: float
    transcript: list[tuple[float, float, str]]
    items: list[ItemOut]
    completed: bool
    progress: ProgressOut
    require_full_view: bool
    require_watch_time: bool


class NextOut(BaseModel):
    assignment: AssignmentOut | None
    message: str


def _assignment_out(page: service.AssignmentPage) -> AssignmentOut:
    return AssignmentOut(
        assignment_id=page.assignment_id,
        campaign=page.campaign,
        instructions=page.instructions,
        clip_duration_s=page.clip_duration_s,
        transcript=page.transcript,
        items=[
            ItemOut(
                item_id=i.item_id,
                label=i.label,
                ratings=i.ratings,
                video_url=f"/media/{page.assignment_id}/{i.item_id}.mp4" if i.has_video else None,
            )
            for i in page.items
        ],
        completed=page.completed,
        progress=ProgressOut(**page.progress),
        require_full_view=page.require_full_view,
        require_watch_time=page.require_watch_time,
    )


# --------------------------------------------------------------------------------------------------------
# Authentication


class AuthError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _token_of(request: Request) -> tuple[str | None, bool]:
    """The request's token and whether it came from the cookie."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def create_app(
    store: Store | str,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    secure_cookies: bool = False,
    session_hours: float = SESSION_HOURS,
) -> FastAPI:
    """Build the annotation app on a store (or a database URL).

    Args:
        store: the feedback store, or a URL / SQLite path to open (it must exist).
        max_body: the largest request body accepted, in bytes.
        secure_cookies: mark the sign-in cookie ``Secure`` (serve over HTTPS, e.g. behind a proxy).
        session_hours: how long a browser stays signed in (never longer than its token is valid).
    """
    store = store if isinstance(store, Store) else Store(store)
    app = FastAPI(title="Dyadic listener feedback", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.add_middleware(GuardMiddleware, max_body=max_body)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_error_handlers(app)

    def principal(request: Request) -> Principal:
        token, from_cookie = _token_of(request)
        try:
            found = check_token(store, token)
        except TokenRefused as e:
            raise AuthError(401, str(e)) from None
        if from_cookie and request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER) != "1":
            raise AuthError(403, f"missing {CSRF_HEADER} header on a cookie-authenticated request")
        return found

    def annotator(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.annotator_id is None:
            raise AuthError(403, "this is an annotator page; admins use /admin")
        return who

    def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.is_admin:
            raise AuthError(403, "admin token required")
        return who

    _add_pages(app, store)
    _add_session_api(app, store, principal, (secure_cookies, session_hours))
    _add_annotator_api(app, store, principal, annotator)
    _add_admin_api(app, store, admin)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> Response:
        if request.method == "GET" and not request.url.path.startswith(("/api/", "/media/")):
            return (
                RedirectResponse("/signin", status_code=303)
                if exc.status == 401
                else PlainTextResponse(exc.detail, status_code=exc.status)
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(service.FeedbackError)
    async def _feedback(_: Request, exc: service.FeedbackError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            found = err.get("input")
            shown = "" if isinstance(found, (dict, list)) or found is None else f" (found {found!r})"
            problems.append(f"{where or 'body'}: {err.get('msg')}{shown}")
        return JSONResponse({"detail": "; ".join(problems[:10]), "errors": problems}, status_code=422)


def _add_pages(app: FastAPI, store: Store) -> None:
    def page(name: str) -> FileResponse:
        return FileResponse(PAGES_DIR / name, media_type="text/html", headers={"cache-control": "no-store"})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        # Browsers ask for /favicon.ico whatever the page says; answer with the same SVG.
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/signin", include_in_schema=False)
    def signin_page() -> FileResponse:
        return page("signin.html")

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        token, _ = _token_of(request)
        who = authenticate(store, token)
        if who is None:
            return RedirectResponse("/signin", status_code=303)
        return RedirectResponse("/admin" if who.is_admin else "/annotate", status_code=303)

    @app.get("/annotate", include_in_schema=False)
    def annotate_page(request: Request) -> Response:
        who = _page_principal(store, request)
        if who.is_admin:
            return RedirectResponse("/admin", status_code=303)
        return page("annotate.html")

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request) -> Response:
        if not _page_principal(store, request).is_admin:
            raise AuthError(403, "admin token required")
        return page("admin.html")


def _page_principal(store: Store, request: Request) -> Principal:
    token, _ = _token_of(request)
    who = authenticate(store, token)
    if who is None:
        raise AuthError(401, "sign in")
    return who


def _add_session_api(app: FastAPI, store: Store, principal: Any, cookies: tuple[bool, float]) -> None:
    Who = Annotated[Principal, Depends(principal)]
    secure, session_hours = cookies

    @app.post("/api/session", response_model=SignedIn)
    def sign_in(body: SignIn, response: Response) -> SignedIn:
        try:
            session_token, who, seconds = open_session(store, body.token, hours=session_hours)
        except TokenRefused as e:
            raise AuthError(401, str(e)) from None
        response.set_cookie(
            COOKIE, session_token, httponly=True, samesite="strict", secure=secure, max_age=seconds, path="/"
        )
        return SignedIn(role=who.role, name=who.name)

    @app.delete("/api/session")
    def sign_out(who: Who, response: Response) -> dict[str, Any]:
        """Ends the browser's session on the server; a bearer token stays valid (revoke it with
        `dyadic feedback revoke`)."""
        if who.session_id is not None:
            close_session(store, who.session_id)
        response.delete_cookie(COOKIE, path="/")
        return {"ok": True, "session_ended": who.session_id is not None}


def _add_annotator_api(app: FastAPI, store: Store, principal: Any, annotator: Any) -> None:
    Who = Annotated[Principal, Depends(principal)]
    Annotator_ = Annotated[Principal, Depends(annotator)]

    @app.get("/api/me")
    def me(who: Who) -> dict[str, Any]:
        if who.annotator_id is None:
            return {"role": who.role, "name": who.name, "campaigns": []}
        return {
            "role": who.role,
            "name": who.name,
            "campaigns": service.annotator_campaigns(store, who.annotator_id),
        }

    @app.get("/api/rubric")
    def get_rubric(_: Who) -> list[dict[str, Any]]:
        return rubric()

    @app.post("/api/campaigns/{campaign}/next", response_model=NextOut)
    def next_page(campaign: str, who: Annotator_) -> NextOut:
        assert who.annotator_id is not None
        page = service.next_assignment(store, who.annotator_id, campaign)
        if page is None:
            return NextOut(assignment=None, message="Nothing left to rate in this campaign. Thank you!")
        return NextOut(assignment=_assignment_out(page), message="")

    @app.get("/api/assignments/{assignment_id}", response_model=AssignmentOut)
    def get_page(assignment_id: str, who: Annotator_) -> AssignmentOut:
        assert who.annotator_id is not None
        return _assignment_out(service.get_assignment(store, who.annotator_id, assignment_id))

    @app.post("/api/assignments/{assignment_id}/submit", response_model=SubmitOut)
    def submit(assignment_id: str, body: SubmitIn, who: Annotator_) -> SubmitOut:
        assert who.annotator_id is not None
        ack = service.submit(
            store,
            who.annotator_id,
            assignment_id,
            submission_id=body.submission_id,
            ratings=[r.model_dump() for r in body.ratings],
            time_spent_ms=body.time_spent_ms,
        )
        return SubmitOut(**ack.__dict__)

    @app.get("/api/campaigns/{campaign}/my-ratings")
    def my_ratings(campaign: str, who: Annotator_) -> list[dict[str, Any]]:
        assert who.annotator_id is not None
        return service.own_ratings(store, who.annotator_id, campaign)

    @app.get("/media/{assignment_id}/{item}.mp4")
    def media(assignment_id: str, item: str, who: Who, request: Request) -> Response:
        video = service.open_media(store, None if who.is_admin else who.annotator_id, assignment_id, item)
        try:
            path = resolve_media(video.root, video.stored)
        except MediaPathError as e:
            log.warning("refused video path: %s", e)
            raise AuthError(403, "video path refused: it leaves the campaign directory") from None
        except FileNotFoundError:
            raise service.NotFound("video file missing on the server") from None
        if not who.is_admin:
            record_fetch(store, video.assignment_id, video.candidate_id)
        return video_response(path, served_size(video.root, video.group), request.headers.get("range"))


def _add_admin_api(app: FastAPI, store: Store, admin: Any) -> None:
    from human_feedback import analysis, export, study
    from human_feedback.criteria import parse_weights

    Admin = Annotated[Principal, Depends(admin)]

    def campaign_or_404(name: str) -> str:
        with store.read() as session:
            try:
                store.campaign(session, name)
            except LookupError:
                raise service.NotFound(f"no campaign {name!r}") from None
        return name

    @app.get("/api/admin/campaigns")
    def campaigns(_: Admin) -> list[dict[str, Any]]:
        with store.read() as session:
            names = list(session.scalars(select(Campaign.name).order_by(Campaign.id)))
        return [{"name": n} for n in names]

    @app.get("/api/admin/campaigns/{name}")
    def overview(name: str, _: Admin) -> dict[str, Any]:
        return analysis.campaign_overview(store, campaign_or_404(name))

    @app.get("/api/admin/campaigns/{name}/mos")
    def mos(name: str, _: Admin) -> dict[str, Any]:
        rows = analysis.load_ratings(store, campaign_or_404(name))
        return {"rows": study.mos_table(rows, order=analysis.method_order(store, name))}

    @app.get("/api/admin/campaigns/{name}/ratings.csv")
    def ratings_csv(name: str, _: Admin) -> Response:
        text = export.ratings_csv(store, campaign_or_404(name))
        return Response(
            text,
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="{name}-ratings.csv"'},
        )

    @app.get("/api/admin/campaigns/{name}/export.zip")
    def export_zip(
        name: str,
        _: Admin,
        weights: Annotated[str | None, Query(max_length=200)] = None,
        mode: Annotated[str, Query(pattern="^(best-worst|all-pairs)$")] = "best-worst",
        min_margin: Annotated[float, Query(ge=0, le=4)] = 0.0,
        min_ratings: Annotated[int | None, Query(ge=1, le=1000)] = None,
        exclude_flagged: bool = False,
    ) -> Response:
        import tempfile

        try:
            parsed = parse_weights(weights)
        except ValueError as e:
            raise service.Invalid(str(e)) from None
        with tempfile.TemporaryDirectory() as tmp:
            result = export.export_preferences(
                store,
                campaign_or_404(name),
                Path(tmp) / "prefs",
                weights=parsed,
                mode=mode,
                min_margin=min_margin,
                min_ratings=min_ratings,
                exclude_flagged=exclude_flagged,
            )
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(result.dataset.path.iterdir()):
                    zf.write(f, f"{name}-preferences/{f.name}")
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={
                "content-disposition": f'attachment; filename="{name}-preferences.zip"',
                "x-pairs": str(result.report.pairs),
            },
        )


def serve(
    url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    secure_cookies: bool = False,
    session_hours: float | None = None,
) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    app = create_app(Store(url), secure_cookies=secure_cookies, session_hours=session_hours or SESSION_HOURS)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m human_feedback.server --db URL [--host H] [--port P]`` (what ``dyadic feedback serve`` runs)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m human_feedback.server", description="the annotation app")
    parser.add_argument("--db", required=True, help="SQLAlchemy URL or SQLite path of the feedback store")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port")
    parser.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (HTTPS)")
    args = parser.parse_args(argv)
    serve(args.db, host=args.host, port=args.port, secure_cookies=args.secure_cookies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
