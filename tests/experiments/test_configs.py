"""Every shipped config parses: experiments as ExperimentConfig, studies with all variants."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

from emovox.experiments.config import load_config
from emovox.experiments.study import load_study

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path):
    if "variants" in yaml.safe_load(path.read_text()):
        assert load_study(path)["variants"]
    else:
        assert load_config(path).name
