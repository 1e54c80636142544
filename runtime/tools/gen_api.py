"""Generates runtime/API.md, the guest library's API reference that goes into LLM prompts,
and runtime/API.compact.md, the reference for models with a small context (signatures and
one short line each).

    cd runtime && python3 tools/gen_api.py          # write API.md and API.compact.md
    cd runtime && python3 tools/gen_api.py --check  # exit 1 if either is out of date

For each module it writes the module docstring, and for each public name (`__all__`) the
signature, the first paragraph of the docstring, its `Returns:` section (unless trivial) and
its `Example:` line (when short). The
modules are read with `ast`, not imported, so nothing runs and the output does not depend
on the Python version. Keep the result short (it is part of every prompt): the script warns
when it exceeds MAX_BYTES.
"""

import ast
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
PACKAGE = os.path.join(ROOT, "metaexec")
OUT = os.path.join(ROOT, "API.md")
COMPACT_OUT = os.path.join(ROOT, "API.compact.md")
MODULES = ("db", "finance", "scenarios", "portfolio", "report")
MAX_BYTES = 14 * 1024  # about 3,500 tokens: the whole API fits in any prompt
MIN_RETURNS = 36  # "float, the amount paid each period." and the like add little
MAX_EXAMPLE = 64  # longer examples cost more prompt than they teach
COMPACT_MAX_BYTES = 4 * 1024  # about 1,100 tokens: leaves room for a script in a 4k context
COMPACT_LINE = 40  # characters of description per name in the compact reference

HEADER = """\
# metaexec guest library API

Generated from the docstrings by tools/gen_api.py; do not edit.
Scripts `import metaexec` (core: `metaexec.params`, `metaexec.result(obj)`,
`metaexec.emit(name, value)`, `metaexec.log(msg)`) and
`from metaexec import db, finance, scenarios, portfolio, report`.
"""


def _first_paragraph(doc):
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def _section(doc, name):
    """The text of a `Name:` section (up to the next section or the end), on one line."""
    out, inside = [], False
    for line in (doc or "").splitlines():
        stripped = line.strip()
        head = stripped.split(":", 1)[0]
        if stripped.startswith(name + ":"):
            inside = True
            out.append(stripped[len(name) + 1 :].strip())
        elif inside and head in ("Args", "Returns", "Raises", "Example") and stripped.startswith(head + ":"):
            break
        elif inside and stripped:
            out.append(stripped)
        elif inside:
            break
    return " ".join(out)


def _module_doc(doc):
    """The module docstring as written (it is written to be read in a prompt)."""
    return (doc or "").strip()


def _example(doc):
    for line in (doc or "").splitlines():
        line = line.strip()
        if line.startswith("Example:"):
            return line[len("Example:"):].strip()
    return None


def _all_names(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    return []


def module_section(name):
    path = os.path.join(PACKAGE, name + ".py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = ["", "## metaexec.%s" % name, "", _module_doc(ast.get_docstring(tree)), ""]
    defs = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    defs[t.id] = node
    for public in _all_names(tree):
        node = defs.get(public)
        if node is None:
            raise SystemExit("gen_api: %s.__all__ names %r, which is not defined" % (name, public))
        if isinstance(node, ast.FunctionDef):
            doc = ast.get_docstring(node)
            line = "- `%s(%s)`: %s" % (public, ast.unparse(node.args), _first_paragraph(doc))
            returns = _section(doc, "Returns")
            if len(returns) > MIN_RETURNS:
                line += " Returns: " + returns
            ex = _example(doc)
            if ex and len(ex) <= MAX_EXAMPLE:
                line += " E.g. `%s`" % ex
        elif isinstance(node, ast.ClassDef):
            line = "- `%s` (exception): %s" % (public, _first_paragraph(ast.get_docstring(node)))
        else:
            line = "- `%s = %s`" % (public, ast.unparse(node.value))
        out.append(line)
    return out


def render():
    lines = [HEADER.rstrip("\n")]
    for name in MODULES:
        lines.extend(module_section(name))
    return "\n".join(lines) + "\n"


COMPACT_HEADER = """\
# metaexec API (compact)
`from metaexec import db, finance, scenarios, portfolio, report, params, result, emit, log`.
`result(rows)` reports the answer (a list of dicts, or a dict); `emit(name, value)` adds
named results; `params.get(name, default)`; `db.query(sql, [values])` with `?` placeholders
returns a list of dicts. Rates are fractions (0.065); amounts annual.
"""


def _short(text):
    """The first sentence of `text` when it is short; a cut sentence teaches nothing."""
    sentence = text.split(". ", 1)[0].split(": ", 1)[0].split("; ", 1)[0].rstrip(".")
    return sentence if len(sentence) <= COMPACT_LINE else None


def _compact_args(args):
    """The required arguments, then the optional ones' names only: `f(rows, *, worst=)`."""
    positional = args.posonlyargs + args.args
    required = positional[: len(positional) - len(args.defaults)]
    optional = positional[len(required) :] + [a for a in args.kwonlyargs]
    names = [a.arg for a in required]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    names += [a.arg + "=" for a in optional]
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return ", ".join(names)


def compact_section(name):
    path = os.path.join(PACKAGE, name + ".py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    defs = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    entries, exceptions = [], []
    for public in _all_names(tree):
        node = defs.get(public)
        if isinstance(node, ast.FunctionDef):
            line = "%s(%s)" % (public, _compact_args(node.args))
            short = _short(_first_paragraph(ast.get_docstring(node)))
            entries.append(line + ": " + short if short else line)
        elif isinstance(node, ast.ClassDef):
            exceptions.append(public)
    if exceptions:
        entries.append("exceptions: " + ", ".join(exceptions))
    return ["## %s" % name] + ["- " + e for e in entries]


def render_compact():
    lines = [COMPACT_HEADER.rstrip("\n")]
    for name in MODULES:
        lines.extend(compact_section(name))
    return "\n".join(lines) + "\n"


def main(argv):
    outputs = ((OUT, render(), MAX_BYTES), (COMPACT_OUT, render_compact(), COMPACT_MAX_BYTES))
    if "--check" in argv:
        stale = 0
        for path, text, _ in outputs:
            try:
                with open(path) as f:
                    current = f.read()
            except OSError:
                current = None
            if current != text:
                sys.stderr.write("gen_api: %s is out of date; run python3 tools/gen_api.py\n" % path)
                stale = 1
            else:
                sys.stdout.write("gen_api: %s is up to date (%d bytes)\n" % (path, len(text.encode("utf-8"))))
        return stale
    for path, text, budget in outputs:
        size = len(text.encode("utf-8"))
        with open(path, "w") as f:
            f.write(text)
        sys.stdout.write("gen_api: wrote %s (%d bytes)\n" % (path, size))
        if size > budget:
            sys.stderr.write("gen_api: warning: %s is %d bytes, over its %d-byte prompt budget\n" % (path, size, budget))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
