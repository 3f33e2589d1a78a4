"""In-situ training with the hybrid synapse of Choi et al. 2021: the ``hybrid-training``
protocol (:mod:`~protocols.training.hybrid`; its parameters :mod:`~protocols.training.params`,
arrays :mod:`~protocols.training.layout`, device algorithms :mod:`~protocols.training.devices`,
float baseline :mod:`~protocols.training.float_network`, phases :mod:`~protocols.training.phase`,
run :mod:`~protocols.training.loop` with :mod:`~protocols.training.metrics`,
:mod:`~protocols.training.resume` and :mod:`~protocols.training.ex_situ`), activations, MNIST,
the paper's sweep and plots."""

from protocols.training.hybrid import HybridTraining
from protocols.training.params import HybridTrainingParams

__all__ = ["HybridTraining", "HybridTrainingParams"]
