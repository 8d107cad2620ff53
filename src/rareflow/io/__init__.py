"""Readers and writers at the edge: feature tables (Parquet, CSV, MAGIC, ctapipe DL1), sim_telarray
reading, IDX images, scores tables. Input is validated here once, with one-line errors naming file,
column, row and the fix; inside rareflow arrays are trusted. Imports only the shared mechanisms."""
