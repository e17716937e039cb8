"""Reproducible, tracked comparison of recurrent forecasters (plain RNN vs LSTM)."""
