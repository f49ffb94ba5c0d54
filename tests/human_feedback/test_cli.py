"""`dyadic feedback ...` end to end on synthetic data (no rendering), and its error messages."""

from __future__ import annotations

import json

import pytest

from experiments.cli import main
from human_feedback.preferences import PreferenceDataset
from human_feedback.store import Store


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, module_db_url):
    root = tmp_path_factory.mktemp("cli")
    db = module_db_url
    args = ["feedback", "collect", "--policy", "random", "--dataset", "synthetic:tiny", "--clips", "4",
            "--candidates", "2", "--no-render", "--db", db, "--campaign", "c1", "--repeat-every", "3",
            "--media-dir", str(root / "c1")]  # fmt: skip
    assert main(args) == 0
    assert (
        main(
            [
                "feedback",
                "simulate",
                "--db",
                db,
                "--campaign",
                "c1",
                "--annotators",
                "4",
                "--careless-fraction",
                "0",
            ]
        )
        == 0
    )
    return root, db


def test_collect_prints_an_admin_token_once_and_appends(db_url, tmp_path, capsys):
    base = ["feedback", "collect", "--policy", "random", "--dataset", "synthetic:tiny", "--clips", "1",
            "--candidates", "1", "--no-render", "--db", db_url]  # fmt: skip
    assert main([*base, "--campaign", "a", "--media-dir", str(tmp_path / "a")]) == 0
    first = capsys.readouterr().out
    assert "admin token" in first and "1 groups, 2 candidates" in first
    assert main([*base, "--campaign", "b", "--media-dir", str(tmp_path / "b")]) == 0
    assert "admin token" not in capsys.readouterr().out
    assert main([*base, "--campaign", "a", "--media-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--append" in err
    # --append adds groups of clips the campaign does not have yet
    assert main([*base, "--campaign", "a", "--append", "--clips", "2"]) == 0
    assert "2 groups" in capsys.readouterr().out
    store = Store(db_url)
    with store.read() as session:
        campaign = store.campaign(session, "a")
        clips = [c.clip_id for c in campaign.clips]
        assert len(clips) == 3 == len(set(clips)) and len(campaign.config["appends"]) == 1
    store.close()
    assert main([*base[:5], "synthetic:small", *base[6:], "--campaign", "a", "--append"]) == 2
    assert "same" in capsys.readouterr().err
    assert main([*base, "--campaign", "nope", "--append"]) == 2
    assert "adds to an existing campaign" in capsys.readouterr().err


def test_tokens_from_the_cli_sign_in(workspace, capsys):
    from human_feedback.auth import authenticate
    from human_feedback.store import Store

    _, db = workspace
    assert main(["feedback", "add-annotator", "zoe", "--db", db]) == 0
    token, link = capsys.readouterr().out.splitlines()
    assert token.startswith("dyf_") and link == f"sign-in link: http://127.0.0.1:8000/signin#token={token}"
    assert main(["feedback", "admin-token", "--db", db]) == 0
    admin = capsys.readouterr().out.strip()
    store = Store(db)
    assert authenticate(store, token).name == "zoe" and authenticate(store, admin).is_admin
    assert main(["feedback", "add-annotator", "zoe", "--db", db]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["feedback", "revoke", "zoe", "--db", db]) == 0
    assert authenticate(store, token) is None


def test_status_export_and_mos(workspace, capsys, tmp_path):
    _, db = workspace
    assert (
        main(["feedback", "status", "--db", db, "--campaign", "c1", "--json", str(tmp_path / "s.json")]) == 0
    )
    out = capsys.readouterr().out
    assert "4/4 groups complete" in out and "naturalness" in out
    assert json.loads((tmp_path / "s.json").read_text())["pages_done"] == 12
    out_dir = tmp_path / "prefs"
    args = ["feedback", "export", "--db", db, "--campaign", "c1", "--weights", "emp=0.4,app=0.4,eng=0.1,nat=0.1",
            "--out", str(out_dir), "--ratings-csv", str(tmp_path / "r.csv")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "groups: 4 total" in out
    data = PreferenceDataset.load(out_dir)
    assert data.dataset_spec == "synthetic:tiny" and data.manifest["weights"]["empathy"] == 0.4
    assert len(data) == data.manifest["counts"]["pairs"] and all(p.margin > 0 for p in data.pairs)
    assert data.tokenizer() is not None
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("group_id,clip_id")
    assert main([*args[:-2]]) == 2  # --out exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["feedback", "mos", "--db", db, "--campaign", "c1"]) == 0
    table = capsys.readouterr().out
    assert (
        "| Method | App. | Emp. | Eng. | Nat. | n |" in table
        and "Ground truth" in table
        and "random" in table
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--campaign", "c1", "--weights", "emp=1,app=1,eng=0,nat=0", "--out", "x"], "sum to 1"),
        (["export", "--campaign", "nope", "--out", "x"], "no campaign 'nope'"),
        (["mos", "--campaign", "nope"], "no campaign 'nope'"),
        (["simulate", "--campaign", "nope"], "no campaign 'nope'"),
        (["collect", "--policy", "random", "--campaign", "c9"], "--dataset is required"),
        (
            ["collect", "--policy", "random", "--dataset", "synthetic:tiny", "--campaign", "bad name"],
            "not allowed",
        ),
        (["revoke"], "give an annotator NAME or --admin"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(workspace, capsys, args, message, tmp_path):
    _, db = workspace
    assert main(["feedback", *args[:1], "--db", db, *args[1:]]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_database_is_explained(tmp_path, capsys):
    assert main(["feedback", "status", "--db", str(tmp_path / "none.db"), "--campaign", "x"]) == 2
    err = capsys.readouterr().err
    assert "no feedback database" in err and "`dyadic feedback init --db PATH`" in err
    # the advice names only flags that exist
    assert main(["feedback", "init", "--db", str(tmp_path / "new.db")]) == 0
