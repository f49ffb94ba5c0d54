"""`dyadic feedback ...`: collect candidates, run the annotation server, simulate annotators, export pairs.

Typical session::

    dyadic feedback collect --policy runs/sft --dataset synthetic:small --clips 50 --campaign round1
    dyadic feedback add-annotator alice            # prints alice's sign-in token and link
    dyadic feedback serve --port 8000              # annotators open http://HOST:8000
    dyadic feedback export --campaign round1 --weights emp=.25,app=.25,eng=.25,nat=.25 --out runs/prefs

``migrate`` upgrades a database written by an older version; ``relocate`` points a campaign at its moved
video directory. The whole command family (parsers, then handlers) is one file of a little over 500 lines,
so each flag sits a scroll away from what it does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from experiments.errors import UserError

DEFAULT_DB = "runs/feedback/feedback.db"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "feedback", help="human feedback: candidates, annotation web app, simulated annotators, preference pairs",
        description="Collect rendered candidate groups, serve the annotation app, simulate annotators, "
        "compute agreement, export preference pairs (paper eq. 10) and user-study tables.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    _init(sub)
    _admin_token(sub)
    _add_annotator(sub)
    _revoke(sub)
    _collect(sub)
    _study(sub)
    _migrate(sub)
    _relocate(sub)
    _serve(sub)
    _simulate(sub)
    _status(sub)
    _export(sub)
    _mos(sub)


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        help=f"database: SQLAlchemy URL or SQLite file path (default {DEFAULT_DB})",
    )


def _campaign(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--campaign", required=required, help="campaign name (letters, digits, . _ -)")


def _expires(parser: argparse.ArgumentParser) -> None:
    from human_feedback.auth import DEFAULT_TOKEN_DAYS

    parser.add_argument(
        "--expires-days", type=float, default=DEFAULT_TOKEN_DAYS,
        help=f"days until the token stops working (default {DEFAULT_TOKEN_DAYS})",
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ parsers


def _init(sub: Any) -> None:
    p = sub.add_parser("init", help="create a feedback database and print an admin token")
    _db(p)
    p.set_defaults(handler=cmd_init)


def _admin_token(sub: Any) -> None:
    p = sub.add_parser("admin-token", help="create and print a new admin token (admin view, export)")
    _db(p)
    p.add_argument("--label", default="admin", help="a name for this token, shown in the admin view")
    _expires(p)
    p.set_defaults(handler=cmd_admin_token)


def _add_annotator(sub: Any) -> None:
    p = sub.add_parser("add-annotator", help="create an annotator and print their sign-in token")
    p.add_argument("name", help="the annotator's name (letters, digits, spaces, . _ @ -)")
    _db(p)
    p.add_argument("--new-token", action="store_true", help="issue a new token for an existing annotator")
    _expires(p)
    p.add_argument(
        "--url", default="http://127.0.0.1:8000", help="server address used in the printed sign-in link"
    )
    p.set_defaults(handler=cmd_add_annotator)


def _revoke(sub: Any) -> None:
    p = sub.add_parser("revoke", help="revoke an annotator's tokens (or all admin tokens with --admin)")
    p.add_argument("name", nargs="?", help="the annotator whose tokens to revoke")
    p.add_argument("--admin", action="store_true", help="revoke every admin token instead")
    _db(p)
    p.set_defaults(handler=cmd_revoke)


def _candidate_args(p: argparse.ArgumentParser, *, study: bool) -> None:
    _db(p)
    _campaign(p)
    p.add_argument("--dataset", default=None, help="dataset directory or synthetic:PRESET")
    p.add_argument("--split", default=None, help="split whose clips are rated (default test)")
    p.add_argument(
        "--clips", type=int, default=None, help="number of clips (candidate groups), drawn with --seed"
    )
    p.add_argument(
        "--clip-ids", default=None, help="comma-separated clip ids to use instead of drawing --clips"
    )
    p.add_argument(
        "--candidates", type=int, default=None, dest="samples",
        help="sampled rollouts per policy and clip (default 1 for a study, 4 otherwise: paper N = 4)",
    )  # fmt: skip
    if study:
        p.add_argument(
            "--ground-truth", action="store_true", help="also rate the dataset's listener (off by default)"
        )
    else:
        p.add_argument(
            "--no-ground-truth", action="store_true", help="leave the ground truth out of the groups"
        )
    p.add_argument(
        "--render", action=argparse.BooleanOptionalAction, default=None,
        help="render an MP4 per candidate (default on; --no-render stores tokens only)",
    )  # fmt: skip
    p.add_argument("--video-size", type=int, default=None, help="pixels of one face panel (default 256)")
    p.add_argument("--backend", default=None, help="offscreen OpenGL backend: osmesa (default) or egl")
    p.add_argument(
        "--temperature", type=float, default=None,
        help="sampling temperature of checkpoints (default: each checkpoint's decode temperature, as deployed)"
        if study else "sampling temperature of checkpoints (1.0)",
    )  # fmt: skip
    p.add_argument(
        "--broken-fraction", type=float, default=None, help="share of groups with a broken candidate (0.25)"
    )
    p.add_argument("--ratings-per-group", type=int, default=3, help="annotators per group, R (default 3)")
    p.add_argument(
        "--repeat-every", type=int, default=8, help="re-show a rated group after every N pages (0: never)"
    )
    p.add_argument(
        "--media-dir", type=Path, default=None, help="campaign directory for videos (default beside the db)"
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add groups of clips it does not have yet to an existing campaign (same dataset and split)",
    )
    p.add_argument(
        "--require-watch-time", action="store_true",
        help="accept a page only once each video's duration has passed since it was loaded (server-side)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="seeds clips, rollouts and shuffles (default 0)")
    p.add_argument(
        "--config", type=Path, default=None, help="YAML file of CollectConfig fields; flags override it"
    )


def _collect(sub: Any) -> None:
    p = sub.add_parser(
        "collect", help="sample N rollouts per clip plus the ground truth, render them, store a campaign"
    )
    p.add_argument(
        "--policy", action="append", default=None,
        help="checkpoint directory or baseline agent (random, nn, ...); NAME=SOURCE to name it; repeatable",
    )  # fmt: skip
    _candidate_args(p, study=False)
    p.set_defaults(handler=cmd_collect)


def _study(sub: Any) -> None:
    p = sub.add_parser(
        "study", help="a user-study campaign: several policies on the same clips (paper Table III)"
    )
    p.add_argument(
        "--policies", required=False, default=None,
        help="comma-separated policies: NAME=CHECKPOINT or agent names, e.g. sft=runs/sft,rl=runs/dpo,nn",
    )  # fmt: skip
    _candidate_args(p, study=True)
    p.set_defaults(handler=cmd_study)


def _migrate(sub: Any) -> None:
    p = sub.add_parser("migrate", help="upgrade a feedback database written by an older version, in place")
    _db(p)
    p.set_defaults(handler=cmd_migrate)


def _relocate(sub: Any) -> None:
    p = sub.add_parser("relocate", help="point a campaign at its video directory after moving it")
    _db(p)
    _campaign(p)
    p.add_argument("media_dir", type=Path, help="the campaign's directory now (holding its videos/)")
    p.set_defaults(handler=cmd_relocate)


def _serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the annotation web app")
    _db(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--secure-cookies", action="store_true", help="mark cookies Secure (when served over HTTPS)"
    )
    p.add_argument(
        "--session-hours", type=float, default=None, help="how long a browser stays signed in (default 12)"
    )
    p.set_defaults(handler=cmd_serve)


def _simulate(sub: Any) -> None:
    p = sub.add_parser("simulate", help="simulated annotators rate a campaign through the annotation API")
    _db(p)
    _campaign(p)
    p.add_argument("--annotators", type=int, default=5, help="number of simulated people (default 5)")
    p.add_argument(
        "--careless-fraction", type=float, default=0.1, help="share of careless raters (default 0.1)"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the simulated people and their ratings")
    p.add_argument("--url", default=None, help="a running server's base URL; default: the app in-process")
    p.add_argument("--max-pages", type=int, default=None, help="pages per person at most")
    p.set_defaults(handler=cmd_simulate)


def _status(sub: Any) -> None:
    p = sub.add_parser("status", help="progress, agreement (Krippendorff's alpha) and attention checks")
    _db(p)
    _campaign(p)
    p.add_argument("--json", type=Path, default=None, help="also write the full overview as JSON here")
    p.set_defaults(handler=cmd_status)


def _export(sub: Any) -> None:
    p = sub.add_parser(
        "export", help="score (paper eq. 10), rank and pair candidates: the preference dataset"
    )
    _db(p)
    _campaign(p)
    p.add_argument(
        "--weights", default=None,
        help="eq. 10 weights, e.g. emp=0.3,app=0.3,eng=0.2,nat=0.2 (each in [0, 1], sum 1; default equal)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="directory to write the preference dataset to")
    p.add_argument(
        "--mode",
        choices=("best-worst", "all-pairs"),
        default="best-worst",
        help="pairing (default best-worst)",
    )
    p.add_argument(
        "--min-margin", type=float, default=0.0, help="smallest score gap that makes a pair (default 0)"
    )
    p.add_argument("--min-ratings", type=int, default=None, help="ratings every candidate needs (default R)")
    p.add_argument(
        "--exclude-flagged", action="store_true", help="drop annotators who failed attention checks"
    )
    p.add_argument("--exclude", default="", help="comma-separated annotator names to leave out")
    p.add_argument("--ratings-csv", type=Path, default=None, help="also write every rating as CSV here")
    p.add_argument("--seed", type=int, default=0, help="seeds tie-breaking between equal scores")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(handler=cmd_export)


def _mos(sub: Any) -> None:
    p = sub.add_parser(
        "mos", help="mean opinion score per method and criterion with 95%% intervals (Table III)"
    )
    _db(p)
    _campaign(p)
    p.add_argument(
        "--ci", choices=("bootstrap", "t"), default="bootstrap", help="interval: clip bootstrap or t"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the bootstrap")
    p.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    p.set_defaults(handler=cmd_mos)


# ------------------------------------------------------------------------------------------------ helpers


def _open(db: str, *, create: bool = False) -> Any:
    from human_feedback.store import SchemaError, Store

    try:
        return Store(db, create=create)
    except SchemaError as e:
        raise UserError(str(e)) from None


def _ensure_admin(store: Any) -> str | None:
    """An admin token if the database has none yet (printed once at creation)."""
    from sqlalchemy import select

    from human_feedback.auth import new_admin_token
    from human_feedback.store import Credential

    with store.read() as session:
        exists = session.scalar(select(Credential.id).where(Credential.role == "admin").limit(1))
    return None if exists is not None else new_admin_token(store)


def _print_admin(token: str | None) -> None:
    if token:
        print(f"admin token (shown once; sign in at /signin to see progress and export): {token}")


# ------------------------------------------------------------------------------------------------ handlers


def cmd_init(args: argparse.Namespace) -> int:
    from human_feedback.auth import new_admin_token

    store = _open(args.db, create=True)
    _print_admin(new_admin_token(store))
    print(f"feedback database ready: {store.url}")
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    from human_feedback.auth import new_admin_token

    try:
        print(new_admin_token(_open(args.db), label=args.label, days=args.expires_days))
    except ValueError as e:
        raise UserError(str(e)) from None
    return 0


def cmd_add_annotator(args: argparse.Namespace) -> int:
    from human_feedback.auth import add_annotator, new_annotator_token

    store = _open(args.db)
    try:
        if args.new_token:
            token = new_annotator_token(store, args.name, days=args.expires_days)
        else:
            token = add_annotator(store, args.name, days=args.expires_days)
    except ValueError as e:
        raise UserError(str(e)) from None
    # The token alone on the first line (scripts read it), the link on its own line below.
    print(token)
    print(f"sign-in link: {args.url.rstrip('/')}/signin#token={token}")
    print(f"(valid {args.expires_days:g} days; shown once, stored only as a hash)", file=sys.stderr)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from human_feedback.auth import revoke_tokens

    if bool(args.name) == bool(args.admin):
        raise UserError("give an annotator NAME or --admin (one of them)")
    store = _open(args.db)
    try:
        count = revoke_tokens(store, annotator=args.name, admin=args.admin)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"revoked {count} token(s)")
    return 0


def _collect_config(args: argparse.Namespace, policies: list[str], *, study: bool) -> Any:
    from experiments.commands.train import load_config_fields
    from human_feedback.candidates import CollectConfig, PolicySpec

    fields = load_config_fields(args.config, [])
    flags = {
        "dataset": args.dataset, "split": args.split, "clips": args.clips, "samples": args.samples,
        "render": args.render, "video_size": args.video_size, "temperature": args.temperature,
        "broken_fraction": args.broken_fraction, "seed": args.seed, "backend": args.backend,
        "clip_ids": [c.strip() for c in args.clip_ids.split(",") if c.strip()] if args.clip_ids else None,
    }  # fmt: skip
    fields.update({k: v for k, v in flags.items() if v is not None})
    fields["ground_truth"] = args.ground_truth if study else not args.no_ground_truth
    fields.setdefault("samples", 1 if study else 4)
    if study:  # people rate each policy as it deploys, as `dyadic eval` samples it
        fields.setdefault("temperature", None)
    raw_policies = policies or fields.pop("policies", None) or []
    fields.pop("policies", None)
    if not fields.get("dataset"):
        raise UserError("--dataset is required (a dataset directory or synthetic:PRESET)")
    try:
        specs = [PolicySpec.parse(p) if isinstance(p, str) else PolicySpec(**p) for p in raw_policies]
        return CollectConfig(policies=specs, **fields)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None


def _run_collect(args: argparse.Namespace, policies: list[str], *, study: bool) -> int:
    from human_feedback.candidates import collect
    from human_feedback.service import FeedbackError

    config = _collect_config(args, policies, study=study)
    store = _open(args.db, create=True)
    admin = _ensure_admin(store)
    try:
        report = collect(
            store, args.campaign, config, kind="study" if study else "preference",
            ratings_per_group=args.ratings_per_group, repeat_every=args.repeat_every, media_dir=args.media_dir,
            progress=lambda line: print(line, file=sys.stderr), append=args.append,
            settings={"require_watch_time": True} if args.require_watch_time else None,
        )  # fmt: skip
    except (FeedbackError, ValueError, LookupError) as e:
        raise UserError(str(e)) from None
    print(
        f"campaign {report.campaign}: {report.groups} groups, {report.candidates} candidates "
        f"({report.broken} broken attention checks), {report.videos} videos; rollouts "
        f"{report.seconds_rollout:.1f} s, rendering {report.seconds_render:.1f} s"
    )
    _print_admin(admin)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    return _run_collect(args, args.policy or [], study=False)


def cmd_study(args: argparse.Namespace) -> int:
    policies = [p.strip() for p in (args.policies or "").split(",") if p.strip()]
    return _run_collect(args, policies, study=True)


def cmd_migrate(args: argparse.Namespace) -> int:
    from human_feedback.migrations import migrate
    from human_feedback.store import SchemaError

    try:
        changes = migrate(args.db)
    except SchemaError as e:
        raise UserError(str(e)) from None
    for line in changes or ["already at the current schema version; nothing to do"]:
        print(line)
    return 0


def cmd_relocate(args: argparse.Namespace) -> int:
    from human_feedback.campaigns import relocate_media

    store = _open(args.db)
    try:
        print(relocate_media(store, args.campaign, args.media_dir))
    except (ValueError, LookupError) as e:
        raise UserError(str(e)) from None
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from human_feedback.server import serve

    store = _open(args.db)
    store.close()
    if args.session_hours is not None and not 0 < args.session_hours <= 24 * 365:
        raise UserError(f"--session-hours must be more than 0 and at most a year, found {args.session_hours}")
    print(f"annotation app on http://{args.host}:{args.port} (database {store.url})", file=sys.stderr)
    serve(
        store.url, host=args.host, port=args.port, secure_cookies=args.secure_cookies,
        session_hours=args.session_hours,
    )  # fmt: skip
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from human_feedback.simulate import simulate

    store = _open(args.db)
    try:
        report = simulate(
            store, args.campaign, args.annotators, seed=args.seed, careless_fraction=args.careless_fraction,
            url=args.url, max_pages=args.max_pages, progress=lambda line: print(line, file=sys.stderr),
        )  # fmt: skip
    except (ValueError, LookupError) as e:
        raise UserError(str(e)) from None
    print(
        f"{len(report.annotators)} simulated annotators rated {report.pages} pages ({report.ratings} ratings) "
        f"in {report.seconds:.1f} s ({report.ratings_per_second:.0f} ratings/s, {report.retries} retries)"
    )
    if report.careless:
        print(
            "careless by construction: " + ", ".join(f"{n} ({m})" for n, m in sorted(report.careless.items()))
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from human_feedback.analysis import campaign_overview

    store = _open(args.db)
    try:
        overview = campaign_overview(store, args.campaign)
    except LookupError as e:
        raise UserError(str(e)) from None
    print(format_overview(overview))
    if args.json is not None:
        args.json.write_text(json.dumps(overview, indent=2, default=str))
    return 0


def format_overview(o: dict[str, Any]) -> str:
    """Plain-text summary of :func:`human_feedback.analysis.campaign_overview`."""

    def alpha(v: dict[str, float]) -> str:
        if v["alpha"] != v["alpha"]:  # NaN
            return "undefined"
        return f"{v['alpha']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"

    lines = [
        f"campaign {o['name']} ({o['kind']}): {o['groups_complete']}/{o['groups']} groups complete, "
        f"{o['pages_done']}/{o['pages_needed']} pages, {o['ratings']} ratings, R = {o['ratings_per_group']}",
        "",
        f"{'criterion':16s} {'alpha ordinal':24s} alpha interval",
    ]
    for key, levels in o["agreement"].items():
        lines.append(f"{key:16s} {alpha(levels['ordinal']):24s} {alpha(levels['interval'])}")
    lines += ["", f"{'annotator':28s} {'pages':>5s} {'broken ok':>9s} {'repeat ok':>9s}  flag"]
    for a in o["annotators"]:
        broken = f"{a['broken_passed']}/{a['broken_checks']}" if a["broken_checks"] else "-"
        repeat = f"{a['repeat_passed']}/{a['repeat_checks']}" if a["repeat_checks"] else "-"
        flag = "; ".join(a["flag_reasons"]) if a["flagged"] else ""
        lines.append(f"{a['name']:28s} {a['pages_done']:5d} {broken:>9s} {repeat:>9s}  {flag}")
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    from human_feedback.criteria import parse_weights
    from human_feedback.export import export_preferences, write_ratings_csv

    try:
        weights = parse_weights(args.weights)
    except ValueError as e:
        raise UserError(f"--weights: {e}") from None
    if args.min_margin < 0:
        raise UserError(f"--min-margin must be >= 0, found {args.min_margin}")
    if args.min_ratings is not None and args.min_ratings < 1:
        raise UserError(f"--min-ratings must be >= 1, found {args.min_ratings}")
    store = _open(args.db)
    try:
        result = export_preferences(
            store, args.campaign, args.out, weights=weights, mode=args.mode, min_margin=args.min_margin,
            min_ratings=args.min_ratings, exclude_flagged=args.exclude_flagged,
            exclude_annotators=[n.strip() for n in args.exclude.split(",") if n.strip()],
            overwrite=args.overwrite, seed=args.seed,
        )  # fmt: skip
    except LookupError as e:
        raise UserError(str(e)) from None
    if args.ratings_csv is not None:
        write_ratings_csv(store, args.campaign, args.ratings_csv)
    c = result.report.counts()
    print(f"wrote {c['pairs']} preference pairs to {args.out} ({args.mode}, weights {weights})")
    print(
        f"groups: {c['groups']} total, {c['groups_paired']} paired, {c['groups_too_few_ratings']} with too few "
        f"ratings (< {result.min_ratings}), {c['groups_tied']} tied, {c['groups_single_candidate']} with one "
        f"candidate; {c['tie_breaks']} tie breaks, {c['pairs_tied']} tied and {c['pairs_below_margin']} "
        f"below-margin pairs skipped; ground truth chosen {c['ground_truth_chosen']}, rejected "
        f"{c['ground_truth_rejected']}"
    )
    if result.excluded_annotators:
        print(f"excluded annotators: {', '.join(result.excluded_annotators)}")
    return 0


def cmd_mos(args: argparse.Namespace) -> int:
    from human_feedback.analysis import load_ratings, method_order
    from human_feedback.study import format_mos_table, mos_table

    store = _open(args.db)
    try:
        rows = load_ratings(store, args.campaign)
    except LookupError as e:
        raise UserError(str(e)) from None
    if not rows:
        raise UserError(f"campaign {args.campaign} has no ratings yet; rate it (serve or simulate) first")
    table = mos_table(rows, ci=args.ci, seed=args.seed, order=method_order(store, args.campaign))
    print(
        f"Mean opinion score (1-5) with 95% {'clip-bootstrap' if args.ci == 'bootstrap' else 't'} intervals"
    )
    print(format_mos_table(table))
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=2))
    return 0
