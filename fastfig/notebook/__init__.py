"""fastfig in Jupyter: shown figures become live widgets in the cell's output
(``%matplotlib fastfig``; needs ``pip install "fastfig[notebook]"``)."""
