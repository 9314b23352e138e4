"""A live process: one read of it (capture), and the sampler that reads it again and again.

capture.py reads a process once into a classified map; sampler.py keeps that
map up to date at the cost of the kernel's own read; diff.py and events.py say
what changed; watch.py runs the sampler on a schedule and keeps what the views
show in bounded memory.
"""
