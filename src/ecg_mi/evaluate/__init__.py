"""Evaluation of finished sweeps: collect runs, Table 2 with CIs, subgroups, figures."""
