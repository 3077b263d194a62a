"""The book's machinery: the notebook runner, the analyses and claims behind each page, the reproduction
report, one plotting function per paper figure and the performance page. Imports the method library and
the mini world; the method library never imports this package."""
