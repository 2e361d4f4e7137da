#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (faster-whisper's layout) into sherpa-onnx's Whisper layout.

Standalone on purpose: it runs in a throw-away venv that has torch, openai-whisper, onnx and
onnxruntime (see converter.py), never in the project's own environment. It imports nothing
from stella.

    python whisper_convert.py --ct2 DIR --out DIR [--name tiny.en]

DIR (--ct2) holds CTranslate2's ``model.bin`` (plus ``vocabulary.txt``, used as a check of the
tokens file). The output folder receives::

    NAME-encoder.onnx        input mel (batch, n_mels, T)  -> n_layer_cross_k, n_layer_cross_v
    NAME-decoder.onnx        tokens, in_n_layer_self_{k,v}_cache, n_layer_cross_{k,v}, offset
                             -> logits, out_n_layer_self_{k,v}_cache
    NAME-encoder.int8.onnx   the same, MatMul weights quantised to int8 (dynamic)
    NAME-decoder.int8.onnx
    NAME-tokens.txt          "base64(token bytes) rank" per line (whisper's tiktoken file)
    manifest.json            sha256 and size of each file above, sha256 of the source model.bin

The encoder's time axis T is variable (sherpa-onnx feeds the frames it has plus some tail
padding, at most 3000). The metadata keys are the ones sherpa-onnx reads from its own Whisper
exports (n_mels, n_text_layer, sot_sequence, eot, ...).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import struct
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MANIFEST_FORMAT = 1
OPSET = 13
# Whisper model names by (encoder layers, width); ".en" is appended for English-only models.
_SIZE_NAMES = {
    (4, 384): "tiny",
    (6, 512): "base",
    (12, 768): "small",
    (24, 1024): "medium",
    (32, 1280): "large",
}


def log(msg: str) -> None:
    print(f"[whisper_convert] {msg}", flush=True)


class ConversionError(Exception):
    """The input is not something this script can convert."""


# --------------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------------------------
# Layout (little endian), binary version >= 4 (CTranslate2 writes 6 today):
#   u32 binary_version
#   str spec_name            (str = u16 length incl. trailing NUL, bytes, NUL)
#   u32 spec_revision
#   u32 n_variables
#   n_variables x { str name; u8 rank; u32 dims[rank]; u8 dtype; u32 n_bytes; bytes data }
#   u32 n_aliases
#   n_aliases x { str alias; str target }

_CT2_DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}
_SUPPORTED_BINARY_VERSIONS = (4, 5, 6)


