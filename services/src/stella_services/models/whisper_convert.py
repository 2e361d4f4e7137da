"""Convert a CTranslate2 Whisper model (faster-whisper's layout) into sherpa-onnx's Whisper layout.

No torch: the CTranslate2 ``model.bin`` is read into numpy arrays and the encoder and decoder
graphs are written node by node with ``onnx.helper``; ``onnxruntime`` quantises and checks
them. Everything it needs (numpy, onnx, onnxruntime, ctranslate2, tokenizers, faster-whisper)
is in the project's own environment (the ``stt`` extra). converter.py calls ``convert`` and
adds the caching; this module only converts.

``ct2_dir`` holds CTranslate2's ``model.bin``, ``vocabulary.txt`` and ``tokenizer.json``. The
output folder receives::

    NAME-encoder.onnx        input mel (batch, n_mels, T)  -> n_layer_cross_k, n_layer_cross_v
    NAME-decoder.onnx        tokens, in_n_layer_self_{k,v}_cache, n_layer_cross_{k,v}, offset
                             -> logits, out_n_layer_self_{k,v}_cache
    NAME-encoder.int8.onnx   the same, MatMul weights quantised to int8 (dynamic)
    NAME-decoder.int8.onnx
    NAME-tokens.txt          "base64(token bytes) rank" per line, the regular (non-special)
                             tokens of vocabulary.txt: the bytes of whisper's tiktoken file
    manifest.json            sha256 and size of each file above, sha256 of the source model.bin

The encoder's time axis T is variable (sherpa-onnx feeds the frames it has plus some tail
padding, at most 3000). The metadata keys are the ones sherpa-onnx reads from its own Whisper
exports (n_mels, n_text_layer, sot_sequence, eot, ...). Before the files are accepted, a
greedy decode with the float32 ONNX files must give CTranslate2's own greedy tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stella_services.models.catalog import ModelPreparationError

MANIFEST_FORMAT = 2
OPSET = 17
# Whisper model names by (encoder layers, width); ".en" is appended for English-only models.
_SIZE_NAMES = {
    (4, 384): "tiny",
    (6, 512): "base",
    (12, 768): "small",
    (24, 1024): "medium",
    (32, 1280): "large",
}
# max_length of the reference decode by CTranslate2 (eot suppressed; it gives 12 tokens for
# tiny.en), whose tokens the ONNX files must reproduce one by one.
CHECK_STEPS = 24
# Largest relative RMS error of the int8 files' logits and cross k against the float32 ones.
INT8_LIMIT = 0.35
# ... and of the float32 files' against CTranslate2's float32 (a wrong graph is off by ~1).
FLOAT32_LIMIT = 1e-3

Log = Callable[[str], None]
# tokenizer.json spells Hebrew "iw" (its old ISO 639 code); whisper and sherpa-onnx say "he"
_LANGUAGE_CODES = {"iw": "he"}


def _error(message: str) -> ModelPreparationError:
    return ModelPreparationError(f"whisper conversion: {message}")


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
                raise _error(f"alias loop at {name!r}")
            seen.add(name)
            name = self.aliases[name]
        try:
            return self.variables[name]
        except KeyError:
            raise _error(f"model.bin has no variable {name!r}") from None

    def has(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def weight(self, name: str) -> np.ndarray:
        """A float32 weight, dequantised if CTranslate2 stored it as int8/int16 with a scale."""
        value = self.get(name)
        if value.dtype in (np.int8, np.int16):
            scale_name = name.rsplit("/", 1)[0] + "/weight_scale"
            if not self.has(scale_name):
                raise _error(f"{name} is {value.dtype} but {scale_name} is missing")
            scale = self.get(scale_name).astype(np.float32)
            if scale.ndim == 1:
                scale = scale[:, None]
            return (value.astype(np.float32) / scale).astype(np.float32)
        if value.dtype.kind != "f":
            raise _error(f"{name} has dtype {value.dtype}, expected a float weight")
        return value.astype(np.float32)

    def scalar_int(self, name: str) -> int:
        value = self.get(name)
        if value.size != 1:
            raise _error(f"{name} should be a scalar, has shape {value.shape}")
        return int(value.reshape(-1)[0])


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _error(f"model.bin ends early while reading {what}")
    return data


def _read_u(f: BinaryIO, fmt: str, what: str) -> int:
    size = struct.calcsize("<" + fmt)
    return int(struct.unpack("<" + fmt, _read_exact(f, size, what))[0])


def _read_str(f: BinaryIO, what: str) -> str:
    n = _read_u(f, "H", what)
    raw = _read_exact(f, n, what)
    if n == 0 or raw[-1] != 0:
        raise _error(f"bad string for {what}")
    return raw[:-1].decode("utf-8")


def read_ct2_model(path: Path) -> CT2Model:
    file_size = path.stat().st_size
    with path.open("rb") as f:
        version = _read_u(f, "I", "binary version")
        if version not in _SUPPORTED_BINARY_VERSIONS:
            raise _error(
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
                raise _error(f"{name}: unknown CTranslate2 dtype id {type_id}")
            dtype_name = _CT2_DTYPES[type_id]
            raw = _read_exact(f, n_bytes, name)
            count = int(np.prod(shape)) if shape else 1
            if dtype_name == "bfloat16":
                if n_bytes != 2 * count:
                    raise _error(f"{name}: {n_bytes} bytes for {count} bfloat16 values")
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                array = bits.view(np.float32)
            else:
                dtype = np.dtype(dtype_name).newbyteorder("<")
                if n_bytes != dtype.itemsize * count:
                    raise _error(
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
            raise _error(f"{path}: {file_size - f.tell()} trailing bytes after the last alias")
    return CT2Model(version, spec, revision, variables, aliases)


def _count_layers(ct2: CT2Model, prefix: str) -> int:
    n = 0
    while ct2.has(f"{prefix}/layer_{n}/ffn/linear_0/weight"):
        n += 1
    if n == 0:
        raise _error(f"no layers under {prefix}/")
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
        raise _error(f"{name}: {weight.shape[0]} rows do not split into {parts}")
    return list(np.split(weight, parts, axis=0))


def whisper_weights(ct2: CT2Model, dims: dict[str, int], log: Log) -> dict[str, np.ndarray]:
    """float32 arrays under openai-whisper's parameter names, from CTranslate2's variables
    (its fused q/k/v and k/v projections split apart)."""
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
            raise _error(
                "decoder/projection/weight differs from the token embedding; "
                "the decoder graph ties them (logits = x @ embedding^T), so it cannot "
                "convert this model"
            )
    for w in warnings:
        log(f"warning: {w}")
    return sd


# --------------------------------------------------------------------------------------------
# ONNX graphs, node by node
# --------------------------------------------------------------------------------------------
# The computation is openai-whisper's (what CTranslate2's weights were converted from): q and k
# each scaled by d_head**-0.25 before q @ k^T, exact (erf) GELU, LayerNorm eps 1e-5, causal
# self-attention in the decoder, logits = x @ token_embedding^T. Linear layers are MatMul with
# the transposed weight as an initializer, then Add of the bias: the form dynamic int8
# quantisation of MatMul recognises.


class _Graph:
    """Nodes and initializers of one graph, with fresh names for every intermediate value."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self._count = 0

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [out], name=f"{op_type}_{self._count}", **attrs)
        )
        return out

    def const(self, name: str, value: np.ndarray) -> str:
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(value, name)
        return name

    def ints(self, *values: int) -> str:
        return self.const(
            "i64_" + "_".join(str(v).replace("-", "m") for v in values),
            np.array(values, dtype=np.int64),
        )

    def scalar(self, value: float) -> str:
        return self.const(f"f32_{value!r}", np.array(value, dtype=np.float32))

    def param(self, name: str) -> str:
        return self.const(name, self.weights[name])

    def linear(self, x: str, name: str, bias: bool = True) -> str:
        w_t = self.const(f"{name}.weight_t", np.ascontiguousarray(self.weights[f"{name}.weight"].T))
        y = self.op("MatMul", x, w_t)
        return self.op("Add", y, self.param(f"{name}.bias")) if bias else y

    def layer_norm(self, x: str, name: str) -> str:
        return self.op(
            "LayerNormalization",
            x,
            self.param(f"{name}.weight"),
            self.param(f"{name}.bias"),
            axis=-1,
            epsilon=1e-5,
        )

    def gelu(self, x: str) -> str:
        # 0.5 * x * (1 + erf(x / sqrt(2))), the pattern onnxruntime fuses into one Gelu kernel
        erf = self.op("Erf", self.op("Div", x, self.scalar(float(np.sqrt(2.0)))))
        return self.op(
            "Mul", self.op("Mul", x, self.op("Add", erf, self.scalar(1.0))), self.scalar(0.5)
        )

    def mlp(self, x: str, block: str) -> str:
        h = self.layer_norm(x, f"{block}.mlp_ln")
        h = self.gelu(self.linear(h, f"{block}.mlp.0"))
        return self.op("Add", x, self.linear(h, f"{block}.mlp.2"))

    def attend(self, q: str, k: str, v: str, n_head: int, d: int, mask: str | None) -> str:
        """q: (b, tq, d), k and v: (b, tk, d) -> (b, tq, d)."""
        d_head = d // n_head
        split = self.ints(0, 0, n_head, d_head)
        scale = self.scalar(float(d_head**-0.25))
        qh = self.op("Transpose", self.op("Reshape", q, split), perm=[0, 2, 1, 3])
        kh = self.op("Transpose", self.op("Reshape", k, split), perm=[0, 2, 3, 1])
        vh = self.op("Transpose", self.op("Reshape", v, split), perm=[0, 2, 1, 3])
        w = self.op("MatMul", self.op("Mul", qh, scale), self.op("Mul", kh, scale))
        if mask is not None:
            w = self.op("Add", w, mask)
        out = self.op("MatMul", self.op("Softmax", w, axis=-1), vh)
        return self.op("Reshape", self.op("Transpose", out, perm=[0, 2, 1, 3]), self.ints(0, 0, d))

    def stack(self, values: Sequence[str]) -> str:
        return self.op("Concat", *(self.op("Unsqueeze", v, self.ints(0)) for v in values), axis=0)

    def model(
        self,
        name: str,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        results: Sequence[str],
    ) -> onnx.ModelProto:
        # the last nodes write the graph's outputs under their public names
        for value, result in zip(outputs, results, strict=True):
            self.nodes.append(helper.make_node("Identity", [result], [value.name]))
        graph = helper.make_graph(
            self.nodes, name, inputs, outputs, initializer=list(self.initializers.values())
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="stella whisper_convert",
        )
        model.ir_version = 8  # what onnxruntime and sherpa-onnx of 2023 on read
        return model


