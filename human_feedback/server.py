"""The annotation web app (FastAPI): sign-in, one candidate group per page, rating, admin view, export.

Run it with ``dyadic feedback serve --db URL``. Everything except the sign-in page, its static assets and
``/healthz`` needs a token: ``Authorization: Bearer TOKEN`` for programs, or the HttpOnly, SameSite=Strict
cookie set by signing in for browsers. Cookie-authenticated requests that change state must also carry
``X-Dyadic-Request: 1`` (a custom header cannot be sent cross-site without CORS, which is not enabled), so
other sites cannot submit on an annotator's behalf.

Annotators see only their own pages, through per-page item ids and videos; the candidates' sources and
policies never leave the server. Admins see progress, statistics and agreement, and export.
"""

# No `from __future__ import annotations`: FastAPI must see the dependency types defined in closures.
import io
import logging
import zipfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from human_feedback import service
from human_feedback.auth import Principal, authenticate
from human_feedback.criteria import rubric
from human_feedback.media import MediaPathError, resolve_media
from human_feedback.store import Store

log = logging.getLogger("human_feedback.server")
STATIC_DIR = Path(__file__).parent / "static"  # CSS and scripts only: public, hold no data
PAGES_DIR = Path(__file__).parent / "pages"  # HTML pages: served by routes that check the token
COOKIE = "dyadic_feedback"
CSRF_HEADER = "x-dyadic-request"
DEFAULT_MAX_BODY = 64 * 1024
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; media-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


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
    )


# --------------------------------------------------------------------------------------------------------
# Middleware: body size limit and security headers (plain ASGI, cheap on every request)


class GuardMiddleware:
    """Refuses bodies over ``max_body`` bytes with 413 and adds security headers to every response."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if scope["path"].startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(send_with_headers)
            return
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            # Read the (bounded) body up front, so a chunked upload cannot exceed the limit either.
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await self._too_large(send_with_headers)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body too large; the limit is {self.max_body} bytes"}, status_code=413
        )
        await response({"type": "http"}, _no_receive, send)  # type: ignore[arg-type]


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


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
    store: Store | str, *, max_body: int = DEFAULT_MAX_BODY, secure_cookies: bool = False
) -> FastAPI:
    """Build the annotation app on a store (or a database URL).

    Args:
        store: the feedback store, or a URL / SQLite path to open (it must exist).
        max_body: the largest request body accepted, in bytes.
        secure_cookies: mark the sign-in cookie ``Secure`` (serve over HTTPS, e.g. behind a proxy).
    """
    store = store if isinstance(store, Store) else Store(store)
    app = FastAPI(title="Dyadic listener feedback", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.add_middleware(GuardMiddleware, max_body=max_body)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_error_handlers(app)

    def principal(request: Request) -> Principal:
        token, from_cookie = _token_of(request)
        found = authenticate(store, token)
        if found is None:
            raise AuthError(
                401, "sign in with your annotator token" if token is None else "invalid or revoked token"
            )
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
    _add_annotator_api(app, store, principal, annotator, secure_cookies)
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


def _add_annotator_api(app: FastAPI, store: Store, principal: Any, annotator: Any, secure: bool) -> None:
    Who = Annotated[Principal, Depends(principal)]
    Annotator_ = Annotated[Principal, Depends(annotator)]

    @app.post("/api/session", response_model=SignedIn)
    def sign_in(body: SignIn, response: Response) -> SignedIn:
        who = authenticate(store, body.token)
        if who is None:
            raise AuthError(401, "unknown or revoked token; ask the campaign admin for yours")
        response.set_cookie(
            COOKIE,
            body.token,
            httponly=True,
            samesite="strict",
            secure=secure,
            max_age=7 * 24 * 3600,
            path="/",
        )
        return SignedIn(role=who.role, name=who.name)

    @app.delete("/api/session")
    def sign_out(_: Who, response: Response) -> dict[str, bool]:
        response.delete_cookie(COOKIE, path="/")
        return {"ok": True}

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
    def media(assignment_id: str, item: str, who: Who) -> FileResponse:
        media_dir, stored = service.media_for_item(
            store, None if who.is_admin else who.annotator_id, assignment_id, item
        )
        try:
            path = resolve_media(media_dir, stored)
        except MediaPathError as e:
            log.warning("refused video path: %s", e)
            raise AuthError(403, "video path refused: it leaves the campaign directory") from None
        except FileNotFoundError:
            raise service.NotFound("video file missing on the server") from None
        return FileResponse(path, media_type="video/mp4", headers={"cache-control": "private, max-age=3600"})


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
        from sqlalchemy import select

        from human_feedback.store import Campaign

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


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8000, secure_cookies: bool = False) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    app = create_app(Store(url), secure_cookies=secure_cookies)
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
