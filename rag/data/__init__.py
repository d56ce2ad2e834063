"""Data files bundled with the rag package (glossary.tsv for rag/crosslingual.py); a package so that
importlib.resources finds them in a source checkout, an editable install and a wheel alike."""
