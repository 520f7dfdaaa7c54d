"""HCLD: Hybrid Contrastive Learning Decoupling for speech emotion recognition (ICASSP 2025)."""

__version__ = "0.1.0"
