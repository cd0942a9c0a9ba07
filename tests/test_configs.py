"""Typed config records: strings are converted, unknown keys and wrong types are errors naming the keys."""

from dataclasses import dataclass

import pytest

from poolvae.configs import typed


@dataclass
class _Cfg:
    lr: float = 1e-3  # a float
    epochs: int = 3  # an int
    amp: bool = False  # a bool
    name: str = "x"  # a string


def test_strings_are_converted_to_each_field_type():
    c = typed(_Cfg, {"lr": "0.5", "epochs": "7", "amp": "true", "name": "y"})
    assert (c.lr, c.epochs, c.amp, c.name) == (0.5, 7, True, "y")
    assert typed(_Cfg, {"lr": 2}).lr == 2.0 and isinstance(typed(_Cfg, {"lr": 2}).lr, float)


@pytest.mark.parametrize("values, message", [
    ({"lrr": "1"}, r"unknown config key\(s\) \['lrr'\]; valid keys: lr, epochs, amp, name"),
    ({"epochs": "two"}, "'epochs' expects int"),
    ({"epochs": True}, "'epochs' expects int"),
    ({"amp": "maybe"}, "'amp' expects a bool"),
    ({"lr": [1]}, "'lr' expects float"),
])
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        typed(_Cfg, values)
