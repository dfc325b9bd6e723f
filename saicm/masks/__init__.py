"""Masks for the SA-ICM and Object-ICM losses.

``edges``   segment map → binary edges (the one place edges are made)
``regions`` weight-free segmenter with SAM's α contract (default source)
``sam``     Meta's Segment Anything automatic masks (user-supplied checkpoint)
``coco``    COCO annotations: object masks (Object-ICM) or instance segment maps (edges)
``job``     the ``saicm masks`` folder job: manifest, resume, shards, previews
"""
