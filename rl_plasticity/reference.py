"""The lists in ``docs/`` that are generated from the registries, so that they cannot drift.

``python -m rl_plasticity.reference`` (``make docs``) rewrites each list in place;
``python -m rl_plasticity.reference --check`` exits 1 naming every stale page (a test runs it).
A list stands in its page between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``:

* ``methods`` (``docs/methods.md``): every registered method, its class, its hooks and its
  settings with their defaults (``rl_plasticity.plasticity.registry``);
* ``metrics`` (``docs/metrics.md``): every metric and method counter the report knows
  (``rl_plasticity.metrics.registry``);
* ``specs`` (``docs/runs.md``): every shipped env and agent spec with its description.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

#: The repository's ``docs/`` folder.
DOCS = Path(__file__).resolve().parent.parent / "docs"

#: The hooks of the method protocol, in the order they run.
HOOKS = (
    "build_network",
    "wrap_optimizer",
    "on_context_change",
    "loss_term",
    "before_step",
    "after_step",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def methods_list() -> str:
    """A Markdown table of every registered method: name, class, hooks, settings.

    :return: the table
    """
    from rl_plasticity.plasticity.protocol import implements
    from rl_plasticity.plasticity.registry import method_settings, registered_methods

    rows = [
        "| name | class | hooks | settings (defaults) |",
        "|---|---|---|---|",
    ]
    for name, cls in sorted(registered_methods().items()):
        if not cls.__module__.startswith("rl_plasticity."):
            continue  # registered by the user's (or a test's) own module
        hooks = [h for h in HOOKS if implements(cls, h)]
        settings = [
            f"`{key}={param.default!r}`" for key, param in method_settings(cls).items()
        ] or ["none"]
        rows.append(
            f"| `{name}` | `{cls.__module__}.{cls.__qualname__}` | "
            f"{', '.join(f'`{h}`' for h in hooks) or 'none'} | {_cell(', '.join(settings))} |"
        )
    return "\n".join(rows)


def metrics_list() -> str:
    """Markdown tables of every metric and method counter of the metric registry.

    :return: the tables
    """
    from rl_plasticity.metrics.registry import FAMILIES, METHOD_COUNTERS, METRICS

    rows = ["| metric | title | figure | shown |", "|---|---|---|---|"]
    for name, metric in METRICS.items():
        shown = ", ".join(
            word for word, on in (("in %", metric.percent), ("log axis", metric.log)) if on
        )
        rows.append(
            f"| `{name}` | {_cell(metric.title)} | {FAMILIES[metric.family]} | {shown or '-'} |"
        )
    rows += ["", "| method counter | title |", "|---|---|"]
    rows += [f"| `{name}` | {_cell(m.title)} |" for name, m in METHOD_COUNTERS.items()]
    return "\n".join(rows)


def specs_list() -> str:
    """Markdown tables of the shipped env and agent specs with their descriptions.

    :return: the tables
    """
    from rl_plasticity.specs import available_specs, load_agent_spec, load_env_spec

    rows: list[str] = []
    for kind, load in (("envs", load_env_spec), ("agents", load_agent_spec)):
        rows += ["", f"| {kind[:-1]} spec | description |", "|---|---|"]
        for name, path in available_specs(kind).items():
            rows.append(f"| `{name}` | {_cell(load(path).description)} |")
    return "\n".join(rows[1:])


#: List name -> (its page in ``docs/``, the function that writes it).
LISTS: dict[str, tuple[str, Callable[[], str]]] = {
    "methods": ("methods.md", methods_list),
    "metrics": ("metrics.md", metrics_list),
    "specs": ("runs.md", specs_list),
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {name} -->\n).*?(<!-- end generated -->)", flags=re.DOTALL
    )


def updated(text: str, name: str, body: str) -> str:
    """``text`` with the list ``name`` replaced by ``body``.

    :param text: a page
    :param name: the list's name
    :param body: the list's new text
    :return: the page
    :raises ValueError: when the page has no place for the list
    """
    block = _block(name)
    if not block.search(text):
        raise ValueError(f"no '<!-- generated: {name} -->' ... '<!-- end generated -->' block")
    return block.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1)


def stale_pages(docs: Path = DOCS) -> list[str]:
    """The pages whose generated list differs from what the registries give now.

    :param docs: the docs folder
    :return: ``page (list)`` for each stale list
    """
    stale = []
    for name, (page, make) in LISTS.items():
        text = (docs / page).read_text()
        if updated(text, name, make()) != text:
            stale.append(f"{page} ({name})")
    return stale


def write(docs: Path = DOCS) -> list[str]:
    """Rewrite every generated list in place.

    :param docs: the docs folder
    :return: the pages changed
    """
    changed = []
    for name, (page, make) in LISTS.items():
        path = docs / page
        text = path.read_text()
        new = updated(text, name, make())
        if new != text:
            path.write_text(new)
            changed.append(page)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rl_plasticity.reference [--check]``.

    :param argv: the arguments (default: ``sys.argv[1:]``)
    :return: 0, or 1 when ``--check`` finds a stale list
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--check"]:
        stale = stale_pages()
        for page in stale:
            print(f"stale: docs/{page}; run: python -m rl_plasticity.reference")
        return 1 if stale else 0
    if args:
        print("usage: python -m rl_plasticity.reference [--check]", file=sys.stderr)
        return 2
    for page in write():
        print(f"wrote docs/{page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