class CT2Model:
    def __init__(
        self,
        binary_version: int,
        spec: str,
        revision: int,
        variables: dict[str, np.ndarray],
        aliases: dict[str, str],
    ) -> None:
        self.binary_version = binary_version
        self.spec = spec
        self.revision = revision
        self.variables = variables
        self.aliases = aliases

    def get(self, name: str) -> np.ndarray:
        seen = set()
        while name in self.aliases:
            if name in seen:
                raise ConversionError(f"alias loop at {name!r}")
            seen.add(name)
            name = self.aliases[name]
        try:
            return self.variables[name]
        except KeyError:
            raise ConversionError(f"model.bin has no variable {name!r}") from None

    def has(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def weight(self, name: str) -> np.ndarray:
        """A float32 weight, dequantised if CTranslate2 stored it as int8/int16 with a scale."""
        value = self.get(name)
        if value.dtype in (np.int8, np.int16):
            scale_name = name.rsplit("/", 1)[0] + "/weight_scale"
            if not self.has(scale_name):
                raise ConversionError(f"{name} is {value.dtype} but {scale_name} is missing")
            scale = self.get(scale_name).astype(np.float32)
            if scale.ndim == 1:
                scale = scale[:, None]
            return (value.astype(np.float32) / scale).astype(np.float32)
        if value.dtype.kind != "f":
            raise ConversionError(f"{name} has dtype {value.dtype}, expected a float weight")
        return value.astype(np.float32)

    def scalar_int(self, name: str) -> int:
        value = self.get(name)
        if value.size != 1:
            raise ConversionError(f"{name} should be a scalar, has shape {value.shape}")
        return int(value.reshape(-1)[0])


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ConversionError(f"model.bin ends early while reading {what}")
    return data


def _read_u(f: BinaryIO, fmt: str, what: str) -> int:
    size = struct.calcsize("<" + fmt)
    return int(struct.unpack("<" + fmt, _read_exact(f, size, what))[0])


def _read_str(f: BinaryIO, what: str) -> str:
    n = _read_u(f, "H", what)
    raw = _read_exact(f, n, what)
    if n == 0 or raw[-1] != 0:
        raise ConversionError(f"bad string for {what}")
    return raw[:-1].decode("utf-8")


def read_ct2_model(path: Path) -> CT2Model:
    file_size = path.stat().st_size
    with path.open("rb") as f:
        version = _read_u(f, "I", "binary version")
        if version not in _SUPPORTED_BINARY_VERSIONS:
            raise ConversionError(
                f"{path}: CTranslate2 binary version {version} is not supported "
                f"(this reader knows {_SUPPORTED_BINARY_VERSIONS})"
            )
        spec = _read_str(f, "spec name")
        revision = _read_u(f, "I", "spec revision")
        n_vars = _read_u(f, "I", "variable count")
        variables: dict[str, np.ndarray] = {}
        for _ in range(n_vars):
            name = _read_str(f, "variable name")
            rank = _read_u(f, "B", f"{name} rank")
            shape = tuple(_read_u(f, "I", f"{name} shape") for _ in range(rank))
            type_id = _read_u(f, "B", f"{name} dtype")
            n_bytes = _read_u(f, "I", f"{name} size")
            if type_id not in _CT2_DTYPES:
                raise ConversionError(f"{name}: unknown CTranslate2 dtype id {type_id}")
            dtype_name = _CT2_DTYPES[type_id]
            raw = _read_exact(f, n_bytes, name)
            count = int(np.prod(shape)) if shape else 1
            if dtype_name == "bfloat16":
                if n_bytes != 2 * count:
                    raise ConversionError(f"{name}: {n_bytes} bytes for {count} bfloat16 values")
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                array = bits.view(np.float32)
            else:
                dtype = np.dtype(dtype_name).newbyteorder("<")
                if n_bytes != dtype.itemsize * count:
                    raise ConversionError(
                        f"{name}: {n_bytes} bytes do not fit shape {shape} of {dtype_name}"
                    )
                array = np.frombuffer(raw, dtype=dtype)
            variables[name] = array.reshape(shape).copy()
        aliases: dict[str, str] = {}
        if version >= 3:
            n_aliases = _read_u(f, "I", "alias count")
            for _ in range(n_aliases):
                alias = _read_str(f, "alias")
                aliases[alias] = _read_str(f, "alias target")
        if f.tell() != file_size:
            raise ConversionError(
                f"{path}: {file_size - f.tell()} trailing bytes after the last alias"
            )
    return CT2Model(version, spec, revision, variables, aliases)


# --------------------------------------------------------------------------------------------
# CT2 weights -> openai-whisper model
# --------------------------------------------------------------------------------------------


def _count_layers(ct2: CT2Model, prefix: str) -> int:
    n = 0
    while ct2.has(f"{prefix}/layer_{n}/ffn/linear_0/weight"):
        n += 1
    if n == 0:
        raise ConversionError(f"no layers under {prefix}/")
    return n


def model_dimensions(ct2: CT2Model) -> dict[str, int]:
    conv1 = ct2.get("encoder/conv1/weight")
    enc_pos = ct2.get("encoder/position_encodings/encodings")
    dec_pos = ct2.get("decoder/position_encodings/encodings")
    emb = ct2.get("decoder/embeddings/weight")
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(enc_pos.shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": ct2.scalar_int("encoder/num_heads"),
        "n_audio_layer": _count_layers(ct2, "encoder"),
        "n_vocab": int(emb.shape[0]),
        "n_text_ctx": int(dec_pos.shape[0]),
        "n_text_state": int(emb.shape[1]),
        "n_text_head": ct2.scalar_int("decoder/num_heads"),
        "n_text_layer": _count_layers(ct2, "decoder"),
    }


def _split_rows(weight: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if weight.shape[0] % parts:
        raise ConversionError(f"{name}: {weight.shape[0]} rows do not split into {parts}")
    return list(np.split(weight, parts, axis=0))


def whisper_state_dict(ct2: CT2Model, dims: dict[str, int]) -> dict[str, np.ndarray]:
    """openai-whisper parameter names -> float32 arrays, from CTranslate2 variable names."""
    sd: dict[str, np.ndarray] = {}
    warnings: list[str] = []

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = ct2.weight(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = ct2.weight(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = ct2.weight(f"{src}/gamma")
        sd[f"{dst}.bias"] = ct2.weight(f"{src}/beta")

    def key_without_bias(bias: np.ndarray, where: str) -> None:
        # openai-whisper's key projections have no bias; CTranslate2 fills that slot with zeros.
        peak = float(np.abs(bias).max()) if bias.size else 0.0
        if peak > 1e-6:
            warnings.append(f"{where}: key bias is not zero (max {peak:g}); it is dropped")

    def fused_qkv(dst: str, src: str) -> None:
        w = ct2.weight(f"{src}/linear_0/weight")
        b = ct2.weight(f"{src}/linear_0/bias")
        wq, wk, wv = _split_rows(w, 3, src)
        bq, bk, bv = _split_rows(b, 3, src)
        key_without_bias(bk, src)
        sd[f"{dst}.query.weight"], sd[f"{dst}.query.bias"] = wq, bq
        sd[f"{dst}.key.weight"] = wk
        sd[f"{dst}.value.weight"], sd[f"{dst}.value.bias"] = wv, bv
        linear(f"{dst}.out", f"{src}/linear_1")

    def cross(dst: str, src: str) -> None:
        linear(f"{dst}.query", f"{src}/linear_0")
        w = ct2.weight(f"{src}/linear_1/weight")
        b = ct2.weight(f"{src}/linear_1/bias")
        wk, wv = _split_rows(w, 2, src)
        bk, bv = _split_rows(b, 2, src)
        key_without_bias(bk, src)
        sd[f"{dst}.key.weight"] = wk
        sd[f"{dst}.value.weight"], sd[f"{dst}.value.bias"] = wv, bv
        linear(f"{dst}.out", f"{src}/linear_2")

    def mlp(dst: str, src: str) -> None:
        norm(f"{dst}.mlp_ln", f"{src}/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/linear_1")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = ct2.weight("encoder/position_encodings/encodings")
    for i in range(dims["n_audio_layer"]):
        src = f"encoder/layer_{i}"
        dst = f"encoder.blocks.{i}"
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused_qkv(f"{dst}.attn", f"{src}/self_attention")
        mlp(dst, f"{src}/ffn")
    norm("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = ct2.weight("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = ct2.weight("decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        src = f"decoder/layer_{i}"
        dst = f"decoder.blocks.{i}"
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        fused_qkv(f"{dst}.attn", f"{src}/self_attention")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        cross(f"{dst}.cross_attn", f"{src}/attention")
        mlp(dst, f"{src}/ffn")
    norm("decoder.ln", "decoder/layer_norm")

    if ct2.has("decoder/projection/weight"):
        proj = ct2.weight("decoder/projection/weight")
        if not np.array_equal(proj, sd["decoder.token_embedding.weight"]):
            raise ConversionError(
                "decoder/projection/weight differs from the token embedding; "
                "openai-whisper ties them, so this model cannot be represented"
            )
    for w in warnings:
        log(f"warning: {w}")
    return sd


def build_whisper(ct2: CT2Model) -> Any:
    import torch
    import whisper.model as wm

    if ct2.spec != "WhisperSpec":
        raise ConversionError(f"spec is {ct2.spec!r}, expected 'WhisperSpec'")
    dims_dict = model_dimensions(ct2)
    dims = wm.ModelDimensions(**dims_dict)
    model = wm.Whisper(dims)
    sd = whisper_state_dict(ct2, dims_dict)
    own = model.state_dict()
    # (alignment_heads is a non-persistent buffer, so it is not in state_dict())
    expected = set(own)
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        raise ConversionError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    tensors = {}
    for k, v in sd.items():
        if tuple(own[k].shape) != v.shape:
            raise ConversionError(
                f"{k}: CT2 shape {v.shape} != whisper shape {tuple(own[k].shape)}"
            )
        tensors[k] = torch.from_numpy(np.ascontiguousarray(v))
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model


def model_name(dims: dict[str, int], multilingual: bool) -> str:
    base = _SIZE_NAMES.get((dims["n_audio_layer"], dims["n_audio_state"]))
    if base is None:
        raise ConversionError(
            f"unknown Whisper size ({dims['n_audio_layer']} layers, width "
            f"{dims['n_audio_state']}); pass --name"
        )
    return base if multilingual else f"{base}.en"


# --------------------------------------------------------------------------------------------
# Export wrappers (own attention code: plain MatMul/Softmax, no SDPA, no in-place cache writes)
# --------------------------------------------------------------------------------------------


def _make_wrappers() -> tuple[type, type]:
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn

    def split_heads(x: Tensor, n_head: int) -> Tensor:
        b, t, d = x.shape
        return x.view(b, t, n_head, d // n_head).permute(0, 2, 1, 3)

    def attend(q: Tensor, k: Tensor, v: Tensor, n_head: int, mask: Tensor | None) -> Tensor:
        # q: (b, tq, d), k/v: (b, tk, d) -> (b, tq, d)
        b, tq, d = q.shape
        scale = float((d // n_head) ** -0.25)
        qh = split_heads(q, n_head) * scale
        kh = split_heads(k, n_head) * scale
        vh = split_heads(v, n_head)
        w = torch.matmul(qh, kh.transpose(-1, -2))
        if mask is not None:
            w = w + mask
        w = F.softmax(w.float(), dim=-1)
        out = torch.matmul(w, vh)
        return out.permute(0, 2, 1, 3).reshape(b, tq, d)

    class Encoder(nn.Module):  # type: ignore[misc, unused-ignore]  # torch is untyped here
        """mel (b, n_mels, T) -> cross k, v for every decoder layer: (n_layer, b, T/2, d)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.enc = model.encoder
            self.dec_blocks = model.decoder.blocks
            self.n_head = model.dims.n_audio_head

        def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
            enc = self.enc
            x = F.gelu(enc.conv1(mel))
            x = F.gelu(enc.conv2(x))
            x = x.permute(0, 2, 1)
            x = x + enc.positional_embedding[: x.shape[1]]
            for block in enc.blocks:
                h = block.attn_ln(x)
                a = block.attn
                x = x + a.out(attend(a.query(h), a.key(h), a.value(h), self.n_head, None))
                x = x + block.mlp(block.mlp_ln(x))
            x = enc.ln_post(x)
            ks = [blk.cross_attn.key(x) for blk in self.dec_blocks]
            vs = [blk.cross_attn.value(x) for blk in self.dec_blocks]
            return torch.stack(ks), torch.stack(vs)

    class Decoder(nn.Module):  # type: ignore[misc, unused-ignore]
        """One decoding step with an explicit self-attention cache of n_text_ctx positions."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.dec = model.decoder
            self.n_head = model.dims.n_text_head
            n_ctx = model.dims.n_text_ctx
            mask = torch.full((n_ctx, n_ctx), float("-inf")).triu_(1)
            self.register_buffer("causal", mask, persistent=False)

        def forward(
            self,
            tokens: Tensor,
            in_k: Tensor,
            in_v: Tensor,
            cross_k: Tensor,
            cross_v: Tensor,
            offset: Tensor,
        ) -> tuple[Tensor, Tensor, Tensor]:
            dec = self.dec
            start = offset[0]
            end = start + tokens.shape[1]
            x = dec.token_embedding(tokens) + dec.positional_embedding[start:end]
            mask = self.causal[start:end, :end]
            out_k = []
            out_v = []
            for i, block in enumerate(dec.blocks):
                h = block.attn_ln(x)
                a = block.attn
                q, k, v = a.query(h), a.key(h), a.value(h)
                k_all = torch.cat([in_k[i, :, :start], k, in_k[i, :, end:]], dim=1)
                v_all = torch.cat([in_v[i, :, :start], v, in_v[i, :, end:]], dim=1)
                out_k.append(k_all)
                out_v.append(v_all)
                x = x + a.out(attend(q, k_all[:, :end], v_all[:, :end], self.n_head, mask))
                h = block.cross_attn_ln(x)
                c = block.cross_attn
                x = x + c.out(attend(c.query(h), cross_k[i], cross_v[i], self.n_head, None))
                x = x + block.mlp(block.mlp_ln(x))
            x = dec.ln(x)
            # weight first so the (shared) embedding matrix stays one float initializer
            logits = torch.matmul(dec.token_embedding.weight, x.transpose(1, 2))
            logits = logits.transpose(1, 2).float()
            return logits, torch.stack(out_k), torch.stack(out_v)

    return Encoder, Decoder


# --------------------------------------------------------------------------------------------
# Tokens and metadata
# --------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (what vocabulary.txt uses)."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def write_tokens(tiktoken_file: Path, out: Path, vocabulary: Path | None) -> int:
    lines = []
    ranks: list[tuple[bytes, int]] = []
    for line in tiktoken_file.read_text(encoding="ascii").splitlines():
        if not line:
            continue
        token, rank = line.split()
        ranks.append((base64.b64decode(token), int(rank)))
        lines.append(f"{token} {int(rank)}\n")
    if [r for _, r in ranks] != list(range(len(ranks))):
        raise ConversionError(f"{tiktoken_file}: ranks are not 0..{len(ranks) - 1}")
    if vocabulary is not None and vocabulary.is_file():
        table = _bytes_to_unicode()
        vocab = vocabulary.read_text(encoding="utf-8").split("\n")
        bad = [
            r for raw, r in ranks if r >= len(vocab) or vocab[r] != "".join(table[b] for b in raw)
        ]
        if bad:
            raise ConversionError(
                f"{len(bad)} tokens of {tiktoken_file.name} differ from {vocabulary} "
                f"(first rank {bad[0]}): the model was trained with another vocabulary"
            )
        log(f"tokens: all {len(ranks)} agree with {vocabulary.name}")
    out.write_text("".join(lines), encoding="ascii", newline="\n")
    return len(lines)


def encoder_metadata(model: Any, name: str) -> dict[str, Any]:
    from whisper.tokenizer import get_tokenizer

    tok = get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    d = model.dims
    # whisper builds these from a set, so their order changes with the hash seed: sort by id
    languages = sorted(zip(tok.all_language_tokens, tok.all_language_codes, strict=True))
    return {
        "model_type": f"whisper-{name}",
        "version": "1",
        "maintainer": "stella (converted from CTranslate2)",
        "n_mels": d.n_mels,
        "n_audio_ctx": d.n_audio_ctx,
        "n_audio_state": d.n_audio_state,
        "n_audio_head": d.n_audio_head,
        "n_audio_layer": d.n_audio_layer,
        "n_vocab": d.n_vocab,
        "n_text_ctx": d.n_text_ctx,
        "n_text_state": d.n_text_state,
        "n_text_head": d.n_text_head,
        "n_text_layer": d.n_text_layer,
        "sot_sequence": ",".join(str(t) for t in tok.sot_sequence),
        "all_language_tokens": ",".join(str(t) for t, _ in languages),
        "all_language_codes": ",".join(c for _, c in languages),
        "sot": tok.sot,
        "sot_index": tok.sot_sequence.index(tok.sot),
        "eot": tok.eot,
        "blank_id": tok.encode(" ")[0],
        "is_multilingual": int(model.is_multilingual),
        "no_speech": tok.no_speech,
        "non_speech_tokens": ",".join(str(t) for t in tok.non_speech_tokens),
        "transcribe": tok.transcribe,
        "translate": tok.translate,
        "sot_prev": tok.sot_prev,
        "sot_lm": tok.sot_lm,
        "no_timestamps": tok.no_timestamps,
    }


def add_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for key, value in meta.items():
        prop = m.metadata_props.add()
        prop.key = key
        prop.value = str(value)
    onnx.save(m, str(path))


# --------------------------------------------------------------------------------------------
# Export, check, quantise
# --------------------------------------------------------------------------------------------


def _test_mel(n_mels: int, frames: int) -> np.ndarray:
    """A fixed, speech-like log-mel input: 8 s of gliding harmonic tones in noise, then silence.

    Whisper's own front end makes it, so its value range is that of real input (uniform noise
    would exaggerate the int8 error)."""
    import torch
    import whisper

    sr = 16000
    rng = np.random.default_rng(1234)
    t = np.arange(8 * sr) / sr
    f0 = 140.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t) + 25.0 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t) ** 2
    audio = sum(np.sin(h * phase) / h for h in range(1, 12)) * envelope * 0.1
    audio = audio + 0.003 * rng.standard_normal(len(t))
    padded = np.zeros(frames * 160, dtype=np.float32)
    padded[: len(audio)] = audio[: len(padded)]
    mel = whisper.log_mel_spectrogram(torch.from_numpy(padded), n_mels=n_mels)
    return np.ascontiguousarray(mel[:, :frames].numpy()[None].astype(np.float32))


def export(model: Any, name: str, out: Path) -> dict[str, Path]:
    import torch

    Encoder, Decoder = _make_wrappers()
    d = model.dims
    enc = Encoder(model).eval()
    dec = Decoder(model).eval()
    enc_path = out / f"{name}-encoder.onnx"
    dec_path = out / f"{name}-decoder.onnx"

    with torch.no_grad():
        mel = torch.from_numpy(_test_mel(d.n_mels, 2 * d.n_audio_ctx))
        cross_k, cross_v = enc(mel)
        t0 = time.monotonic()
        torch.onnx.export(
            enc,
            (mel,),
            str(enc_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["mel"],
            output_names=["n_layer_cross_k", "n_layer_cross_v"],
            dynamic_axes={
                "mel": {0: "n_audio", 2: "T"},
                "n_layer_cross_k": {1: "n_audio", 2: "T_2"},
                "n_layer_cross_v": {1: "n_audio", 2: "T_2"},
            },
        )
        log(f"encoder exported in {time.monotonic() - t0:.1f} s")

        cache_shape = (d.n_text_layer, 1, d.n_text_ctx, d.n_text_state)
        tokens = torch.tensor([_prompt(model)], dtype=torch.int64)
        in_k = torch.zeros(cache_shape)
        in_v = torch.zeros(cache_shape)
        offset = torch.tensor([0], dtype=torch.int64)
        t0 = time.monotonic()
        torch.onnx.export(
            dec,
            (tokens, in_k, in_v, cross_k, cross_v, offset),
            str(dec_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[
                "tokens",
                "in_n_layer_self_k_cache",
                "in_n_layer_self_v_cache",
                "n_layer_cross_k",
                "n_layer_cross_v",
                "offset",
            ],
            output_names=["logits", "out_n_layer_self_k_cache", "out_n_layer_self_v_cache"],
            dynamic_axes={
                "tokens": {0: "n_audio", 1: "n_tokens"},
                "in_n_layer_self_k_cache": {1: "n_audio"},
                "in_n_layer_self_v_cache": {1: "n_audio"},
                "n_layer_cross_k": {1: "n_audio", 2: "T_2"},
                "n_layer_cross_v": {1: "n_audio", 2: "T_2"},
            },
        )
        log(f"decoder exported in {time.monotonic() - t0:.1f} s")
    return {"encoder": enc_path, "decoder": dec_path}


def _ort_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _onnx_greedy(
    enc_path: Path, dec_path: Path, mel: np.ndarray, prompt: list[int], steps: int, d: Any
) -> tuple[list[int], list[np.ndarray], np.ndarray]:
    enc = _ort_session(enc_path)
    dec = _ort_session(dec_path)
    cross_k, cross_v = enc.run(None, {"mel": mel})
    k = np.zeros((d.n_text_layer, 1, d.n_text_ctx, d.n_text_state), np.float32)
    v = np.zeros_like(k)
    seq = list(prompt)
    feed = np.array([prompt], dtype=np.int64)
    offset = 0
    step_logits = []
    for _ in range(steps):
        logits, k, v = dec.run(
            None,
            {
                "tokens": feed,
                "in_n_layer_self_k_cache": k,
                "in_n_layer_self_v_cache": v,
                "n_layer_cross_k": cross_k,
                "n_layer_cross_v": cross_v,
                "offset": np.array([offset], dtype=np.int64),
            },
        )
        offset += feed.shape[1]
        step_logits.append(logits[0, -1])
        nxt = int(np.argmax(logits[0, -1]))
        seq.append(nxt)
        feed = np.array([[nxt]], dtype=np.int64)
    return seq, step_logits, cross_k


def _rel_rms(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float(np.linalg.norm(got - want) / (np.linalg.norm(want) + 1e-12))


def _prompt(model: Any) -> list[int]:
    """What sherpa-onnx feeds first: the sot sequence, then no_timestamps."""
    from whisper.tokenizer import get_tokenizer

    tok = get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    return [*tok.sot_sequence, tok.no_timestamps]


def check_against_torch(model: Any, enc_path: Path, dec_path: Path, int8: bool) -> None:
    """Greedy-decode a few steps with the ONNX files and compare with openai-whisper itself."""
    import torch

    d = model.dims
    full = _test_mel(d.n_mels, 2 * d.n_audio_ctx)
    prompt = _prompt(model)
    steps = 6
    seq, step_logits, cross_k = _onnx_greedy(enc_path, dec_path, full, prompt, steps, d)
    with torch.no_grad():
        feats = model.encoder(torch.from_numpy(full))
        ref = model.decoder(torch.tensor([seq[:-1]]), feats)[0].numpy()
        ref_k = model.decoder.blocks[0].cross_attn.key(feats).numpy()
    # positions whose logits predicted the generated tokens
    ref_steps = ref[len(prompt) - 1 :]
    got = np.stack(step_logits)
    worst = _rel_rms(got, ref_steps)
    k_err = _rel_rms(cross_k[0], ref_k)
    limit = 0.35 if int8 else 1e-4
    kind = "int8" if int8 else "float32"
    log(f"check {kind}: relative RMS error of logits {worst:.2e}, of cross-k {k_err:.2e}")
    if not np.isfinite(worst) or not np.isfinite(k_err) or worst > limit or k_err > limit:
        raise ConversionError(
            f"{kind} ONNX model disagrees with openai-whisper (logits {worst:.3g}, "
            f"cross-k {k_err:.3g}, limit {limit})"
        )
    if not int8:
        ref_seq = [int(np.argmax(r)) for r in ref_steps]
        if ref_seq != seq[len(prompt) :]:
            raise ConversionError(f"greedy tokens differ: onnx {seq} vs torch {ref_seq}")
        # the time axis must really be variable: a short input has to run and match torch
        short = full[:, :, :1000]
        _, _, short_k = _onnx_greedy(enc_path, dec_path, short, prompt, 1, d)
        enc_wrapper = _make_wrappers()[0](model).eval()
        with torch.no_grad():
            want_k = enc_wrapper(torch.from_numpy(short))[0].numpy()
        if short_k.shape != want_k.shape or not np.allclose(short_k, want_k, atol=1e-3):
            raise ConversionError("encoder output for a 1000-frame input does not match torch")


def quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=str(src),
        model_output=str(dst),
        op_types_to_quantize=["MatMul"],
        weight_type=QuantType.QInt8,
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(ct2_dir: Path, out_dir: Path, name: str | None) -> Path:
    import onnx
    import onnxruntime
    import torch
    import whisper

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model_bin = ct2_dir / "model.bin"
    if not model_bin.is_file():
        raise ConversionError(f"{model_bin} does not exist")
    t_all = time.monotonic()
    source_sha = sha256_file(model_bin)
    ct2 = read_ct2_model(model_bin)
    log(
        f"read {model_bin} (binary v{ct2.binary_version}, {ct2.spec} rev {ct2.revision}, "
        f"{len(ct2.variables)} variables, {len(ct2.aliases)} aliases)"
    )
    model = build_whisper(ct2)
    del ct2
    name = name or model_name(asdict(model.dims), model.is_multilingual)
    log(f"model {name}: {model.dims}")

    out_dir.mkdir(parents=True, exist_ok=True)
    tiktoken_name = "multilingual.tiktoken" if model.is_multilingual else "gpt2.tiktoken"
    tiktoken_file = Path(whisper.__file__).parent / "assets" / tiktoken_name
    tokens_path = out_dir / f"{name}-tokens.txt"
    n_tokens = write_tokens(tiktoken_file, tokens_path, ct2_dir / "vocabulary.txt")
    log(f"wrote {tokens_path.name} ({n_tokens} tokens)")

    paths = export(model, name, out_dir)
    add_metadata(paths["encoder"], encoder_metadata(model, name))
    check_against_torch(model, paths["encoder"], paths["decoder"], int8=False)

    int8 = {}
    for part in ("encoder", "decoder"):
        dst = out_dir / f"{name}-{part}.int8.onnx"
        t0 = time.monotonic()
        quantize(paths[part], dst)
        int8[part] = dst
        log(f"quantised {dst.name} in {time.monotonic() - t0:.1f} s")
    check_against_torch(model, int8["encoder"], int8["decoder"], int8=True)
    for p in (*paths.values(), *int8.values()):
        onnx.checker.check_model(str(p))

    files = [paths["encoder"], paths["decoder"], int8["encoder"], int8["decoder"], tokens_path]
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "layout": "sherpa-onnx-whisper",
        "source": {
            "file": "model.bin",
            "sha256": source_sha,
            "size": model_bin.stat().st_size,
        },
        "dims": asdict(model.dims),
        # a changed script means a new conversion (converter.py compares this)
        "script_sha256": sha256_file(Path(__file__).resolve()),
        "tools": {
            "torch": torch.__version__,
            "openai-whisper": whisper.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
            "opset": OPSET,
        },
        "files": {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size} for p in files},
    }
    # the same sums as a plain name -> sha256 map (the form stella's model catalog reads)
    manifest["sha256"] = {k: v["sha256"] for k, v in manifest["files"].items()}
    manifest_path = out_dir / "manifest.json"
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(manifest_path)
    for p in files:
        log(f"  {p.name}: {p.stat().st_size:,} bytes")
    log(f"done in {time.monotonic() - t_all:.1f} s")
    return manifest_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct2", type=Path, required=True, help="CTranslate2 Whisper folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--name", default=None, help="file prefix, e.g. tiny.en (default: inferred)"
    )
    args = parser.parse_args(argv)
    try:
        convert(args.ct2, args.out, args.name)
    except ConversionError as exc:
        log(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
