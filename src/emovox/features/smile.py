"""openSMILE extractors: eGeMAPS low-level descriptors (with 13 MFCCs) and functionals."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from emovox.features.base import EXTRACTORS, Extractor
from emovox.io import cache_dir
from emovox.schema import bounded


def egemaps_config(n_mfcc: int) -> Path:
    """eGeMAPSv02 with MFCC 1..n_mfcc in place of 1..4: a patched copy of the packaged config."""
    import opensmile

    source = Path(opensmile.__file__).parent / "core" / "config"
    target = cache_dir("opensmile") / f"config-mfcc{n_mfcc}-{opensmile.__version__}"
    conf = target / "egemaps" / "v02" / "eGeMAPSv02.conf"
    if conf.exists():
        return conf
    target.parent.mkdir(parents=True, exist_ok=True)
    # A private staging copy per process: concurrent workers never share a half-written tree.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    lld = tmp / "egemaps" / "v02" / "eGeMAPSv02_core.lld.conf.inc"
    text = lld.read_text()
    text = text.replace("lastMfcc  = 4", f"lastMfcc  = {n_mfcc}")
    extra_sel = "".join(f";mfcc[{i}]" for i in range(5, n_mfcc + 1))
    extra_names = "".join(f";mfcc{i}" for i in range(5, n_mfcc + 1))
    # Only the LLD output selector (set E) gets the extra coefficients; functionals stay eGeMAPS.
    text = re.sub(
        r"(\[egemapsv02_lldSetSelectorE:cDataSelector\].*?selected = [^\n]*mfcc\[4\])",
        lambda m: m.group(1) + extra_sel, text, count=1, flags=re.S)
    text = re.sub(
        r"(\[egemapsv02_lldSetSelectorE:cDataSelector\].*?newNames = [^\n]*mfcc4)",
        lambda m: m.group(1) + extra_names, text, count=1, flags=re.S)
    lld.write_text(text)
    try:
        tmp.rename(target)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return conf


class SmileExtractor(Extractor):
    """Runs an openSMILE configuration; the Smile object is built lazily once per process."""

    def _smile(self):
        raise NotImplementedError

    def __getstate__(self) -> dict:
        return {"params": self.params}

    def __setstate__(self, state: dict) -> None:
        self.params = state["params"]

    def compute(self, wave: np.ndarray) -> np.ndarray:
        if getattr(self, "_engine", None) is None:
            self._engine = self._smile()
        out = self._engine.process_signal(wave, self.sample_rate)
        return out.to_numpy(dtype=np.float32).reshape(-1, out.shape[1])


@EXTRACTORS.register
class EgemapsLld(SmileExtractor):
    """The robustness paper's frame features: eGeMAPSv02 LLDs (already smoothed over 3 frames
    by openSMILE) with MFCC 1–13 instead of 1–4: 34 values every 10 ms."""

    name = "egemaps_lld"

    @dataclass(frozen=True)
    class Params:
        n_mfcc: int = bounded(13, ge=1)

    @property
    def frame_rate(self) -> float:
        return 100.0

    @property
    def dim(self) -> int:
        return 21 + self.params["n_mfcc"]

    def _smile(self):
        import opensmile

        return opensmile.Smile(
            feature_set=str(egemaps_config(self.params["n_mfcc"])), feature_level="lld"
        )


@EXTRACTORS.register
class SmileFunctionals(SmileExtractor):
    """Utterance-level openSMILE functionals: eGeMAPSv02 (88) or ComParE 2016 (6,373)."""

    name = "smile_functionals"
    DIMS = {"eGeMAPSv02": 88, "ComParE_2016": 6373}

    @dataclass(frozen=True)
    class Params:
        feature_set: Literal["eGeMAPSv02", "ComParE_2016"] = "eGeMAPSv02"

    @property
    def frame_rate(self) -> None:
        return None

    @property
    def dim(self) -> int:
        return self.DIMS[self.params["feature_set"]]

    def _smile(self):
        import opensmile

        return opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, self.params["feature_set"]),
            feature_level=opensmile.FeatureLevel.Functionals,
        )
