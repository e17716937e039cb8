"""Benchmarks of the lstm-vs-rnn pipeline: `make bench` (or `python -m benchmarks`).

They measure what a user waits for (training, the edit-repro loop, a 10^6-point run, tracking)
and print one table. Every comparison is a ratio of two measurements taken in the same
invocation, so it holds on any machine; absolute numbers are for this machine only.
"""
