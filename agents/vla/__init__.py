"""The listener vision-language-action model (paper section III-C): model, SFT, agent, visual features.

- ``configuration``: :class:`VLAConfig`; ``network`` (with ``heads``, ``gestures``, ``inputs``): the network;
  ``modeling``: :class:`VLAForListening`, the ``transformers`` model and policy API around it;
- ``processing`` and ``text``: clips and observations to tensors; ``factory``: a fresh model for a dataset;
- ``decoding`` and ``agent``: closed-loop decoding and :class:`VLAAgent`; ``trl_support``: the view trl's DPO
  trains; ``sft``: supervised fine-tuning; ``features``: DINOv2/SigLIP speaker features.

Importing this package registers the model with ``transformers``' Auto classes, so
``AutoModel.from_pretrained(checkpoint)`` also loads a VLA checkpoint.
"""

from transformers import AutoConfig, AutoModel

from agents.vla.agent import VLAAgent
from agents.vla.configuration import VLAConfig
from agents.vla.modeling import VLAForListening
from agents.vla.processing import VLAProcessor

AutoConfig.register(VLAConfig.model_type, VLAConfig, exist_ok=True)
AutoModel.register(VLAConfig, VLAForListening, exist_ok=True)

__all__ = ["VLAAgent", "VLAConfig", "VLAForListening", "VLAProcessor"]
