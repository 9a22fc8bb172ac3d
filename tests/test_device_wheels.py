"""bench/device_wheels.sh's lists against the installed snakemake's metadata: the wheels for
the lent device must cover every requirement of snakemake, followed through its
dependencies, that the device image lacks, at the versions of this venv. Downloads nothing,
so a snakemake upgrade that adds a dependency fails here and not on the device."""

import importlib.metadata as md
import re
import subprocess
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# The device: CPython 3.12 on x86-64 Linux; no extras requested.
DEVICE_ENV = {
    **default_environment(),
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def lists():
    out = subprocess.run(
        ["bash", "bench/device_wheels.sh", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wheels, left_out, image = {}, set(), set()
    for line in out.splitlines():
        kind, item = line.split()
        if kind == "wheel":
            name, version = item.split("==")
            assert norm(name) not in wheels, f"{name} twice in WHEELS"
            wheels[norm(name)] = version
        elif kind == "left-out":
            left_out.add(norm(item))
        else:
            image.add(norm(item))
    return wheels, left_out, image


def device_requirements(name):
    """The distribution's requirements that apply on the device, as normalized names."""
    names = set()
    for text in md.requires(name) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(DEVICE_ENV):
            names.add(norm(req.name))
    return names


@pytest.fixture(scope="module")
def closure(lists):
    """Every package reached from snakemake, not descending into the image's packages (the
    image brings their dependencies) or the left-out ones; name -> who requires it."""
    _, left_out, image = lists
    reached, todo = {"snakemake": "-"}, ["snakemake"]
    while todo:
        parent = todo.pop()
        for child in sorted(device_requirements(parent)):
            if child in reached:
                continue
            reached[child] = parent
            if child not in image and child not in left_out:
                todo.append(child)
    return reached


def test_every_requirement_is_carried_in_the_image_or_left_out(lists, closure):
    wheels, left_out, image = lists
    missing = {
        name: parent
        for name, parent in closure.items()
        if name not in wheels and name not in image and name not in left_out
    }
    assert not missing, f"add to WHEELS in bench/device_wheels.sh (name: required by): {missing}"


def test_wheel_versions_are_the_venvs(lists):
    wheels, _, _ = lists
    wrong = {
        name: (version, md.version(name))
        for name, version in wheels.items()
        if md.version(name) != version
    }
    assert not wrong, f"WHEELS version vs. this venv's: {wrong}"


def test_no_stale_entries(lists, closure):
    wheels, left_out, image = lists
    # A wheel of an image package is an override (a newer copy that a requirement needs).
    assert not set(wheels) - set(closure), "in WHEELS, no longer required by snakemake"
    assert not left_out - set(closure), "in LEFT_OUT, no longer required by snakemake"
    assert not left_out & (set(wheels) | image)
