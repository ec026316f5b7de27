"""Measuring the pipeline on labelled data: retrieval (nDCG, recall, MRR per mode) and answers
(containment, F1, citation precision, refusals), with the shared metrics. Used by `rag eval`."""
