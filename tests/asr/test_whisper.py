"""The Whisper encoder read from CTranslate2's model.bin: same output as CTranslate2 itself."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from conftest import speech_like

from emovox.asr.ctranslate2_format import read_model_bin
from emovox.asr.whisper import CHUNK_FRAMES, load_encoder, log_mel, model_files
from emovox.audio import load_audio
from emovox.errors import ConfigError
from emovox.features import make_extractor
from emovox.models import build_model


@pytest.fixture(scope="module")
def speech():
    # not a whole number of 10 ms hops, as recordings are: on such lengths (2.0 s exactly)
    # faster-whisper's last frame differs from ours by up to 0.01 (edge padding)
    return speech_like(2.013, seed=6)


def test_encoder_matches_ctranslate2(speech):
    ctranslate2 = pytest.importorskip("ctranslate2")
    encoder = load_encoder("tiny.en")
    assert (encoder.n_layers, encoder.width, encoder.heads, encoder.n_mels) == (4, 384, 6, 80)
    mel = log_mel(speech, 80, pad_to=CHUNK_FRAMES)[None]
    with torch.inference_mode():
        states = encoder(mel)
    assert len(states) == 5 and all(s.shape == (1, 1500, 384) for s in states)
    reference = ctranslate2.models.Whisper(str(model_files("tiny.en")[0].parent), device="cpu",
                                           compute_type="float32")
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(mel.numpy()),
                                         to_cpu=True))
    ours = states[-1].numpy()
    # float16 weights: agree to float16 precision relative to the output's scale
    assert np.max(np.abs(ours - expected)) < 1e-3 * np.max(np.abs(expected))


def test_log_mel_matches_faster_whisper(speech):
    feature_extractor = pytest.importorskip("faster_whisper.feature_extractor")
    reference = feature_extractor.FeatureExtractor(feature_size=80)(speech, padding=160)
    ours = log_mel(speech, 80).numpy()
    n = min(ours.shape[1], reference.shape[1])
    assert abs(ours.shape[1] - reference.shape[1]) <= 1
    assert np.max(np.abs(ours[:, :n] - reference[:, :n])) < 1e-4


def test_reader_dequantises_int8_and_rejects_bad_files(tmp_path):
    def string(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    weight = np.array([[10, -20], [30, 40]], dtype=np.int8)
    scale = np.array([10.0, 20.0], dtype=np.float32)
    blob = struct.pack("<I", 6) + string("TinySpec") + struct.pack("<II", 1, 2)
    for name, array, dtype in (("w/weight", weight, 1), ("w/weight_scale", scale, 0)):
        blob += string(name) + struct.pack("<B", array.ndim)
        blob += struct.pack(f"<{array.ndim}I", *array.shape)
        blob += struct.pack("<BI", dtype, array.nbytes) + array.tobytes()
    blob += struct.pack("<I", 0)
    path = tmp_path / "model.bin"
    path.write_bytes(blob)
    spec, variables = read_model_bin(path)
    assert spec == "TinySpec" and set(variables) == {"w/weight"}
    np.testing.assert_allclose(variables["w/weight"], [[1.0, -2.0], [1.5, 2.0]])
    path.write_bytes(blob[:-20])
    with pytest.raises(ConfigError, match="truncated"):
        read_model_bin(path)
    with pytest.raises(ConfigError, match="not a packaged Whisper"):
        model_files(str(tmp_path / "nowhere"))


def test_whisper_layers_extractor(speech):
    one = make_extractor("whisper_layers", model="tiny.en", layers=2)
    every = make_extractor("whisper_layers", model="tiny.en", layers="all")
    a, b = one(speech), every(speech)
    frames = -(-(len(speech) // 160) // 2)  # 50 frames per second
    assert a.shape == (frames, 384) and b.shape == (frames, 5 * 384) and every.dim == 1920
    np.testing.assert_allclose(b[:, 2 * 384 : 3 * 384], a, atol=1e-5)
    with pytest.raises(ConfigError, match="out of range"):
        make_extractor("whisper_layers", layers=9).dim  # noqa: B018


def test_concat_and_progressive(speech):
    both = make_extractor("concat", parts=[
        {"name": "whisper_layers", "params": {"layers": 1}}, {"name": "mfcc_pitch"}])
    feats = both(speech)
    assert both.stacks == [1, 2] and both.part_dims == [384, 54] and feats.shape[1] == 438
    model = build_model("progressive", 438, 4, recogniser_dim=384, hidden=8)
    x = torch.from_numpy(feats)[None]
    assert model(x, torch.tensor([len(feats)])).shape == (1, 4)
    with pytest.raises(ConfigError, match="recogniser_dim"):
        build_model("progressive", 438, 4, recogniser_dim=438)
    mp = build_model("mp", 384, 4)
    assert sum(p.numel() for p in mp.parameters()) == 384 * 4 + 4  # only the classifier


@pytest.mark.e2e
def test_analyse_layers_cli(emodb, tmp_path, capsys):
    from emovox.cli import main

    out = tmp_path / "analysis"
    assert main(["-q", "analyse", "layers", str(emodb), "--format", "emodb", "--speakers", "03",
                 "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [b["layer"] for b in result["loudness_units"]] == [0, 1, 2, 3, 4]
    assert abs(result["most_loudness_correlated"]["pearson_r"]) > 0.5  # the paper: r > 0.64
    assert (out / "tsne.png").stat().st_size > 10_000
    assert (out / "loudness_unit.png").stat().st_size > 10_000


def write_librispeech(root, manifest, per_speaker: int = 6):
    """Real Emo-DB sentences, with their transcripts, in LibriSpeech's layout (FLAC)."""
    import soundfile as sf

    for speaker in manifest.speakers[:3]:
        chapter = root / speaker / "1"
        chapter.mkdir(parents=True)
        lines = []
        for k, utt in enumerate(manifest.with_speakers([speaker])[:per_speaker]):
            utt_id = f"{speaker}-1-{k:04d}"
            sf.write(chapter / f"{utt_id}.flac", load_audio(utt.path), 16000)
            lines.append(f"{utt_id} {utt.transcript.upper()}")
        (chapter / f"{speaker}-1.trans.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.e2e
def test_deepspeech2_recipe_on_librispeech_fixture(emodb_manifest, tmp_path, capsys):
    from emovox.asr.deepspeech2 import ALPHABET, encode_text, load_deepspeech2
    from emovox.cli import main
    from emovox.corpora import load_corpus

    root = tmp_path / "LibriSpeech" / "train-tiny"
    write_librispeech(root, emodb_manifest)
    corpus = load_corpus("librispeech", root)
    assert len(corpus) == 18 and len(corpus.speakers) == 3 and corpus[0].transcript
    assert "".join(ALPHABET[i] for i in encode_text("Grüße, Welt's!")) == "grue welt's"
    out = tmp_path / "ds2"
    assert main(["-q", "asr", "train", str(root), "--out", str(out), "--valid-speakers", "1",
                 "--hidden", "32", "--layers", "2", "--epochs", "3", "--batch-size", "4",
                 "--lr", "0.003"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["epochs"] == 3 and 0 <= line["best_valid_cer"] <= 1.5
    saved = torch.load(out / "checkpoint.pt", weights_only=False)["progress"]["history"]
    assert saved[-1]["train_ctc"] < saved[0]["train_ctc"]  # CTC loss goes down
    model, _ = load_deepspeech2(str(out / "deepspeech2.pt"))
    extractor = make_extractor("deepspeech2_layers", checkpoint=str(out / "deepspeech2.pt"),
                               layers=[0, 2])
    wave = load_audio(corpus[0].path)
    feats = extractor(wave)
    assert feats.shape[1] == extractor.dim == model.rnns[0].input_size + 32
    assert abs(len(feats) - len(wave) / 320) <= 2  # 50 frames per second


@pytest.mark.e2e
def test_local_hugging_face_checkpoints(tmp_path):
    """A user's own Whisper or wav2vec2 directory: every hidden state, through the extractor."""
    transformers = pytest.importorskip("transformers")
    whisper = transformers.WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
        vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    transformers.WhisperModel(whisper).save_pretrained(tmp_path / "whisper")
    wav2vec2 = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32), conv_stride=(16, 20), conv_kernel=(16, 20), num_feat_extract_layers=2)
    transformers.Wav2Vec2Model(wav2vec2).save_pretrained(tmp_path / "wav2vec2")
    wave = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
    for name in ("whisper", "wav2vec2"):
        extractor = make_extractor("whisper_layers", model=str(tmp_path / name), layers="all")
        feats = extractor(wave)
        assert extractor.dim == 3 * 32 and feats.shape == (50, 96)  # 1 s at 50 frames/s
