"""The report: the document, its table, the CI gate (check) and compare."""
