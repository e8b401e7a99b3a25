"""What model directories are at hand: the bundled default and a user's own, for
``emovox models``."""

from __future__ import annotations

from pathlib import Path

from emovox.corpora.combined import part_of
from emovox.errors import EmovoxError
from emovox.serving.model_dir import BUNDLED, bundled_model_dir, read_meta


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def describe(path: Path, bundled: str | None = None) -> dict:
    """One model directory in a line: model, features, labels, whether it streams, size."""
    from emovox.serving.streaming import StreamingRecognizer

    meta_path = path / "model.json"
    if not meta_path.exists():
        raise EmovoxError(f"{path}: not a model directory (no model.json)")
    try:
        meta = read_meta(path)
        config = meta.get("config", {})
        corpus = config.get("corpus", {})
        names = [p.get("name") or p["format"] for p in corpus.get("options", {}).get("parts")
                 or [{"format": corpus.get("format")}]]
        if corpus.get("speakers") and len(names) > 1:  # a combined corpus cut to some parts
            names = [n for n in names if n in {part_of(s) for s in corpus["speakers"]}]
        try:
            StreamingRecognizer(path)
            streams = True
        except EmovoxError:
            streams = False
        return {
            "path": str(path),
            "bundled": bundled is not None,
            **({"bundled_as": bundled} if bundled else {}),
            "name": config.get("name", path.name),
            "method": meta["method"],
            "model": config["model"]["name"],
            "features": meta["features"]["name"],
            "labels": meta["labels"],
            "trained_on": names,
            "streams": streams,
            "valid_metrics": meta.get("valid_metrics"),
            "size_bytes": _size(path),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise EmovoxError(f"{path}: unreadable model.json ({exc})") from None


def model_dirs(root: Path) -> list[Path]:
    """``root`` itself if it is a model directory, else the model directories below it."""
    if (root / "model.json").exists():
        return [root]
    return sorted(p.parent for p in root.rglob("model.json"))


def list_models(paths: list[Path]) -> list[dict]:
    """The bundled models first (``bundled_as``: the name ``--model`` takes), then every model
    directory given or found under ``paths``; an unreadable one is listed with its ``error``."""
    found: list[dict] = []
    for name, folder in BUNDLED.items():
        try:
            found.append(describe(bundled_model_dir(name), bundled=name))
        except EmovoxError as exc:
            found.append({"path": str(Path(__file__).with_name(folder)), "bundled": True,
                          "bundled_as": name, "error": str(exc)})
    for root in paths:
        if not root.exists():
            found.append({"path": str(root), "error": f"{root}: not found"})
            continue
        dirs = model_dirs(root)
        if not dirs:
            found.append({"path": str(root), "error": f"{root}: no model directory found"})
        for path in dirs:
            try:
                found.append(describe(path))
            except EmovoxError as exc:
                found.append({"path": str(path), "error": str(exc)})
    return found
