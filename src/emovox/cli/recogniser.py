"""``emovox asr train`` (a DeepSpeech2-style recogniser) and ``emovox analyse layers`` (inside a
recogniser: t-SNE by emotion, the unit that tracks loudness)."""

from __future__ import annotations

import argparse
from pathlib import Path

from emovox.cli.common import EXIT_OK, Command, default, emit


def cmd_asr_train(args: argparse.Namespace) -> int:
    from emovox.asr.deepspeech2 import DeepSpeech2Config, train_deepspeech2
    from emovox.corpora import load_corpus
    from emovox.errors import ConfigError
    from emovox.features import FeatureCache

    manifest = load_corpus(args.format, args.path, on_error="skip")
    speakers = manifest.speakers
    if len(speakers) <= args.valid_speakers:
        raise ConfigError(f"{args.path}: {len(speakers)} speaker(s); need more than "
                          f"--valid-speakers {args.valid_speakers}")
    valid = speakers[-args.valid_speakers :]
    config = DeepSpeech2Config(hidden=args.hidden, layers=args.layers, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr)
    info = train_deepspeech2(manifest.with_speakers(speakers[: -args.valid_speakers]),
                             manifest.with_speakers(valid), Path(args.out), config,
                             FeatureCache(args.cache), progress=not args.quiet)
    emit({"model": str(Path(args.out) / "deepspeech2.pt"), "valid_speakers": valid,
          "best_valid_cer": info["best_valid_cer"], "epochs": len(info["history"])})
    return EXIT_OK


def cmd_analyse_layers(args: argparse.Namespace) -> int:
    from emovox.analysis.layers import (
        layer_features,
        loudness_units,
        plot_loudness_unit,
        tsne_by_layer,
    )
    from emovox.corpora import load_corpus
    from emovox.features import FeatureCache
    from emovox.io import atomic_write_json

    manifest = load_corpus(args.format, args.path, on_error="skip")
    if args.speakers:
        manifest = manifest.with_speakers(args.speakers)
    out = Path(args.out)
    feats, n_layers, width = layer_features(manifest, args.model, FeatureCache(args.cache),
                                            args.workers, progress=not args.quiet)
    tsne_by_layer(feats, manifest, n_layers, width, out / "tsne.png")
    best, loud = loudness_units(feats, manifest, n_layers, width)
    top = max(best, key=lambda b: abs(b["pearson_r"]))
    ids = [manifest[0].id, manifest[len(manifest) // 2].id]
    plot_loudness_unit(feats, loud, top, ids, out / "loudness_unit.png")
    result = {"model": args.model, "corpus": args.path, "utterances": len(manifest),
              "loudness_units": best, "most_loudness_correlated": top,
              "figures": [str(out / "tsne.png"), str(out / "loudness_unit.png")]}
    atomic_write_json(out / "analysis.json", result)
    emit(result)
    return EXIT_OK


def _asr_arguments(p: argparse.ArgumentParser) -> None:
    from emovox.asr.deepspeech2 import DeepSpeech2Config
    from emovox.corpora import CORPORA

    train = p.add_subparsers(dest="asr_command", required=True).add_parser(
        "train", help="train a DeepSpeech2-style recogniser with CTC")
    train.add_argument("path", help="transcribed speech, e.g. a LibriSpeech split")
    train.add_argument("--format", default="librispeech", choices=CORPORA.names())
    train.add_argument("--out", required=True, help="directory for deepspeech2.pt (resumable)")
    train.add_argument("--valid-speakers", type=int, default=2,
                       help="speakers held out for validation (default %(default)s)")
    def ds2(name: str):
        return default(DeepSpeech2Config, name)

    train.add_argument("--hidden", type=int, default=ds2("hidden"),
                       help="units per GRU direction (default %(default)s)")
    train.add_argument("--layers", type=int, default=ds2("layers"),
                       help="bidirectional GRU layers (default %(default)s)")
    train.add_argument("--epochs", type=int, default=ds2("epochs"),
                       help="(default %(default)s)")
    train.add_argument("--batch-size", type=int, default=ds2("batch_size"),
                       help="(default %(default)s)")
    train.add_argument("--lr", type=float, default=ds2("lr"), help="(default %(default)g)")
    train.add_argument("--cache", default=None, help="feature cache directory (default: none)")
    train.set_defaults(run=cmd_asr_train)


def _analyse_arguments(p: argparse.ArgumentParser) -> None:
    from emovox.analysis.layers import layer_features
    from emovox.corpora import CORPORA
    from emovox.features import FeatureCache

    layers = p.add_subparsers(dest="analyse_command", required=True).add_parser(
        "layers", help="t-SNE of every layer by emotion; the unit that tracks loudness")
    layers.add_argument("path")
    layers.add_argument("--format", required=True, choices=CORPORA.names())
    layers.add_argument("--model", default="tiny.en",
                        help="tiny.en (the default), base, or a CTranslate2 / Hugging Face model "
                        "directory")
    layers.add_argument("--speakers", nargs="+", help="only these speakers")
    layers.add_argument("--out", required=True)
    layers.add_argument("--cache", default=default(FeatureCache, "root"),
                        help="feature cache directory (default: $EMOVOX_CACHE/features)")
    layers.add_argument("--workers", type=int, default=default(layer_features, "workers"),
                        help="processes (default %(default)s)")
    layers.set_defaults(run=cmd_analyse_layers)


COMMANDS: dict[str, Command] = {
    "asr": ("speech recogniser recipes", _asr_arguments),
    "analyse": ("look inside a recogniser's layers", _analyse_arguments),
}
