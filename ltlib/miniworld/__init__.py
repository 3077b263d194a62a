"""The mini world (book: The mini world): a generative world of two-part objects with our own pre-trained mini CLIPs.

``load_world("default")`` gives a :class:`World`: ``.backbone(name)`` (pre-trained, cached on disk),
``.true_prior(name)``, ``.part_bias(name)``, ``.task(order=..., seed=...)``, ``.confounder_study()``,
``.reference_backbone()``; ``.prepare()`` (or ``python -m ltlib.miniworld prepare default``) pre-trains
every model in parallel processes. Modules: ``generator`` (renderer), ``names`` (class and part words),
``captions`` and ``corpora`` (pre-training data), ``pretrain`` (contrastive training), ``model_cache``
(disk cache), ``tasks`` (downstream data), ``confounder`` and ``cnn`` (the confounder study),
``diagnostics`` (checks against the ground truth), ``config``, ``seeds``.
The world's design decisions and their measured reasons are in ``ltlib/configs/worlds/default.yaml``.
"""

from .config import WorldConfig, load_world_config
from .generator import PartLayout, Renders, build_layout, render
from .world import World, load_world

__all__ = ["PartLayout", "Renders", "World", "WorldConfig", "build_layout", "load_world", "load_world_config", "render"]
