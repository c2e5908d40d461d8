"""Composing the flags that choose a section's class, as jsonargparse applies them.

``--model.class_path X`` (or ``--model X``) switches ``model`` to the class ``X``. jsonargparse then keeps the
lower layers' ``init_args`` only where ``X`` accepts them (a parameter of that name whose type takes the value)
and applies the flags after it to ``X``. The composition does the same, so that interpolations and ``config
explain`` see the config that jsonargparse builds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from enhtrain.config.compose import CLASS_SECTIONS, flag_path, has_interpolation
from enhtrain.config.merging import set_path

if TYPE_CHECKING:
    from enhtrain.config.loading import Layer
    from enhtrain.security import ImportPolicy

__all__ = ["apply_class_flags", "chosen_class", "composed_class_flags"]

# How LightningCLI adds each section's class arguments, so that a class's parser reads its init_args as the CLI does.
_SUB_ADD_KWARGS: dict[str, dict[str, Any]] = {
    "model": {"fail_untyped": False, "sub_configs": True},
    "data": {"fail_untyped": False, "sub_configs": True},
    "optimizer": {"instantiate": False, "fail_untyped": False, "skip": {"params"}},
    "lr_scheduler": {"instantiate": False, "fail_untyped": False, "skip": {"optimizer"}},
}


def chosen_class(key: str, value: Any) -> str | None:
    """The class name that the flag ``--key value`` chooses, or ``None`` when it chooses none.

    ``--model Name``, ``--model.class_path Name`` and ``--model '{class_path: Name, ...}'`` choose a class;
    ``--model model.yaml`` names a file that jsonargparse reads, which the composition leaves to it.
    """
    path = key.split(".")
    if path[0] not in CLASS_SECTIONS or path[1:] not in ([], ["class_path"]):
        return None
    if isinstance(value, dict) and not path[1:]:
        value = value.get("class_path")
    if not isinstance(value, str) or not value.strip():
        return None
    if value.endswith((".yaml", ".yml", ".json")) or os.path.isfile(value):
        return None
    return value.strip()


def _import_class(path: str, key: str, where: str, policy: ImportPolicy) -> Any:
    """Import ``pkg.module.Class`` (or ``pkg.module:Class``) through the import gate, or return ``None`` when it
    is not there.

    Raises:
        ConfigError: If the import gate refuses the name.
    """
    from enhtrain.errors import ConfigError
    from enhtrain.security import import_object

    try:
        return import_object(path.replace(":", "."), key=key, where=where, policy=policy)
    except ConfigError:
        raise
    except Exception:  # jsonargparse reports a class it cannot import; the composition then leaves it alone
        return None


def _carried_init_args(section: str, new_class: Any, new_path: str, old_path: Any,
                       init_args: dict[str, Any]) -> list[str] | None:
    """The keys of ``init_args`` that jsonargparse carries over to ``new_class``, or ``None`` if unknown.

    jsonargparse's rule on a class_path change: a key is kept when the new class's parser has an argument of that
    name and the value passes that argument's type check; every other key is dropped.
    """
    try:
        from jsonargparse import ArgumentParser, Namespace
        from jsonargparse._typehints import discard_init_args_on_class_path_change

        # The parser jsonargparse builds for a class it switches to (LightningCLI's parsers read YAML).
        parser = ArgumentParser(exit_on_error=False, parser_mode="yaml")
        parser.add_class_arguments(new_class, **_SUB_ADD_KWARGS[section])
        previous = Namespace(class_path=str(old_path), init_args=Namespace(**init_args))
        discard_init_args_on_class_path_change(parser, previous, Namespace(class_path=new_path))
        return [k for k in init_args if k in previous.init_args]
    except Exception:  # a class jsonargparse cannot read: it reports that itself
        return None


def _switch(layer: Layer, section: str, new_path: str, new_class: Any, where: str) -> bool:
    """Switch ``section`` of ``layer`` to ``new_path``, keeping the init_args the new class accepts.

    Returns:
        Whether the switch could be composed.
    """
    current = layer.data.get(section)
    if isinstance(current, str):
        current = {"class_path": current}
    current = current if isinstance(current, dict) else {}
    old_path = current.get("class_path")
    init_args = current.get("init_args") if isinstance(current.get("init_args"), dict) else {}
    if old_path == new_path:
        kept = list(init_args)
    else:
        found = _carried_init_args(section, new_class, new_path, old_path, init_args)
        if found is None:
            return False
        kept = found
    kept_paths = {(section, "init_args", k) for k in kept}
    layer.sources = {
        p: s for p, s in layer.sources.items()
        if p[:1] != (section,) or p[:3] in kept_paths or (old_path == new_path and p[1:2] == ("dict_kwargs",))
    }
    value: dict[str, Any] = {"class_path": new_path}
    if kept:
        value["init_args"] = {k: init_args[k] for k in kept}
    if old_path == new_path and "dict_kwargs" in current:
        value["dict_kwargs"] = current["dict_kwargs"]
    layer.data[section] = value
    layer.sources[(section, "class_path")] = where
    return True


def _resolve(section: str, name: str, current: Any, key: str, policy: ImportPolicy) -> tuple[str, Any] | None:
    """The full import path of the class a flag names, and the class, after the import gate has passed it.

    A bare class name is resolved only when it names the section's current class; jsonargparse resolves the
    others among the classes it knows.

    Raises:
        ConfigError: If the import gate refuses the name.
    """
    from enhtrain.security import check_import

    check_import(name, key=f"{section}.class_path", where=f"flag --{key}", policy=policy)
    if "." not in name.replace(":", "."):
        old = current.get("class_path") if isinstance(current, dict) else current
        if not isinstance(old, str) or old.replace(":", ".").rpartition(".")[2] != name:
            return None
        name = old
    new_class = _import_class(name, f"{section}.class_path", f"flag --{key}", policy)
    return (name, new_class) if new_class is not None else None


def apply_class_flags(layer: Layer, flags: Sequence[tuple[str, Any]], policy: ImportPolicy) -> None:
    """Apply, in order, the flags that choose a section's class and the flags after them for that section.

    A section is composed only when every class it is switched to can be resolved and imported, and none of its
    flags holds an interpolation (jsonargparse receives those flags as written); otherwise its flags stay
    jsonargparse's alone.

    Args:
        layer: The merged layers, with the other flags applied; changed in place.
        flags: ``(dotted key, value)`` pairs, in command-line order.
        policy: The import gate's rules, applied to every class name before it is imported.

    Raises:
        ConfigError: If the import gate refuses a class name.
    """
    by_section: dict[str, list[tuple[str, Any]]] = {}
    for key, value in flags:
        by_section.setdefault(key.split(".")[0], []).append((key, value))
    for section, section_flags in by_section.items():
        if any(has_interpolation(value) for _, value in section_flags):
            continue
        work = _copy_section(layer, section)
        for key, value in section_flags:
            name = chosen_class(key, value)
            if name is None and "." not in key:
                break  # the whole section from a file, or as options: jsonargparse's to read
            if name is None:
                set_path(work, flag_path(work.data, key), value, f"flag --{key}")
                continue
            resolved = _resolve(section, name, work.data.get(section), key, policy)
            if resolved is None or not _switch(work, section, resolved[0], resolved[1], f"flag --{key}"):
                break
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    if sub != "class_path":
                        set_path(work, (section, sub), sub_value, f"flag --{key}")
        else:
            layer.data[section] = work.data.get(section)
            layer.sources = {p: s for p, s in layer.sources.items() if p[:1] != (section,)}
            layer.sources.update(work.sources)


def _copy_section(layer: Layer, section: str) -> Layer:
    """A copy of one section of ``layer``, with its sources, to compose into before committing."""
    import copy

    from enhtrain.config.loading import Layer

    data = {section: copy.deepcopy(layer.data[section])} if section in layer.data else {}
    return Layer(data, {p: s for p, s in layer.sources.items() if p[:1] == (section,)})


def composed_class_flags(flags: Sequence[tuple[str, Any]], sources: dict[tuple[str, ...], str]) -> set[str]:
    """The keys of the class flags that the composition applied, given the composed config's sources.

    A section's flags were applied when its ``class_path`` was set by one of its class-choosing flags.
    """
    labels = {f"flag --{key}" for key, value in flags if chosen_class(key, value) is not None}
    sections = {path[0] for path, label in sources.items() if path[1:] == ("class_path",) and label in labels}
    return {key for key, _ in flags if key.split(".")[0] in sections}
