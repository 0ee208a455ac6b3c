"""The one packaging fact pyproject.toml cannot state: ``firmware_profiles/`` is a data-only
folder at the top of the repository that ships inside the wheel as the resources package
``collector.firmware_profiles`` (read with importlib.resources). Everything else about the
package is declared in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(
            include=[
                "poise", "poise.*", "collector", "collector.*", "analysis", "analysis.*",
                "dashboards", "dashboards.*",
            ]
        ),
        "collector.firmware_profiles",
        "collector.firmware_profiles.vectors",
    ],
)
