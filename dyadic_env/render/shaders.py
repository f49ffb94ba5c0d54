"""A light clay shader for pyrender's main pass (Lambert diffuse, a faint highlight, no image-based light).

pyrender's default physically based shader spends most of a frame on llvmpipe (about 20 of 25 ms for a
256x256 head); this one gives the same look of matte clay in a fraction of the time. pyrender loads its
main-pass program from ``mesh.vert``/``mesh.frag`` in its shader cache directory, so the renderer points
that cache at a directory holding these two files. The sources live here (not as data files) so that
every installation has them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

SHADER_VERSION = 4

MESH_VERT = """#version 330 core
layout(location = 0) in vec3 position;
#ifdef NORMAL_LOC
layout(location = NORMAL_LOC) in vec3 normal;
#endif
#ifdef COLOR_0_LOC
layout(location = COLOR_0_LOC) in vec4 color_0;
#endif
layout(location = INST_M_LOC) in mat4 inst_m;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

out vec3 frag_position;
out vec3 frag_normal;
out vec4 frag_albedo;

void main()
{
    mat4 model = M * inst_m;
    vec4 world = model * vec4(position, 1.0);
    gl_Position = P * V * world;
    frag_position = world.xyz;
#ifdef NORMAL_LOC
    // Poses here are rigid, so the model matrix itself turns normals (no inverse-transpose per vertex).
    frag_normal = mat3(model) * normal;
#else
    frag_normal = vec3(0.0, 0.0, 1.0);
#endif
#ifdef COLOR_0_LOC
    vec4 albedo = color_0;
#else
    vec4 albedo = vec4(0.62, 0.60, 0.58, 1.0);
#endif
    // To linear light once per vertex rather than once per pixel (colours are flat per part).
    frag_albedo = vec4(pow(albedo.rgb, vec3(2.2)), albedo.a);
}
"""

MESH_FRAG = """#version 330 core
struct DirectionalLight {
    vec3 direction;
    vec3 color;
    float intensity;
};

uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform int n_directional_lights;
uniform vec3 ambient_light;
uniform vec3 cam_pos;

in vec3 frag_position;
in vec3 frag_normal;
in vec4 frag_albedo;

out vec4 frag_color;

void main()
{
    vec3 n = normalize(frag_normal);
    vec3 v = normalize(cam_pos - frag_position);
    // Inner surfaces (mouth, eye sockets) are seen from their back side: light them as the front.
    if (dot(n, v) < 0.0) {
        n = -n;
    }
    vec3 albedo = frag_albedo.rgb;
    vec3 color = ambient_light * albedo;
    for (int i = 0; i < n_directional_lights; i++) {
        vec3 l = -directional_lights[i].direction;
        vec3 radiance = directional_lights[i].color * directional_lights[i].intensity;
        float ndl = max(dot(n, l), 0.0);
        // A faint highlight, exponent 16 by squaring: pow() is costly on a CPU rasterizer.
        float h = max(dot(n, normalize(l + v)), 0.0);
        h *= h;
        h *= h;
        h *= h;
        h *= h;
        color += radiance * ndl * (albedo + vec3(0.06 * h));
    }
    frag_color = vec4(pow(clamp(color, 0.0, 1.0), vec3(1.0 / 2.2)), frag_albedo.a);
}
"""


def shader_dir() -> Path:
    """A directory with ``mesh.vert`` and ``mesh.frag``, written once under the cache."""
    root = Path(os.environ.get("DYADIC_CACHE", "~/.cache/dyadic")).expanduser() / "render"
    final = root / f"shaders-v{SHADER_VERSION}"
    if (final / "mesh.frag").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".shaders.", suffix=".partial", dir=root))
    (tmp / "mesh.vert").write_text(MESH_VERT)
    (tmp / "mesh.frag").write_text(MESH_FRAG)
    try:
        os.rename(tmp, final)
    except OSError:  # another process got there first; its files are the same
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return final


def install_clay_shader(offscreen_renderer: Any) -> bool:
    """Make a ``pyrender.OffscreenRenderer`` use the clay shader; False if pyrender's layout differs.

    This reaches into pyrender's private renderer (checked with pyrender 0.1.45); when that changes, the
    default shader stays in use, slower but correct.
    """
    from pyrender.shader_program import ShaderProgramCache

    inner = getattr(offscreen_renderer, "_renderer", None)
    if inner is None or not hasattr(inner, "_program_cache"):
        return False
    inner._program_cache = ShaderProgramCache(shader_dir=str(shader_dir()))
    return True
