"""The asynchronous engine (``--engine async``): D and C processes serve slots as they arrive.
``supervisor`` dispatches (it extends the parallel one); ``loops`` are the children's side."""
