"""Which models each service's image prepares (`stella models prepare --service`)."""

from __future__ import annotations

import pytest

from stella_services.models import catalog
from stella_services.models.catalog import ModelPreparationError
from stella_services.models.prepare import STEPS


def test_each_service_prepares_only_what_it_loads() -> None:
    assert catalog.models_of(["stt"]) == [
        "silero-vad",
        "whisper-tiny.en-ct2",
        "whisper-tiny.en-sherpa",
    ]
    assert catalog.models_of(["tts"]) == [
        "kokoro-v1.0-int8",
        "kokoro-voices",
        "piper-en_US-joe-medium",
    ]
    assert catalog.models_of(["llm"]) == [w.spec.name for w in catalog.LLMS.values()]
    assert catalog.models_of(["tts", "stt", "llm"]) == [m.name for m in catalog.ALL]


def test_every_listed_model_has_a_preparation_step() -> None:
    for specs in catalog.SERVICE_MODELS.values():
        assert {s.name for s in specs} <= set(STEPS)


def test_a_service_without_models_is_named_in_the_error() -> None:
    with pytest.raises(ModelPreparationError, match="no models are known for recorder; "):
        catalog.models_of(["recorder", "stt"])


def test_the_cli_lists_the_models_in_preparation_order() -> None:
    from stella_services.cli.models import MODEL_NAMES

    assert list(STEPS) == MODEL_NAMES