def _float(name: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def build_encoder(w: dict[str, np.ndarray], dims: dict[str, int]) -> onnx.ModelProto:
    """mel (b, n_mels, T) -> cross k and v of every decoder layer, (n_text_layer, b, T/2, d)."""
    g = _Graph(w)
    d, heads = dims["n_audio_state"], dims["n_audio_head"]
    conv = {"kernel_shape": [3], "pads": [1, 1]}
    x = g.op("Conv", "mel", g.param("encoder.conv1.weight"), g.param("encoder.conv1.bias"), **conv)
    x = g.gelu(x)
    x = g.op(
        "Conv",
        x,
        g.param("encoder.conv2.weight"),
        g.param("encoder.conv2.bias"),
        strides=[2],
        **conv,
    )
    x = g.op("Transpose", g.gelu(x), perm=[0, 2, 1])
    frames = g.op("Slice", g.op("Shape", x), g.ints(1), g.ints(2))
    pos = g.op("Slice", g.param("encoder.positional_embedding"), g.ints(0), frames, g.ints(0))
    x = g.op("Add", x, pos)
    for i in range(dims["n_audio_layer"]):
        b = f"encoder.blocks.{i}"
        h = g.layer_norm(x, f"{b}.attn_ln")
        q = g.linear(h, f"{b}.attn.query")
        k = g.linear(h, f"{b}.attn.key", bias=False)
        v = g.linear(h, f"{b}.attn.value")
        x = g.op("Add", x, g.linear(g.attend(q, k, v, heads, d, None), f"{b}.attn.out"))
        x = g.mlp(x, b)
    x = g.layer_norm(x, "encoder.ln_post")
    layers = range(dims["n_text_layer"])
    ks = [g.linear(x, f"decoder.blocks.{i}.cross_attn.key", bias=False) for i in layers]
    vs = [g.linear(x, f"decoder.blocks.{i}.cross_attn.value") for i in layers]
    n = dims["n_text_layer"]
    return g.model(
        "whisper_encoder",
        [_float("mel", ["n_audio", dims["n_mels"], "T"])],
        [
            _float("n_layer_cross_k", [n, "n_audio", "T_2", dims["n_text_state"]]),
            _float("n_layer_cross_v", [n, "n_audio", "T_2", dims["n_text_state"]]),
        ],
        [g.stack(ks), g.stack(vs)],
    )


def build_decoder(w: dict[str, np.ndarray], dims: dict[str, int]) -> onnx.ModelProto:
    """One decoding step: ``tokens`` (b, n) at positions offset..offset+n, the self-attention
    cache of n_text_ctx positions in and out (written at those positions), the encoder's cross
    k and v -> logits (b, n, n_vocab)."""
    g = _Graph(w)
    d, heads, n_ctx = dims["n_text_state"], dims["n_text_head"], dims["n_text_ctx"]
    n_layer = dims["n_text_layer"]
    causal = np.triu(np.full((n_ctx, n_ctx), -np.inf, dtype=np.float32), k=1)
    start = "offset"
    n_tokens = g.op("Slice", g.op("Shape", "tokens"), g.ints(1), g.ints(2))
    end = g.op("Add", start, n_tokens)
    embedding = g.param("decoder.token_embedding.weight")
    x = g.op("Gather", embedding, "tokens", axis=0)
    pos = g.op("Slice", g.param("decoder.positional_embedding"), start, end, g.ints(0))
    x = g.op("Add", x, pos)
    mask = g.op("Slice", g.const("causal_mask", causal), start, end, g.ints(0))
    mask = g.op("Slice", mask, g.ints(0), end, g.ints(1))
    out_k: list[str] = []
    out_v: list[str] = []
    for i in range(n_layer):
        b = f"decoder.blocks.{i}"
        h = g.layer_norm(x, f"{b}.attn_ln")
        q = g.linear(h, f"{b}.attn.query")
        k = g.linear(h, f"{b}.attn.key", bias=False)
        v = g.linear(h, f"{b}.attn.value")
        caches = []
        for new, cache_in in ((k, "in_n_layer_self_k_cache"), (v, "in_n_layer_self_v_cache")):
            layer = g.op("Gather", cache_in, g.ints(i), axis=0)  # (1, b, n_ctx, d)
            layer = g.op("Squeeze", layer, g.ints(0))
            before = g.op("Slice", layer, g.ints(0), start, g.ints(1))
            after = g.op("Slice", layer, end, g.ints(n_ctx), g.ints(1))
            caches.append(g.op("Concat", before, new, after, axis=1))
        out_k.append(caches[0])
        out_v.append(caches[1])
        k_now = g.op("Slice", caches[0], g.ints(0), end, g.ints(1))
        v_now = g.op("Slice", caches[1], g.ints(0), end, g.ints(1))
        x = g.op("Add", x, g.linear(g.attend(q, k_now, v_now, heads, d, mask), f"{b}.attn.out"))
        h = g.layer_norm(x, f"{b}.cross_attn_ln")
        q = g.linear(h, f"{b}.cross_attn.query")
        cross_k = g.op("Squeeze", g.op("Gather", "n_layer_cross_k", g.ints(i), axis=0), g.ints(0))
        cross_v = g.op("Squeeze", g.op("Gather", "n_layer_cross_v", g.ints(i), axis=0), g.ints(0))
        attended = g.attend(q, cross_k, cross_v, heads, d, None)
        x = g.op("Add", x, g.linear(attended, f"{b}.cross_attn.out"))
        x = g.mlp(x, b)
    x = g.layer_norm(x, "decoder.ln")
    # the embedding as the first MatMul input: quantisation leaves it alone, so it stays one
    # float initializer shared with the Gather above
    logits = g.op("MatMul", embedding, g.op("Transpose", x, perm=[0, 2, 1]))
    logits = g.op("Transpose", logits, perm=[0, 2, 1])
    cache: list[int | str] = [n_layer, "n_audio", n_ctx, d]
    cross: list[int | str] = [n_layer, "n_audio", "T_2", d]
    return g.model(
        "whisper_decoder",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["n_audio", "n_tokens"]),
            _float("in_n_layer_self_k_cache", cache),
            _float("in_n_layer_self_v_cache", cache),
            _float("n_layer_cross_k", cross),
            _float("n_layer_cross_v", cross),
            helper.make_tensor_value_info("offset", TensorProto.INT64, [1]),
        ],
        [
            _float("logits", ["n_audio", "n_tokens", dims["n_vocab"]]),
            _float("out_n_layer_self_k_cache", cache),
            _float("out_n_layer_self_v_cache", cache),
        ],
        [logits, g.stack(out_k), g.stack(out_v)],
    )


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


