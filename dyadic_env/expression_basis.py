"""Named layouts of the 56-value motion frame and the expression bases a frame can drive.

A frame is ``[expression (50) | neck rotation (3) | jaw rotation (3)]``. Which face the 50 expression
values drive is a property of the data (``expression_basis`` in a dataset's manifest):

- ``"flame"``: real FLAME PCA expression coefficients (DECA/EMOCA/DualTalk codes);
- ``"ict-arkit"``: the ICT-FaceKit head's ARKit-style blendshape weights, in the order of
  :data:`ICT_ARKIT_EXPRESSIONS`. The three jaw blendshapes of the head (``jawOpen``, ``jawLeft``,
  ``jawRight``) are left out because the jaw is a joint (frame values ``53:56``).
"""

from __future__ import annotations

FRAME_DIM = 56
EXPRESSION = slice(0, 50)
NECK_POSE = slice(50, 53)
JAW_POSE = slice(53, 56)
POSE = slice(50, 56)

EXPRESSION_BASES = ("flame", "ict-arkit")

# Order matters: expression value i drives blendshape ICT_ARKIT_EXPRESSIONS[i].
ICT_ARKIT_EXPRESSIONS: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R",
    "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R",
    "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)  # fmt: skip
assert len(ICT_ARKIT_EXPRESSIONS) == 50


def ict_index(name: str) -> int:
    """Index of an ICT-FaceKit blendshape in the ``ict-arkit`` expression slice."""
    try:
        return ICT_ARKIT_EXPRESSIONS.index(name)
    except ValueError:
        raise KeyError(
            f"{name!r} is not an ict-arkit expression; expected one of {', '.join(ICT_ARKIT_EXPRESSIONS)}"
        ) from None
