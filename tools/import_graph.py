"""Print which package imports which (core, extractor, sequence, videotag, the entry scripts) and
exit 1 on an import against the layers:

    entry scripts (train.py, eval.py, predict.py)  ->  videotag  ->  extractor, sequence  ->  core

A layer imports only layers below it; extractor and sequence never import each other.
    python tools/import_graph.py [PROJECT_ROOT]
"""
import ast
import collections
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYER = {"core": 0, "extractor": 1, "sequence": 1, "videotag": 2, "scripts": 3}
SCRIPTS = ("train", "eval", "predict")


def package_of(module):
    top = module.split(".")[0]
    if top in SCRIPTS:
        return "scripts"
    return top if top in LAYER else None


def imports(path, package):
    """Top-level names of the project's packages that the file at `path` imports."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield package if node.level else node.module


def project_files(root):
    for package in ("core", "extractor", "sequence", "videotag"):
        for folder, _, names in os.walk(os.path.join(root, package)):
            for name in sorted(names):
                if name.endswith(".py"):
                    yield os.path.join(folder, name), package
    for script in SCRIPTS:
        yield os.path.join(root, script + ".py"), "scripts"


def main(root=ROOT):
    edges, wrong = collections.Counter(), []
    for path, package in project_files(root):
        for module in imports(path, package):
            target = package_of(module or "")
            if target is None or target == package:
                continue
            edges[package, target] += 1
            if LAYER[target] >= LAYER[package]:
                wrong.append(f"{os.path.relpath(path, root)} imports {module}")
    for (source, target), count in sorted(edges.items(), key=lambda e: (-LAYER[e[0][0]], e[0])):
        print(f"{source:>10} -> {target:<10} {count:3d} import(s)")
    for line in wrong:
        print("against the layers:", line)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
