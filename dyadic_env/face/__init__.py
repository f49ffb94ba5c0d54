"""Face models evaluated through ``smplx.FLAME``: the ICT-FaceKit head by default, licensed FLAME on request.

- :func:`load_face_model` (``"ict-arkit"`` or ``"flame"``) gives a :class:`FaceModel` whose
  ``vertices(frames)`` turns (T, 56) motion frames into meshes; torch and smplx load only then.
- :func:`ict_flame_dir` builds (once, cached under ``$DYADIC_CACHE/face``) the FLAME-format model of the
  ICT head; :mod:`dyadic_env.face.ict` documents how.
- :func:`import_flame` converts a licensed FLAME pickle without chumpy and registers it
  (``dyadic face import-flame PATH``); ``$DYADIC_FLAME_PATH`` may point at a converted directory instead.
"""

from dyadic_env.face.flame_import import FlameImportError, convert_flame, import_flame, read_flame_pickle
from dyadic_env.face.ict import ict_flame_dir
from dyadic_env.face.model import FaceModel, FlameModelNotFound, face_model_dir, load_face_model
from dyadic_env.face.paths import face_cache_dir, registered_flame_dir

__all__ = [
    "FaceModel", "FlameImportError", "FlameModelNotFound", "convert_flame", "face_cache_dir", "face_model_dir",
    "ict_flame_dir", "import_flame", "load_face_model", "read_flame_pickle", "registered_flame_dir",
]  # fmt: skip
