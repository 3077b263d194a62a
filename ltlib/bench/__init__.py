"""Benchmarks (``make bench``; never tests): side-by-side timings, inference cost and the full-scale
estimates shown on the book's performance page. The method library never imports this package."""
