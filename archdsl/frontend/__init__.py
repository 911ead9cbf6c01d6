"""The front end: ``.arch`` text → typed AST → elaborated IR.

``parser`` (Lark grammar → :mod:`ast` nodes with spans), ``expr`` (the safe
expression evaluator), ``resolve`` (bundled names, spec files and imports) and
``elaborate`` (parameters, blocks, repeats, joins and naming → IR graph).
Every semantic error in a spec is raised here, with its span.
"""
