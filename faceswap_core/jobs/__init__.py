"""Long work over many inputs (a folder of photos), run by the local loop or on a Ray cluster."""