def write_tokens(vocabulary: Path, out: Path) -> int:
    """The regular tokens of ``vocabulary.txt`` (everything before ``<|endoftext|>``), one
    "base64(token bytes) rank" line each: the same bytes as whisper's tiktoken file."""
    vocab = vocabulary.read_text(encoding="utf-8").split("\n")
    try:
        n_regular = vocab.index("<|endoftext|>")
    except ValueError:
        raise _error(f"{vocabulary} has no <|endoftext|> token") from None
    to_byte = {c: b for b, c in _bytes_to_unicode().items()}
    lines = []
    for rank, token in enumerate(vocab[:n_regular]):
        try:
            raw = bytes(to_byte[c] for c in token)
        except KeyError:
            raise _error(f"{vocabulary}: token {rank} ({token!r}) is not byte-level BPE") from None
        lines.append(f"{base64.b64encode(raw).decode('ascii')} {rank}\n")
    out.write_text("".join(lines), encoding="ascii", newline="\n")
    return len(lines)


class Tokens:
    """Whisper's special token ids and its non-speech tokens, from the CT2 folder's
    ``tokenizer.json`` (faster-whisper's tokenizer, no torch)."""

    def __init__(self, ct2_dir: Path, multilingual: bool) -> None:
        import tokenizers
        from faster_whisper.tokenizer import Tokenizer

        path = ct2_dir / "tokenizer.json"
        if not path.is_file():
            raise _error(f"{path} does not exist")
        hf = tokenizers.Tokenizer.from_file(str(path))
        # sherpa-onnx replaces the language and task of a multilingual sot sequence itself
        self.tok = Tokenizer(
            hf,
            multilingual,
            task="transcribe" if multilingual else None,
            language="en" if multilingual else None,
        )
        self.multilingual = multilingual
        translate = self.tok.translate
        # the language tokens are the specials between <|startoftranscript|> and <|translate|>
        self.languages: list[tuple[int, str]] = []
        for i in range(self.tok.sot + 1, translate):
            token = hf.id_to_token(i) or ""
            if not (token.startswith("<|") and token.endswith("|>")):
                raise _error(f"{path}: token {i} ({token!r}) is no language token")
            code = token[2:-2]
            self.languages.append((i, _LANGUAGE_CODES.get(code, code)))

    def prompt(self) -> list[int]:
        """What sherpa-onnx feeds first: the sot sequence, then no_timestamps."""
        return [*self.tok.sot_sequence, self.tok.no_timestamps]


