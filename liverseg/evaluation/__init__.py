"""LiTS evaluation: surface distances (``surface``), per-case metrics and
lesion detection (``metrics``), pairing prediction and reference files
(``pairing``), aggregation over cases (``aggregate``), the report's files
and table (``writers``), and scoring whole directories (``report``)."""
