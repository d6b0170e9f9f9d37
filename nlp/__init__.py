"""Text in, findings out: pure analysis with no I/O beyond loading the spaCy pipeline.

The entry point is `nlp.analysis.analyse`; importing this package loads nothing heavy, so a
small record module (nlp.model) stays cheap to import.
"""