def encoder_metadata(dims: dict[str, int], tokens: Tokens, name: str) -> dict[str, Any]:
    tok = tokens.tok
    return {
        "model_type": f"whisper-{name}",
        "version": "1",
        "maintainer": "stella (converted from CTranslate2)",
        **{key: dims[key] for key in sorted(dims)},
        "sot_sequence": ",".join(str(t) for t in tok.sot_sequence),
        "all_language_tokens": ",".join(str(t) for t, _ in tokens.languages),
        "all_language_codes": ",".join(c for _, c in tokens.languages),
        "sot": tok.sot,
        "sot_index": tok.sot_sequence.index(tok.sot),
        "eot": tok.eot,
        "blank_id": tok.encode(" ")[0],
        "is_multilingual": int(tokens.multilingual),
        "no_speech": tok.no_speech,
        "non_speech_tokens": ",".join(str(t) for t in tok.non_speech_tokens),
        "transcribe": tok.transcribe,
        "translate": tok.translate,
        "sot_prev": tok.sot_prev,
        "sot_lm": tok.sot_lm,
        "no_timestamps": tok.no_timestamps,
    }


def model_name(dims: dict[str, int], multilingual: bool) -> str:
    base = _SIZE_NAMES.get((dims["n_audio_layer"], dims["n_audio_state"]))
    if base is None:
        raise _error(
            f"unknown Whisper size ({dims['n_audio_layer']} layers, width "
            f"{dims['n_audio_state']}); pass a name"
        )
    return base if multilingual else f"{base}.en"


