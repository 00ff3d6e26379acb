"""Offline evaluation and analysis: quality against loss, H.264/H.265 baselines, ablations, the link
planner, benchmarks, figures, galleries and reports.

Nothing here runs in a live stream. It may import the live applications (:mod:`mstvsc_stream.pipeline`)
and the layers below them; nothing in the streaming path imports it.
"""
