"""IACT physics: camera geometry, the image simulator, tail-cuts cleaning, Hillas parameters,
hex->square images and the sim_telarray extraction pipeline. Reads files only through
:mod:`rareflow.io`."""
