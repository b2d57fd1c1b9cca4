"""The attention registry: `ATTENTION` (name -> class), plugins of the entry-point group `attnbench.attention`,
`package.module:ClassName` strings, and `build_attention`, which always returns the full keyword interface.

A new variant is its module plus one `ATTENTION` line (or an entry point of your own package). attnbench.attention
re-exports all of this; import from there.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from torch import nn

from attnbench.attention.additive import Additive
from attnbench.attention.dot import Dot
from attnbench.attention.general import General
from attnbench.attention.interface import full_interface
from attnbench.attention.scaled_dot import ScaledDot

ATTENTION: dict[str, type[nn.Module]] = {
    "additive": Additive,
    "dot": Dot,
    "general": General,
    "scaled_dot": ScaledDot,
    # "multihead" is added by attnbench/attention/__init__.py: MultiHead builds its inner variant through this
    # registry, so it is registered once both modules exist.
}

ENTRY_POINT_GROUP = "attnbench.attention"


def _plugins() -> dict[str, EntryPoint]:
    """Installed plugins by name; registry names win, so a plugin cannot shadow a built-in."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in ATTENTION}


def _check_module_class(obj: Any, origin: str) -> type[nn.Module]:
    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
        raise TypeError(
            f"{origin} is {obj!r}, not a torch.nn.Module subclass: point it at a class "
            "`class X(nn.Module)` taking (query_dim, key_dim, value_dim, *, dropout, ...) and returning "
            "(output, weights | None) from forward"
        )
    return obj


def _import_class(impl: str) -> type[nn.Module]:
    module_name, _, class_name = impl.partition(":")
    if not module_name or not class_name or ":" in class_name:
        raise ValueError(f"attention impl '{impl}' must look like package.module:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"cannot import module '{module_name}' for attention impl '{impl}' ({err}): check the spelling, and "
            "install its package (pip install -e .) or run from the folder that contains it / add it to PYTHONPATH"
        ) from err
    obj: Any = module
    try:
        for part in class_name.split("."):  # nested classes: module:Outer.Inner
            obj = getattr(obj, part)
    except AttributeError:
        defined = sorted(
            name for name, value in vars(module).items()
            if inspect.isclass(value) and issubclass(value, nn.Module) and value.__module__ == module.__name__
        )
        raise AttributeError(
            f"module '{module_name}' has no class '{class_name}' (attention impl '{impl}'); "
            f"nn.Module classes it defines: {', '.join(defined) or 'none'}"
        ) from None
    return _check_module_class(obj, f"attention impl '{impl}'")


def _unknown(name: str) -> ValueError:
    valid = ", ".join(sorted([*ATTENTION, *_plugins()]))
    return ValueError(
        f"unknown attention '{name}': valid names are {valid} "
        "(or attention=custom attention.impl=package.module:ClassName)"
    )


def resolve_attention(name_or_impl: str) -> type[nn.Module]:
    """The class behind a registry name, an installed plugin's name or a `package.module:ClassName` string."""
    if name_or_impl in ATTENTION:
        return ATTENTION[name_or_impl]
    if ":" in name_or_impl:
        return _import_class(name_or_impl)
    plugin = _plugins().get(name_or_impl)
    if plugin is None:
        raise _unknown(name_or_impl)
    try:
        cls = plugin.load()  # imported only when asked for: a broken plugin cannot break other names
    except Exception as err:
        raise ImportError(
            f"attention plugin '{name_or_impl}' ({plugin.value}, entry-point group '{ENTRY_POINT_GROUP}') "
            f"failed to load: {err}; fix or uninstall the package that registers it"
        ) from err
    return _check_module_class(cls, f"attention plugin '{name_or_impl}' ({plugin.value})")


def build_attention(
    name: str, *, query_dim: int, key_dim: int, value_dim: int, dropout: float = 0.0, **kwargs: Any
) -> nn.Module:
    """Construct a variant by registry name, plugin name or `package.module:ClassName`, with the full interface."""
    cls = resolve_attention(name)
    try:
        inspect.signature(cls).bind(query_dim, key_dim, value_dim, dropout=dropout, **kwargs)
    except TypeError as err:
        raise TypeError(
            f"attention '{name}' cannot be built with query_dim={query_dim}, key_dim={key_dim}, "
            f"value_dim={value_dim}, dropout={dropout}, kwargs {kwargs} ({err}); its constructor is "
            f"{cls.__name__}{inspect.signature(cls)}"
        ) from None
    module = cls(query_dim, key_dim, value_dim, dropout=dropout, **kwargs)
    if not isinstance(getattr(module, "out_dim", None), int):
        raise TypeError(
            f"attention '{name}' ({cls.__name__}) sets no integer `out_dim`: set self.out_dim in __init__ "
            "to the size of its output's last dimension"
        )
    return full_interface(module)


def _describe(cls: type) -> str:
    text = getattr(cls, "description", None) or (inspect.getdoc(cls) or "").strip()
    return text.splitlines()[0] if text else ""


def available_attention() -> dict[str, str]:
    """Every variant usable as `attention=NAME`, with its one-line description (built-ins, then plugins)."""
    described = {name: _describe(cls) for name, cls in ATTENTION.items()}
    for name, plugin in sorted(_plugins().items()):
        try:
            described[name] = _describe(plugin.load())
        except Exception as err:  # listing must survive one broken plugin; resolving it names the error
            described[name] = f"(plugin {plugin.value} failed to load: {err})"
    return described
