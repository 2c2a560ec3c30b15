"""Real data: the 2-D Gaussian mixtures (``mixtures``) and image data sets with their HDF5 caches
(``images``)."""
