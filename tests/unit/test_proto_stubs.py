"""The committed gRPC stubs are exactly what `make proto` generates."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_regeneration(tmp_path: Path) -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.fail("grpcio-tools is a dev dependency: run `uv sync --all-packages`")
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.generate(tmp_path)
    assert generated, "no stubs generated"
    committed = ROOT / "contracts" / "src" / "stella_contracts" / "proto"
    for path in generated:
        assert path.read_text() == (committed / path.name).read_text(), f"{path.name} is stale"
