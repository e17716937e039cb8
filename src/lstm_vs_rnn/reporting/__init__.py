"""Layer 4, reports: the figures, the claims report and the evaluate stage's assessment of
every model, which writes them."""
