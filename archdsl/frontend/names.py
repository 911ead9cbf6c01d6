"""Names a label may not take, because the compiled module would break.

A label becomes a submodule attribute of the compiled ``torch.fx.GraphModule``
and a name in its generated ``forward``. So it may not be a Python keyword,
``self``, a dunder name, or an attribute of ``nn.Module`` / ``fx.GraphModule``
(``eval``, ``forward``, ``training``, ``to``, ``graph``, ``code``…): such a
label would replace a method of the module or break its generated code. The
front end does not import torch, so the attribute names are written here as
data; ``tests/test_security.py`` checks them against the installed torch.
"""

from __future__ import annotations

from ..errors import SpecError, Span

PYTHON_KEYWORDS = frozenset({
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
    "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return",
    "try", "while", "with", "yield"
})

# Attributes of torch.nn.Module and torch.fx.GraphModule (classes and instances), dunders excluded.
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "_apply", "_backward_hooks", "_backward_pre_hooks", "_boxed_call",
    "_buffers", "_call_impl", "_code", "_compiled_call_impl", "_create_node_hooks",
    "_deepcopy_hooks", "_deepcopy_init", "_erase_node_hooks", "_forward_hooks",
    "_forward_hooks_always_called", "_forward_hooks_with_kwargs", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_get_backward_hooks", "_get_backward_pre_hooks",
    "_get_name", "_graph", "_is_full_backward_hook", "_lineno_map", "_load_from_state_dict",
    "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks",
    "_maybe_warn_non_full_backward_hook", "_modules", "_named_members",
    "_non_persistent_buffers_set", "_parameters", "_prologue_start", "_recompile_submodules",
    "_register_create_node_hook", "_register_deepcopy_hook", "_register_erase_node_hook",
    "_register_load_state_dict_pre_hook", "_register_replace_node_hook",
    "_register_state_dict_hook", "_replace_hooks", "_replicate_for_data_parallel",
    "_save_to_state_dict", "_set_replace_hook", "_slow_forward", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_tracer_cls", "_tracer_extras", "_unregister_create_node_hook",
    "_unregister_deepcopy_hook", "_unregister_erase_node_hook", "_unregister_replace_node_hook",
    "_version", "_wrapped_call", "_wrapped_call_impl", "add_module", "add_submodule", "apply",
    "bfloat16", "buffers", "call_super_init", "children", "code", "compile", "cpu", "cuda",
    "delete_all_unused_submodules", "delete_submodule", "double", "dump_patches", "eval",
    "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter",
    "get_submodule", "graph", "half", "ipu", "load_state_dict", "meta", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "print_readable", "recompile", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "shape_env", "share_memory", "state_dict", "to",
    "to_empty", "to_folder", "train", "training", "type", "xpu", "zero_grad"
})

RESERVED = PYTHON_KEYWORDS | MODULE_ATTRIBUTES | {"self"}


def check_label(name: str, span: Span | None) -> str:
    """``name`` if it is safe as a module attribute, else a :class:`SpecError` at ``span``."""
    if name in RESERVED or (name.startswith("__") and name.endswith("__")):
        what = ("a Python keyword" if name in PYTHON_KEYWORDS else
                "an attribute of torch.nn.Module" if name != "self" else "reserved for the module itself")
        raise SpecError(f"{name!r} cannot name a layer: it is {what}", span,
                        hint=f"choose another name, e.g. {name.strip('_')}_ or {name.strip('_')}1")
    return name
