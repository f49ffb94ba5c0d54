"""Importing a licensed FLAME pickle without chumpy: a fake pickle made with a chumpy-like class."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from dyadic_env.face import (
    FlameImportError,
    FlameModelNotFound,
    face_model_dir,
    import_flame,
    load_face_model,
)
from dyadic_env.face.model import FaceModel
from dyadic_env.face.paths import FLAME_PATH_ENV, registered_flame_dir
from experiments.cli import main


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered FLAME model must not leak into the user's (or other tests') cache."""
    monkeypatch.setenv("DYADIC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(FLAME_PATH_ENV, raising=False)
    load_face_model.cache_clear()
    yield
    load_face_model.cache_clear()


def _fake_model(num_expr_dirs: int = 400) -> dict[str, np.ndarray]:
    """A cube-shaped 'FLAME' model in metres with FLAME's keys and shapes."""
    rng = np.random.default_rng(0)
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64) * 0.05
    faces = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]],
    )  # fmt: skip
    weights = np.zeros((8, 5))
    weights[:, 1] = 1.0
    return {
        "v_template": corners,
        "f": faces,
        "shapedirs": rng.normal(0, 0.01, (8, 3, num_expr_dirs)),
        "posedirs": np.zeros((8, 3, 36)),
        "J_regressor": np.full((5, 8), 1 / 8),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        "weights": weights,
    }


def _write_chumpy_pickle(path: Path, model: dict[str, np.ndarray]) -> None:
    """Pickle ``model`` the way FLAME's files are: chumpy ``Ch`` objects and a SciPy sparse regressor.

    The class lives in a module registered as ``chumpy.ch`` only while pickling, so loading must go through
    the importer's own unpickler (chumpy itself does not import here).
    """
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = np.asarray(x, np.float64)
            self._dirty_vars: set[str] = set()
            self._itr = None

        def __getstate__(self) -> dict:
            return dict(self.__dict__)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch  # type: ignore[attr-defined]
    package.ch = module  # type: ignore[attr-defined]
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        stored = {
            k: Ch(v) for k, v in model.items() if k in ("v_template", "shapedirs", "posedirs", "weights")
        }
        stored["f"] = model["f"].astype(np.uint32)
        stored["kintree_table"] = model["kintree_table"]
        stored["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"])
        stored["bs_style"] = "lbs"
        path.write_bytes(pickle.dumps(stored, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    assert b"chumpy.ch" in path.read_bytes()


@pytest.fixture
def flame_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "flame2020" / "generic_model.pkl"
    path.parent.mkdir()
    _write_chumpy_pickle(path, _fake_model())
    embedding = {"lmk_face_idx": np.array([0, 5]), "lmk_b_coords": np.array([[1.0, 0, 0], [0.2, 0.3, 0.5]])}
    (path.parent / "flame_static_embedding.pkl").write_bytes(pickle.dumps(embedding, protocol=2))
    return path


def test_converts_chumpy_pickle_to_plain_arrays_and_registers(flame_pickle: Path) -> None:
    model_dir = import_flame(flame_pickle)
    assert registered_flame_dir() == model_dir.resolve()
    assert face_model_dir("flame") == model_dir.resolve()
    expected = _fake_model()
    with np.load(model_dir / "FLAME_NEUTRAL.npz") as data:
        assert data["shapedirs"].dtype == np.float32
        for key in ("v_template", "shapedirs", "J_regressor", "weights"):
            np.testing.assert_allclose(data[key], expected[key], atol=1e-7)
        np.testing.assert_array_equal(data["f"], expected["f"])
    with open(model_dir / "flame_static_embedding.pkl", "rb") as f:
        np.testing.assert_array_equal(pickle.load(f)["lmk_face_idx"], [0, 5])


def test_flame_frames_drive_expression_and_global_rotation(flame_pickle: Path) -> None:
    face = FaceModel(import_flame(flame_pickle), "flame")
    model = _fake_model()
    frames = np.zeros((2, 56), np.float32)
    frames[0, 0] = 1.0  # first expression coefficient -> FLAME expression direction 0 (shapedirs 300)
    frames[1, 51] = np.pi / 2  # head rotation -> global_orient: a quarter turn about y
    expr, turned = face.vertices(frames)
    np.testing.assert_allclose(expr, model["v_template"] + model["shapedirs"][:, :, 300], atol=1e-5)
    center = model["v_template"].mean(0)
    rel = model["v_template"] - center
    np.testing.assert_allclose(turned - center, np.stack([rel[:, 2], rel[:, 1], -rel[:, 0]], 1), atol=1e-5)


def test_environment_variable_overrides_the_registered_model(
    flame_pickle: Path, tmp_path: Path, monkeypatch
) -> None:
    other = import_flame(flame_pickle, out_dir=tmp_path / "elsewhere", register=False)
    assert registered_flame_dir() is None
    monkeypatch.setenv(FLAME_PATH_ENV, str(other))
    assert face_model_dir("flame") == other


def test_flame_data_without_a_model_says_what_to_do() -> None:
    with pytest.raises(FlameModelNotFound, match="dyadic face import-flame"):
        face_model_dir("flame")


def test_rejects_a_model_with_too_few_expression_directions(tmp_path: Path) -> None:
    path = tmp_path / "old.pkl"
    _write_chumpy_pickle(path, _fake_model(num_expr_dirs=20))
    with pytest.raises(FlameImportError, match=r"shapedirs has shape \(8, 3, 20\), expected \(8, 3, 400\)"):
        import_flame(path)
    assert registered_flame_dir() is None


def test_rejects_files_that_are_not_flame_models(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(FlameImportError, match="not a readable FLAME pickle"):
        import_flame(garbage)
    a_list = tmp_path / "list.pkl"
    a_list.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(FlameImportError, match="expected the dict of a FLAME model"):
        import_flame(a_list)
    with pytest.raises(FileNotFoundError, match="no FLAME model file"):
        import_flame(tmp_path / "missing.pkl")


def test_cli_import_flame(flame_pickle: Path, tmp_path: Path, capsys) -> None:
    assert main(["face", "import-flame", str(flame_pickle)]) == 0
    out = capsys.readouterr().out
    assert "registered" in out and registered_flame_dir() is not None
    assert main(["face", "import-flame", str(tmp_path / "missing.pkl")]) == 2
    assert "no FLAME model file" in capsys.readouterr().err


@pytest.mark.render
def test_flame_data_renders_with_the_imported_model(flame_pickle: Path) -> None:
    from dyadic_env.render import Renderer

    import_flame(flame_pickle)
    with Renderer(64, 64) as renderer:
        images = renderer.render_faces(np.zeros((2, 56), np.float32), expression_basis="flame")
    assert images.shape == (2, 64, 64, 3)
    background = images[0, 0, 0]  # the camera frames the model's bounding box, corners stay empty
    np.testing.assert_array_equal(background, images[0, -1, -1])
    assert np.abs(images[0, 32, 32].astype(int) - background).max() > 20  # the cube is in the middle


def test_cli_info_tells_how_to_configure_flame(flame_pickle: Path, capsys) -> None:
    assert main(["face", "info"]) == 0
    assert "flame: not configured (run `dyadic face import-flame PATH`" in capsys.readouterr().out
    model_dir = import_flame(flame_pickle)
    assert main(["face", "info"]) == 0
    assert f"flame: {model_dir.resolve()}" in capsys.readouterr().out
