"""Back ends: pure functions of the IR.

``torch_fx`` (IR → ``torch.fx.GraphModule``, its ``LOWERINGS`` table in
``lowerings``), ``weights`` (state dicts into a compiled module), ``dot``
(Graphviz diagrams), ``table`` (the per-layer summary) and ``arch_text`` (the
IR printed back as ``.arch`` text). None of them parses text or re-derives
shapes; only ``torch_fx``, ``lowerings`` and ``weights`` import torch.
"""
