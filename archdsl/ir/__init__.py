"""The IR: a ``networkx.DiGraph`` of primitive ops with every shape known.

``graph`` holds :class:`Architecture`, the node schema and ``verify()``;
``ops`` is the op registry (one :class:`OpDef` per op, torch-free);
``passes`` holds the named IR → IR rewrites run after elaboration.
"""
