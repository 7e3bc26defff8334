"""LiTS evaluation: surface distances (``surface``), per-case metrics and
lesion detection (``metrics``), directory pairing, aggregation and report
files (``report``)."""
