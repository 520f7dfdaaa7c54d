"""The training losses of HCLD, one small module per loss (formula in each docstring).

- task.py     L_task = CE(emotion) + CE(speaker)
- icld.py     instance-level contrastive decoupling (the paper's L_CLD)
- supcon.py   supervised contrastive loss (L_SCL)
- lcl.py      label-anchored contrastive loss (L_Label)
- orth.py     orthogonality baseline (the paper's "orth" rows)
- sampling.py replicate-and-downsample so every contrastive anchor has a positive
- variants.py the rows of Table II as data (name -> loss weights) and the weighted total

The pairwise math lives once, in `kernels` (PyTorch reference + Triton); these modules only pick
inputs, apply the configuration and call `kernels.<op>(..., impl=)`. Option values are checked once,
by `hcld.config.TrialConfig`; the functions here take them as required keyword arguments.
"""

from __future__ import annotations
