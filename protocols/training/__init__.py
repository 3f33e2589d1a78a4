"""In-situ training with the hybrid synapse of Choi et al. 2021: the ``hybrid-training``
protocol (:mod:`~protocols.training.hybrid`), activations, MNIST, the paper's sweep and plots."""

from protocols.training.hybrid import HybridTraining, HybridTrainingParams

__all__ = ["HybridTraining", "HybridTrainingParams"]
