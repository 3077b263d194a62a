"""ltlib: LIFT fine-tuning, GLA prior estimation and the backdoor adjustment of Chen et al. (ICML 2025).

Modules by role: ``data`` (manifests, datasets, transforms), ``backbones`` / ``adapters`` / ``heads`` /
``model`` (foundation models, AdaptFormer, cosine classifier), ``losses``, ``engine`` (train / evaluate),
``cache`` (logits on disk), ``metrics`` (D- and P-groups), ``priors`` (GLA), ``adjust`` (backdoor
adjustment), ``miniworld`` (the synthetic world), ``results`` / ``report`` / ``plots`` / ``runner`` (the book).
"""

__version__ = "0.1.0"
