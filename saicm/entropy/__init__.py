"""Entropy coding: CompressAI's entropy models and rANS coder, bounded for untrusted input (:mod:`.bounded`)."""
