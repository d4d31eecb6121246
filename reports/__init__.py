"""Reports of simulation runs: self-contained HTML pages with matplotlib figures.

html.py builds the page of one run, compare.py the what-if page of two, figures.py draws.
They take the runs' results as plain data (summary.json, series.json) and import nothing else
of the testbed.
"""
