"""Offscreen rendering of speaker and listener faces with pyrender (OSMesa by default, EGL selectable)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dyadic_env.expression_basis import FRAME_DIM
from dyadic_env.render.shaders import install_clay_shader
from dyadic_env.render.text import draw_caption, draw_labels

BACKENDS = ("osmesa", "egl")
BACKGROUND = (0.93, 0.93, 0.93)
# Camera distance in units of the framed height: a mild telephoto, as in portrait photography.
CAMERA_DISTANCE = 3.0
FRAME_MARGIN = 1.06
# (ambient, [(yaw, pitch, intensity), ...]) per shading: a key light from the viewer's upper left and a
# weaker fill from the right, so the face's shape reads and nothing glares.
LIGHTS = {
    "clay": (0.16, [(-35.0, -30.0, 1.75), (40.0, -5.0, 0.5)]),
    "pbr": (0.10, [(-35.0, -30.0, 2.6), (40.0, -5.0, 1.0)]),
}
CHUNK = 64  # frames evaluated and rendered per batch; bounds memory for long clips


class RenderingUnavailable(RuntimeError):
    """Offscreen OpenGL could not start (missing system library or wrong PyOpenGL)."""


def default_backend() -> str:
    """``$PYOPENGL_PLATFORM`` when it names an offscreen backend, else ``"osmesa"``."""
    platform = os.environ.get("PYOPENGL_PLATFORM", "")
    return platform if platform in BACKENDS else "osmesa"


def import_pyrender(backend: str) -> Any:
    """Import pyrender for an offscreen ``backend`` (``"osmesa"`` or ``"egl"``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown rendering backend {backend!r}; expected one of {BACKENDS}")
    current = os.environ.get("PYOPENGL_PLATFORM")
    if "OpenGL" in sys.modules and current and current != backend:
        raise RenderingUnavailable(
            f"PyOpenGL is already set up for {current!r} in this process, so backend {backend!r} cannot start; "
            f"use backend={current!r} or set PYOPENGL_PLATFORM={backend} before anything imports OpenGL"
        )
    # PyOpenGL picks its platform once, at import; unset, pyrender looks for a display and fails.
    os.environ["PYOPENGL_PLATFORM"] = backend
    if not hasattr(np, "infty"):
        np.infty = np.inf  # type: ignore[attr-defined]  # pyrender 0.1.45 still uses the NumPy 1 alias
    try:
        import pyrender
    except Exception as e:  # ImportError, or OpenGL's own errors when the library is missing
        raise RenderingUnavailable(_install_hint(backend, e)) from e
    return pyrender


def _install_hint(backend: str, error: Exception) -> str:
    lib = "libosmesa6" if backend == "osmesa" else "libegl1 libegl-mesa0 libgl1-mesa-dri"
    return (
        f"offscreen rendering with {backend!r} failed ({type(error).__name__}: {error}); install the system "
        f"library (Debian/Ubuntu: apt-get install {lib}) and PyOpenGL>=3.1.7 (pip install PyOpenGL==3.1.10)"
    )


class Renderer:
    """Renders motion frames as identity-neutral clay faces, one panel per face, side by side for pairs.

    Args:
        width: width of one face panel in pixels.
        height: height of one face panel in pixels.
        backend: ``"osmesa"`` (CPU) or ``"egl"`` (GPU or Mesa's EGL); default: ``$PYOPENGL_PLATFORM`` if it
            names one of them, else ``"osmesa"``.
        labels: write "speaker" and "listener" in the panels of a pair.
        shading: ``"clay"`` (a light Lambert shader, several times faster on CPU) or ``"pbr"``
            (pyrender's own physically based shader).

    Example:
        >>> renderer = Renderer(256, 256)  # doctest: +SKIP
        >>> video = renderer.render_frames(clip.speaker_motion, clip.listener_motion)  # (T, 256, 512, 3)
    """

    def __init__(
        self,
        width: int = 256,
        height: int = 256,
        backend: str | None = None,
        *,
        labels: bool = True,
        shading: str = "clay",
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"width and height must be at least 16 pixels; got {width}x{height}")
        if shading not in LIGHTS:
            raise ValueError(f"unknown shading {shading!r}; expected one of {tuple(LIGHTS)}")
        backend = backend or default_backend()
        self.width, self.height, self.backend, self.labels = int(width), int(height), backend, labels
        self._pyrender = import_pyrender(backend)
        try:
            self._gl = self._pyrender.OffscreenRenderer(self.width, self.height)
        except Exception as e:
            raise RenderingUnavailable(_install_hint(backend, e)) from e
        if shading == "clay" and not install_clay_shader(self._gl):
            shading = "pbr"
        self.shading = shading
        self.fast_upload = True
        self._scenes: dict[str, Any] = {}

    # --- public API ---------------------------------------------------------------------------------

    def render_faces(self, frames: np.ndarray, expression_basis: str = "ict-arkit") -> np.ndarray:
        """One face per frame: uint8 (T, height, width, 3)."""
        frames = _check_frames(frames, "frames")
        out = np.empty((len(frames), self.height, self.width, 3), np.uint8)
        for start in range(0, len(frames), CHUNK):
            out[start : start + CHUNK] = self._render_chunk(frames[start : start + CHUNK], expression_basis)
        return out

    def render_frames(
        self,
        speaker_frames: np.ndarray,
        listener_frames: np.ndarray,
        captions: Sequence[str] | None = None,
        expression_basis: str = "ict-arkit",
    ) -> np.ndarray:
        """Speaker (left) and listener (right) side by side: uint8 (T, height, 2 * width, 3).

        Args:
            speaker_frames: (T, 56) motion frames of the speaker.
            listener_frames: (T, 56) motion frames of the listener.
            captions: optional text per frame (e.g. the speaker's current words), drawn along the bottom.
            expression_basis: the basis both sides' expressions are in (``"ict-arkit"`` or ``"flame"``).
        """
        speaker = _check_frames(speaker_frames, "speaker_frames")
        out = np.empty((len(speaker), self.height, 2 * self.width, 3), np.uint8)
        for i, image in enumerate(self.iter_frames(speaker, listener_frames, captions, expression_basis)):
            out[i] = image
        return out

    def iter_frames(
        self,
        speaker_frames: np.ndarray,
        listener_frames: np.ndarray,
        captions: Sequence[str] | None = None,
        expression_basis: str = "ict-arkit",
    ) -> Iterator[np.ndarray]:
        """Like :meth:`render_frames`, one (height, 2 * width, 3) image at a time (for long videos).

        Meshes of the next chunk of frames are evaluated in a worker thread while this one renders, so
        smplx and the rasterizer keep both cores busy.
        """
        speaker, listener = _check_pair(speaker_frames, listener_frames, captions)
        scene = self._scene(expression_basis)

        def meshes(start: int) -> tuple[np.ndarray, np.ndarray]:
            both = np.concatenate([speaker[start : start + CHUNK], listener[start : start + CHUNK]])
            return scene["model"].vertices(both, with_normals=True)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(meshes, 0)
            for start in range(0, len(speaker), CHUNK):
                verts, normals = pending.result()
                if start + CHUNK < len(speaker):
                    pending = pool.submit(meshes, start + CHUNK)
                n = len(verts) // 2
                for i in range(n):
                    image = np.empty((self.height, 2 * self.width, 3), np.uint8)
                    image[:, : self.width] = self._render_mesh(scene, verts[i], normals[i])
                    image[:, self.width :] = self._render_mesh(scene, verts[n + i], normals[n + i])
                    self._annotate(image, captions[start + i] if captions is not None else None)
                    yield image

    def project(self, points: np.ndarray, expression_basis: str = "ict-arkit") -> np.ndarray:
        """Pixel coordinates (N, 2) as (column, row) of 3D model points (N, 3) in a face panel."""
        camera = self._scene(expression_basis)["camera"]
        rel = np.asarray(points, float) - camera["position"]
        focal = self.height / 2 / np.tan(camera["yfov"] / 2)
        depth = -rel[:, 2]
        return np.stack(
            [self.width / 2 + focal * rel[:, 0] / depth, self.height / 2 - focal * rel[:, 1] / depth], 1
        )

    def close(self) -> None:
        """Free the OpenGL context."""
        if getattr(self, "_gl", None) is not None:
            self._gl.delete()
            self._gl = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------

    def _annotate(self, image: np.ndarray, caption: str | None) -> None:
        if self.labels:
            draw_labels(image, ("speaker", "listener"), self.width)
        if caption:
            draw_caption(image, caption)

    def _render_chunk(self, frames: np.ndarray, expression_basis: str) -> np.ndarray:
        if self._gl is None:
            raise RuntimeError("this Renderer was closed; create a new one")
        scene = self._scene(expression_basis)
        model = scene["model"]
        verts, normals = model.vertices(frames, with_normals=True)
        out = np.empty((len(frames), self.height, self.width, 3), np.uint8)
        for i in range(len(frames)):
            out[i] = self._render_mesh(scene, verts[i], normals[i])
        return out

    def _render_mesh(self, scene: dict[str, Any], verts: np.ndarray, normals: np.ndarray) -> np.ndarray:
        if not (self.fast_upload and self._update_vertex_buffer(scene, verts, normals)):
            self._add_primitive(scene, verts, normals)
        color, _ = self._gl.render(scene["scene"])
        return color[..., :3]

    def _add_primitive(self, scene: dict[str, Any], verts: np.ndarray, normals: np.ndarray) -> None:
        pyrender = self._pyrender
        primitive = pyrender.Primitive(
            positions=verts,
            normals=normals,
            color_0=scene["colors"],
            indices=scene["indices"],
            material=scene["material"],
            mode=pyrender.constants.GLTF.TRIANGLES,
        )
        if scene["node"] is not None:
            scene["scene"].remove_node(scene["node"])
        scene["node"] = scene["scene"].add(pyrender.Mesh([primitive]))
        scene["primitive"] = primitive

    def _update_vertex_buffer(self, scene: dict[str, Any], verts: np.ndarray, normals: np.ndarray) -> bool:
        """Overwrite the positions and normals of the mesh already on the GPU, in place.

        pyrender re-interleaves and re-uploads every attribute (colors, indices too) for a new primitive,
        about a third of a frame on llvmpipe. Its vertex buffer interleaves position (3), normal (3) and
        color (4) floats per vertex (pyrender 0.1.45); anything unexpected falls back to a new primitive.
        """
        primitive = scene.get("primitive")
        buffers = getattr(primitive, "_buffers", None)
        if primitive is None or not buffers or getattr(primitive, "_vaid", None) is None:
            return False
        from OpenGL import GL

        data = scene["interleaved"]
        data[:, 0:3] = verts
        data[:, 3:6] = normals
        self._gl._platform.make_current()
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, buffers[0])
        GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        return True

    def _scene(self, expression_basis: str) -> dict[str, Any]:
        if expression_basis not in self._scenes:
            from dyadic_env.face.model import load_face_model

            self._scenes[expression_basis] = self._build_scene(load_face_model(expression_basis))
        return self._scenes[expression_basis]

    def _build_scene(self, model: Any) -> dict[str, Any]:
        pyrender = self._pyrender
        ambient, lights = LIGHTS[self.shading]
        scene = pyrender.Scene(bg_color=[*BACKGROUND, 1.0], ambient_light=[ambient] * 3)
        center, framed = np.asarray(model.view_center, float), float(model.view_height) * FRAME_MARGIN
        distance = CAMERA_DISTANCE * framed
        yfov = 2 * np.arctan(framed / 2 / distance)
        camera_pose = np.eye(4)
        camera_pose[:3, 3] = center + np.array([0.0, 0.0, distance])
        scene.add(
            pyrender.PerspectiveCamera(yfov=yfov, aspectRatio=self.width / self.height), pose=camera_pose
        )
        for yaw, pitch, intensity in lights:
            scene.add(
                pyrender.DirectionalLight(color=[1.0, 1.0, 1.0], intensity=intensity),
                pose=_light_pose(yaw, pitch),
            )
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.7
        )
        return {
            "scene": scene,
            "model": model,
            "material": material,
            "colors": model.vertex_colors,
            "indices": model.faces.astype(np.uint32),
            "camera": {"position": camera_pose[:3, 3].copy(), "yfov": yfov},
            "node": None,
            "primitive": None,
            "interleaved": np.concatenate(
                [np.zeros((model.num_vertices, 6), np.float32), model.vertex_colors], axis=1
            ),
        }


def _light_pose(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Pose of a directional light (it shines along its -z) turned by yaw about y, then pitch about x."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    pose = np.eye(4)
    pose[:3, :3] = ry @ rx
    return pose


def _check_pair(
    speaker_frames: np.ndarray, listener_frames: np.ndarray, captions: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Speaker and listener frames checked to be ``(T, 56)`` of one length T, with a caption a frame if any."""
    speaker = _check_frames(speaker_frames, "speaker_frames")
    listener = _check_frames(listener_frames, "listener_frames")
    if len(speaker) != len(listener):
        raise ValueError(
            f"speaker_frames and listener_frames must have the same length; got {len(speaker)} and {len(listener)}"
        )
    if captions is not None and len(captions) != len(speaker):
        raise ValueError(f"captions must have one entry per frame ({len(speaker)}); got {len(captions)}")
    return speaker, listener


def _check_frames(frames: np.ndarray, name: str) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != FRAME_DIM:
        raise ValueError(f"{name} must have shape (T, {FRAME_DIM}); got {frames.shape}")
    if not np.isfinite(frames).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return frames
