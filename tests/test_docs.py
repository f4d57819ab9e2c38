"""The examples in the docstrings run and print what they show."""

import doctest

import pytest

import cyprop
import cyprop.history
import cyprop.lesson
import cyprop.network
import cyprop.optimizers

MODULES = [cyprop, cyprop.network, cyprop.lesson, cyprop.history, cyprop.optimizers]


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


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
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for test in finder.find(cyprop.network))
    assert examples >= 10
