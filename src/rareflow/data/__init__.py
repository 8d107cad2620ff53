"""Data sources and feature tables: readers/writers, validation, the simulator and Hillas parameters."""
