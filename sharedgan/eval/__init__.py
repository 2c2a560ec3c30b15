"""Metrics of a mixture and of each of its generators: modes of 2-D data (``modes``), classes of
images (``coverage``), within-generator diversity (``spread``), Inception score and FID (``fidelity``)."""
