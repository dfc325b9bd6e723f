"""Masks for the SA-ICM and Object-ICM losses.

``edges``   segment map → binary edges (the one place edges are made)
``regions`` weight-free segmenter with SAM's α contract (default source)
``sam``     Meta's Segment Anything automatic masks (user-supplied checkpoint)
``coco``    COCO annotations: object masks (Object-ICM) or instance segment maps (edges)
``job``     the ``saicm masks`` folder job: manifest, resume, shards, previews
"""

#: mask sources of ``saicm masks --source`` (here, not in ``job``, so the CLI parser is built without numpy)
SOURCES = ("regions", "sam", "coco", "coco-edges")
#: sources whose mask is a region to weigh (Object-ICM); every other source gives a segment map for edges
OBJECT_SOURCES = ("coco",)
