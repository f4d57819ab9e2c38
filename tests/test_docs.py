"""The examples in the docstrings run and print what they show."""

import doctest
import importlib
import importlib.util

import pytest

import cyprop
import cyprop.history
import cyprop.lesson
import cyprop.network
import cyprop.optimizers

MODULES = [cyprop, cyprop.network, cyprop.lesson, cyprop.history, cyprop.optimizers]
# Modules and examples that need an optional extra, and the package it brings.
OPTIONAL_MODULES = {"cyprop.sklearn": "sklearn", "cyprop.plot": "matplotlib",
                    "cyprop.cli": None, "cyprop.export": "onnx"}
OPTIONAL_EXAMPLES = {"cyprop.network.Network.to_onnx": "onnx"}


def _examples():
    names = [module.__name__ for module in MODULES] + list(OPTIONAL_MODULES)
    for name in names:
        needs = OPTIONAL_MODULES.get(name)
        if needs and importlib.util.find_spec(needs) is None:
            continue
        module = importlib.import_module(name)
        for test in doctest.DocTestFinder().find(module):
            if test.examples:
                yield pytest.param(test, id=test.name,
                                   marks=_skip_without(OPTIONAL_EXAMPLES.get(test.name)))


def _skip_without(package):
    missing = package is not None and importlib.util.find_spec(package) is None
    return pytest.mark.skipif(missing, reason=f"needs {package}")


@pytest.mark.parametrize("test", list(_examples()))
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0


def test_every_public_name_has_a_docstring():
    for module in MODULES:
        for name in getattr(module, "__all__", dir(module)):
            if name.startswith("_"):
                continue
            obj = getattr(module, name)
            if getattr(obj, "__module__", module.__name__).startswith("cyprop"):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
    for name, member in vars(cyprop.Network).items():
        if not name.startswith("_"):
            assert member.__doc__, f"Network.{name} has no docstring"


def test_network_examples_exist():
    """Most of Network's public methods show an example."""
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for test in finder.find(cyprop.network))
    assert examples >= 10
