"""Pairwise contrastive losses: PyTorch references and fused Triton kernels behind one interface.

This package imports only torch and triton (never hcld or grid).
"""

from kernels.reference import icld, label_contrastive, supcon

__all__ = ["icld", "supcon", "label_contrastive"]
