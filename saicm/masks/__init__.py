"""Masks for the SA-ICM and Object-ICM losses.

``edges``   segment map → binary edges (the one place edges are made)
``regions`` weight-free segmenter with SAM's α contract (default source)
``sam``     Meta's Segment Anything automatic masks (user-supplied checkpoint)
``coco``    object masks from COCO annotations (Object-ICM)
``job``     the ``saicm masks`` folder job: manifest, resume, shards, previews
"""
