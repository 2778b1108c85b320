"""The one YAML loader of the project: pipelines.yaml, the task catalog and the paper's numbers.

Plain data only: every tag beyond plain values, lists and mappings (``!!python/...``, ``!!set``,
``!!binary``, local ``!tags``) is refused before anything is constructed, and so is a key repeated
in one mapping (YAML would let the last one win silently), an integer longer than Python converts
(``sys.get_int_max_str_digits``) and a document nested deeper than the parser's recursion allows.
Problems are reported as a ConfigError naming the file and the line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from muppet_core.errors import ConfigError


class PlainLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for plain data, refusing duplicate keys and every non-plain tag."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key_node.value}'", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts: no setting holds such a number
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} characters is too long", node.start_mark
            ) from None


def _refuse_tag(loader: PlainLoader, node: yaml.Node) -> None:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise yaml.constructor.ConstructorError(
        None, None, f"tag '{tag}' is not allowed: plain values, lists and mappings only", node.start_mark
    )


PlainLoader.add_constructor("tag:yaml.org,2002:int", PlainLoader.construct_yaml_int)
for _tag in (None, "tag:yaml.org,2002:set", "tag:yaml.org,2002:binary", "tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs"):
    PlainLoader.add_constructor(_tag, _refuse_tag)


def parse_yaml(text: str, source: str) -> Any:
    """The plain data of a YAML document.

    Raises:
        ConfigError: not valid YAML, a refused tag, a duplicate key, an integer too long to convert
            (each with its line) or nesting too deep.
    """
    try:
        return yaml.load(text, Loader=PlainLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError([f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"], source) from None
    except RecursionError:
        raise ConfigError(["not valid YAML (nested too deeply)"], source) from None


def load_yaml(path: str | os.PathLike[str], source: str | None = None) -> Any:
    """Read and parse a YAML file with ``parse_yaml``.

    Args:
        path: the file.
        source: how errors name the file (default: its name).

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 or not plain YAML.
    """
    path = Path(path)
    source = source or path.name
    if not path.is_file():
        raise ConfigError([f"file not found: {path}"], str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start}: {exc.reason})"], source) from None
    except OSError as exc:
        raise ConfigError([f"cannot read the file ({exc.strerror or exc})"], source) from None
    return parse_yaml(text, source)