# --------------------------------------------------------------------------------------------
# Verification, quantisation
# --------------------------------------------------------------------------------------------


def probe_mel(n_mels: int, frames: int) -> np.ndarray:
    """A fixed, speech-like log-mel input (1, n_mels, frames): 8 s of gliding harmonic tones in
    noise, then silence, through faster-whisper's (numpy) Whisper front end."""
    from faster_whisper.feature_extractor import FeatureExtractor

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
    mel = FeatureExtractor(feature_size=n_mels)(padded, padding=0)
    return np.ascontiguousarray(mel[None, :, :frames].astype(np.float32))


def ort_session(model: onnx.ModelProto | Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def onnx_greedy(
    encoder: Any,
    decoder: Any,
    mel: np.ndarray,
    prompt: list[int],
    suppress: int,
    steps: int,
    dims: dict[str, int],
) -> tuple[list[int], np.ndarray]:
    """``steps`` greedy tokens after ``prompt``, one decoder step at a time, never the token
    ``suppress`` (eot: the check wants a long sequence); and the logits of every step."""
    cross_k, cross_v = encoder.run(None, {"mel": mel})
    shape = (dims["n_text_layer"], 1, dims["n_text_ctx"], dims["n_text_state"])
    k = np.zeros(shape, np.float32)
    v = np.zeros(shape, np.float32)
    feed = np.array([prompt], dtype=np.int64)
    offset = 0
    out: list[int] = []
    seen = []
    for _ in range(steps):
        logits, k, v = decoder.run(
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
        last = logits[0, -1].copy()
        seen.append(last.copy())
        last[suppress] = -np.inf
        out.append(int(np.argmax(last)))
        feed = np.array([[out[-1]]], dtype=np.int64)
    return out, np.stack(seen)


def teacher_forced(
    encoder: Any, decoder: Any, mel: np.ndarray, tokens: list[int], dims: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The logits of every position of ``tokens`` fed at once, and the encoder's cross k."""
    cross_k, cross_v = encoder.run(None, {"mel": mel})
    shape = (dims["n_text_layer"], 1, dims["n_text_ctx"], dims["n_text_state"])
    logits = decoder.run(
        ["logits"],
        {
            "tokens": np.array([tokens], dtype=np.int64),
            "in_n_layer_self_k_cache": np.zeros(shape, np.float32),
            "in_n_layer_self_v_cache": np.zeros(shape, np.float32),
            "n_layer_cross_k": cross_k,
            "n_layer_cross_v": cross_v,
            "offset": np.array([0], dtype=np.int64),
        },
    )[0]
    return logits[0], cross_k


def ct2_reference(
    ct2_dir: Path, mel: np.ndarray, prompt: list[int], suppress: int, steps: int
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """CTranslate2's own float32 greedy decode of the same input (only ``suppress`` is
    suppressed): its tokens, the logits of every step, and its encoder's output."""
    import ctranslate2

    model = ctranslate2.models.Whisper(
        str(ct2_dir), device="cpu", compute_type="float32", intra_threads=2
    )
    features = ctranslate2.StorageView.from_array(mel)
    result = model.generate(
        features,
        [prompt],
        beam_size=1,
        max_length=steps,
        suppress_blank=False,
        suppress_tokens=[suppress],
        return_logits_vocab=True,
    )[0]
    logits = np.stack([np.array(step, dtype=np.float32) for step in result.logits[0]])
    encoded = np.array(model.encode(features, to_cpu=True), dtype=np.float32)
    return [int(t) for t in result.sequences_ids[0]], logits, encoded


def _rel_rms(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float(np.linalg.norm(got - want) / (np.linalg.norm(want) + 1e-12))


def verify(
    ct2_dir: Path,
    paths: dict[str, Path],
    tokens: Tokens,
    cross_keys: list[np.ndarray],
    dims: dict[str, int],
    log: Log,
) -> None:
    """The float32 files greedy-decode CTranslate2's own tokens with its logits, give its
    encoder's cross k and take a shorter input; the int8 files stay within the quantisation
    error of the float32 ones. ``cross_keys`` are the decoder's cross-attention key weights."""
    mel = probe_mel(dims["n_mels"], 2 * dims["n_audio_ctx"])
    prompt = tokens.prompt()
    eot = tokens.tok.eot
    want, want_logits, encoded = ct2_reference(ct2_dir, mel, prompt, eot, CHECK_STEPS)
    encoder, decoder = ort_session(paths["encoder"]), ort_session(paths["decoder"])
    got, got_logits = onnx_greedy(encoder, decoder, mel, prompt, eot, len(want), dims)
    if got != want:
        raise _error(f"greedy tokens differ: onnx {got} vs CTranslate2 {want}")
    cross_k = encoder.run(["n_layer_cross_k"], {"mel": mel})[0]
    want_k = np.stack([encoded @ w.T for w in cross_keys])
    # CTranslate2 reports the suppressed token's logit as the lowest float32
    kept = want_logits > np.finfo(np.float32).min / 2
    if got_logits.shape != want_logits.shape or kept.mean() < 0.99:
        raise _error(
            f"CTranslate2 gave logits of shape {want_logits.shape}, onnx {got_logits.shape}"
        )
    l_err = _rel_rms(got_logits[kept], want_logits[kept])
    k_err = _rel_rms(cross_k, want_k)
    log(
        f"check float32: the {len(got)} greedy tokens equal CTranslate2's; relative RMS error "
        f"of logits {l_err:.1e}, of cross k {k_err:.1e}"
    )
    if not max(l_err, k_err) <= FLOAT32_LIMIT:
        raise _error(
            f"the float32 files compute something else than CTranslate2 (logits {l_err:.3g}, "
            f"cross k {k_err:.3g}, limit {FLOAT32_LIMIT})"
        )
    # the time axis is variable: 1000 frames in, 500 positions of cross k and v out
    short = encoder.run(None, {"mel": np.ascontiguousarray(mel[:, :, :1000])})
    expected = (dims["n_text_layer"], 1, 500, dims["n_text_state"])
    if any(a.shape != expected or not np.isfinite(a).all() for a in short):
        raise _error(f"a 1000-frame input gives {[a.shape for a in short]}, not {expected}")
    forced = [*prompt, *got]
    logits, cross_k = teacher_forced(encoder, decoder, mel, forced, dims)
    encoder8, decoder8 = ort_session(paths["encoder.int8"]), ort_session(paths["decoder.int8"])
    logits8, cross_k8 = teacher_forced(encoder8, decoder8, mel, forced, dims)
    l_err, k_err = _rel_rms(logits8, logits), _rel_rms(cross_k8, cross_k)
    log(f"check int8: relative RMS error of logits {l_err:.1e}, of cross k {k_err:.1e}")
    if not max(l_err, k_err) <= INT8_LIMIT:
        raise _error(
            f"the int8 files are too far from the float32 ones (logits {l_err:.3g}, "
            f"cross k {k_err:.3g}, limit {INT8_LIMIT})"
        )


def quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # it logs a hint about pre-processing on the root logger, which the CLI would show
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            model_input=str(src),
            model_output=str(dst),
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(model: onnx.ModelProto, path: Path, meta: dict[str, Any] | None = None) -> None:
    for key, value in (meta or {}).items():
        prop = model.metadata_props.add()
        prop.key = key
        prop.value = str(value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def convert(ct2_dir: Path, out_dir: Path, log: Log, name: str | None = None) -> Path:
    """Write the sherpa-onnx Whisper files converted from ``ct2_dir`` and their
    ``manifest.json`` into ``out_dir``; returns the manifest's path."""
    import onnxruntime

    model_bin = ct2_dir / "model.bin"
    if not model_bin.is_file():
        raise _error(f"{model_bin} does not exist")
    t_all = time.monotonic()
    source_sha = sha256_file(model_bin)
    ct2 = read_ct2_model(model_bin)
    if ct2.spec != "WhisperSpec":
        raise _error(f"{model_bin}: spec is {ct2.spec!r}, expected 'WhisperSpec'")
    log(
        f"read {model_bin} (binary v{ct2.binary_version}, {ct2.spec} rev {ct2.revision}, "
        f"{len(ct2.variables)} variables, {len(ct2.aliases)} aliases)"
    )
    dims = model_dimensions(ct2)
    weights = whisper_weights(ct2, dims, log)
    del ct2
    multilingual = dims["n_vocab"] >= 51865
    name = name or model_name(dims, multilingual)
    tokens = Tokens(ct2_dir, multilingual)
    log(f"model {name}: {dims}")

    out_dir.mkdir(parents=True, exist_ok=True)
    tokens_path = out_dir / f"{name}-tokens.txt"
    n_tokens = write_tokens(ct2_dir / "vocabulary.txt", tokens_path)
    log(f"wrote {tokens_path.name} ({n_tokens} tokens)")

    t0 = time.monotonic()
    paths = {
        "encoder": out_dir / f"{name}-encoder.onnx",
        "decoder": out_dir / f"{name}-decoder.onnx",
    }
    _save(build_encoder(weights, dims), paths["encoder"], encoder_metadata(dims, tokens, name))
    _save(build_decoder(weights, dims), paths["decoder"])
    cross_keys = [
        weights[f"decoder.blocks.{i}.cross_attn.key.weight"] for i in range(dims["n_text_layer"])
    ]
    del weights
    log(f"wrote the encoder and decoder graphs in {time.monotonic() - t0:.1f} s")
    for part in ("encoder", "decoder"):
        dst = out_dir / f"{name}-{part}.int8.onnx"
        t0 = time.monotonic()
        quantize(paths[part], dst)
        paths[f"{part}.int8"] = dst
        log(f"quantised {dst.name} in {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    verify(ct2_dir, paths, tokens, cross_keys, dims, log)
    log(f"checked in {time.monotonic() - t0:.1f} s")

    files = [*paths.values(), tokens_path]
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "layout": "sherpa-onnx-whisper",
        "source": {
            "file": "model.bin",
            "sha256": source_sha,
            "size": model_bin.stat().st_size,
        },
        "dims": dims,
        # a changed converter means a new conversion (converter.py compares this)
        "script_sha256": sha256_file(Path(__file__).resolve()),
        "tools": {
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
