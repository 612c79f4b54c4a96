import json

import pytest
from hypothesis import given, settings

from fcsft.formats import get_format
from fcsft.records import Trajectory
from strategies import trajectories

FORMATS = ["tagged", "openai", "sharegpt"]


def through(name: str, trajectory: Trajectory) -> Trajectory:
    fmt = get_format(name)
    line = json.dumps(fmt.render(trajectory), ensure_ascii=False)
    return fmt.parse(json.loads(line))


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=300, deadline=None)
@given(trajectory=trajectories())
def test_each_format_round_trips(name, trajectory):
    assert through(name, trajectory) == trajectory


@settings(max_examples=200, deadline=None)
@given(trajectory=trajectories())
def test_chain_of_formats_is_lossless(trajectory):
    # tagged -> internal -> openai -> internal -> sharegpt -> internal -> tagged
    once = through("tagged", trajectory)
    twice = through("openai", once)
    thrice = through("sharegpt", twice)
    assert through("tagged", thrice) == trajectory


@settings(max_examples=100, deadline=None)
@given(trajectory=trajectories())
def test_internal_json_round_trips(trajectory):
    assert Trajectory.from_json(json.loads(json.dumps(trajectory.to_json()))) == trajectory
