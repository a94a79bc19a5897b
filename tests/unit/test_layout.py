"""The package's layout, read from its imports (an AST walk of src/).

- Every import of ``m01.remote`` is at the top of its module: none inside
  a function (to dodge a circle, or otherwise).
- No module imports another that imports it back, through any number of
  modules.
- A module of a folder (``queue/``, ``store/``, ...) imports nothing from
  the package face (``m01/remote/__init__.py``); of the modules at the top
  it imports only the shared ones: the contracts, jobs, time, limits and
  settings (and the process workers the processor and ``configured``,
  which their children make).
- ``views/`` is a leaf: only the package face imports it.
- No module is longer than ``MAX_LINES`` (``interfaces.py``, the contracts
  of record, aside).
"""
import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / 'src'
PACKAGE = 'm01.remote'
MAX_LINES = 450
LONG_ALLOWED = {'m01.remote.interfaces'}
#: The modules at the top that any folder may import.
SHARED = {'interfaces', 'job', 'clock', 'limits', 'settings'}
#: What a folder may import at the top besides.
FOLDER_EXTRA = {'processes': {'processor', 'configured'}}


def moduleName(path):
    parts = list(path.relative_to(SRC).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


MODULES = {moduleName(path): path
           for path in sorted((SRC / 'm01' / 'remote').rglob('*.py'))}


def isPackage(name):
    return MODULES[name].name == '__init__.py'


def imports(name):
    """``(imported module, node, at the top)`` for each import of
    m01.remote in the module ``name``."""
    tree = ast.parse(MODULES[name].read_text(encoding='utf-8'))
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and \
                node.module:
            # ``from a import b``: the module a.b where there is one.
            targets = ['%s.%s' % (node.module, alias.name)
                       if '%s.%s' % (node.module, alias.name) in MODULES
                       else node.module for alias in node.names]
        else:
            continue
        top = isinstance(parents.get(node), ast.Module)
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + '.'):
                found.append((target, node, top))
    return found


GRAPH = {name: {target for target, _, _ in imports(name)
                if target in MODULES and target != name}
         for name in MODULES}


def folderOf(name):
    """The folder (``queue``, ``store``, ...) of a module, None at the
    top."""
    rest = name[len(PACKAGE) + 1:].split('.') if name != PACKAGE else []
    if len(rest) > 1 or (len(rest) == 1 and isPackage(name)):
        return rest[0]
    return None


def test_the_walk_reads_the_package():
    assert {'m01.remote', 'm01.remote.processor', 'm01.remote.queue.claims',
            'm01.remote.store.embedded.index'} <= set(MODULES)
    assert 'm01.remote.interfaces' in GRAPH['m01.remote.processor']
    assert folderOf('m01.remote.queue.claims') == 'queue'
    assert folderOf('m01.remote.store') == 'store'
    assert folderOf('m01.remote.processor') is None


@pytest.mark.parametrize('name', sorted(MODULES))
def test_no_import_of_the_package_inside_a_function(name):
    inside = ['%s (line %d)' % (target, node.lineno)
              for target, node, top in imports(name) if not top]
    assert inside == [], '%s imports inside a function' % name


def cycles():
    """Each import circle once, as the list of its modules."""
    found, state, stack = [], {}, []

    def visit(name):
        state[name] = 'open'
        stack.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 'open':
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 'done'

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    return found


def test_no_import_circle():
    assert cycles() == []


def test_the_circle_check_can_fail(monkeypatch):
    monkeypatch.setitem(GRAPH, 'm01.remote.interfaces',
                        {'m01.remote.processor'})
    assert any('m01.remote.processor' in cycle for cycle in cycles())


def runningBackUp(name):
    """The imports of ``name`` (a folder's module) that reach back to the
    top: the package face, or a top module it may not import."""
    folder = folderOf(name)
    allowed = {'%s.%s' % (PACKAGE, top)
               for top in SHARED | FOLDER_EXTRA.get(folder, set())}
    return sorted(target for target in GRAPH[name]
                  if folderOf(target) is None and target not in allowed)


@pytest.mark.parametrize('name', sorted(
    name for name in MODULES if folderOf(name) is not None))
def test_a_folder_imports_only_the_shared_modules_at_the_top(name):
    assert runningBackUp(name) == []


def test_views_are_a_leaf_that_only_the_package_face_imports():
    importers = sorted(name for name, targets in GRAPH.items()
                       if folderOf(name) != 'views' and any(
                           folderOf(target) == 'views' for target in targets))
    assert importers == ['m01.remote']


@pytest.mark.parametrize('name', sorted(set(MODULES) - LONG_ALLOWED))
def test_no_module_is_longer_than_the_limit(name):
    lines = MODULES[name].read_text(encoding='utf-8').count('\n')
    assert lines <= MAX_LINES, '%s has %d lines' % (name, lines)
