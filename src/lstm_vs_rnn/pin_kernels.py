"""Importing this pins the CPU kernels (see `lstm_vs_rnn.kernels`); stage scripts import it
first, before torch, which reads the settings when it loads."""

from lstm_vs_rnn.kernels import pin_cpu_kernels

pin_cpu_kernels()
