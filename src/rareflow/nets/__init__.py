"""Network building blocks shared by the torch detectors: activations, MLPs and conv nets.

* :mod:`~rareflow.nets.mlp` — :func:`mlp` (the one fully connected stack) and :class:`MLP`
  (stored input standardisation + :func:`mlp`);
* :mod:`~rareflow.nets.conv` — :class:`ConvEncoder`, :class:`ConvAutoencoderNet` (the
  conv-autoencoder net and fastflow's backbone), :func:`coordinate_channels`, :func:`pad_to_multiple`.
"""

from rareflow.nets.activations import ACTIVATIONS, activation
from rareflow.nets.conv import ConvAutoencoderNet, ConvEncoder, coordinate_channels, pad_to_multiple
from rareflow.nets.mlp import MLP, mlp

__all__ = [
    "ACTIVATIONS", "MLP", "ConvAutoencoderNet", "ConvEncoder", "activation", "coordinate_channels", "mlp",
    "pad_to_multiple",
]  # fmt: skip
