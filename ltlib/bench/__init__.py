"""Benchmarks (``make bench``; never tests): side-by-side timings, inference cost and the full-scale
estimates shown on the book's performance page. The method library never imports this package.

- ``suite``: the benchmark table, its runners and the full-scale estimates;
- ``rates``: the mini world's achieved arithmetic rate beside a large matmul's; the ``batched`` rows;
- ``batched``: K mini-world fine-tuning runs trained at once (``vmap`` over stacked adapters and heads);
- ``profile``: where the minutes of a ``make book`` go, from ``ltlib.phases`` records (``make profile``).
"""
