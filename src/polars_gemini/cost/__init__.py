"""Tokens and dollars: the dated price table (`prices`), the cost arithmetic on token counts (`arithmetic`), and the
estimate of a plan before it is sent, with the actual cost from usage metadata after (`estimate`)."""
