"""ltlib: LIFT fine-tuning, GLA prior estimation and the backdoor adjustment of Chen et al. (ICML 2025).

Four layers, each a folder:

- the method library, at the top of the package: ``data`` (manifests, datasets, transforms),
  ``backbones`` / ``adapters`` / ``prompts`` / ``heads`` / ``model`` (foundation models, AdaptFormer, VPT, cosine head),
  ``losses``, ``engine`` (train / evaluate), ``cache`` (logits on disk), ``runs`` / ``stage2`` (the
  method's two stages), ``metrics`` (D- and P-groups), ``priors`` (GLA), ``adjust`` (backdoor
  adjustment), ``results`` (tidy tables), ``export`` (a trained model as safetensors; prediction),
  ``paths`` (every location), ``cli`` (the commands);
- ``miniworld``: the synthetic world with known ground truth and its studies;
- ``book``: the notebook runner, analyses, claims, report and plots behind the book's pages;
- ``bench``: the benchmarks shown on the performance page.

The method library imports neither of the other three (``tests/test_layers.py``).
"""

__version__ = "0.1.0"
