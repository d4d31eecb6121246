"""Reports of simulation runs: self-contained HTML pages with matplotlib figures.

html.py builds the page of one run, compare.py the what-if page of two, figures.py draws;
validation.py builds the page of a model's validation against the live testbed (its figures in
validation_figures.py). They take results as plain data (summary.json, series.json,
validation.json) and import nothing else of the testbed.
"""
