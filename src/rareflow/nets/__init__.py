"""Network building blocks shared by the torch detectors: activations, MLPs and conv nets.

* :mod:`~rareflow.nets.mlp` — :func:`mlp` (the one fully connected stack) and :class:`MLP`
  (stored input standardisation + :func:`mlp`);
* :mod:`~rareflow.nets.conv` — :class:`ConvEncoder`, :class:`ConvAutoencoderNet` (the
  conv-autoencoder net and fastflow's backbone), :class:`ConvClassifierNet` (cnn-classifier),
  :func:`coordinate_channels`, :func:`pad_to_multiple`;
* :mod:`~rareflow.nets.backbone` — :class:`FrozenFeatures`, :class:`StandardisedFeatures` (the
  frozen, standardised feature maps of the flows on images).
"""

from rareflow.nets.activations import ACTIVATIONS, activation
from rareflow.nets.backbone import FrozenFeatures, StandardisedFeatures
from rareflow.nets.conv import ConvAutoencoderNet, ConvClassifierNet, ConvEncoder, coordinate_channels, pad_to_multiple
from rareflow.nets.mlp import MLP, mlp

__all__ = [
    "ACTIVATIONS", "MLP", "ConvAutoencoderNet", "ConvClassifierNet", "ConvEncoder", "FrozenFeatures",
    "StandardisedFeatures", "activation", "coordinate_channels", "mlp", "pad_to_multiple",
]  # fmt: skip
