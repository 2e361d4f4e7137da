import pytest

from stella_contracts import audio
from stella_contracts.audio import AudioFrame, InvalidAudioFrame


def test_frame_constants_match_the_architecture() -> None:
    assert (audio.SAMPLE_RATE, audio.FRAME_MS, audio.FRAME_BYTES) == (16_000, 20, 640)
    assert audio.SAMPLES_PER_FRAME == 320


def test_headers_round_trip() -> None:
    frame = AudioFrame(pcm=b"\x01\x00" * 320, seq=7, ts_us=1_700_000_000_000_000)
    back = AudioFrame.from_message(frame.pcm, frame.headers())
    assert back == frame


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\x00" * 639, {"Stella-Seq": "1", "Stella-Ts": "1"}),
        (b"\x00" * 640, {"Stella-Seq": "x", "Stella-Ts": "1"}),
        (b"\x00" * 640, {"Stella-Ts": "1"}),
        (b"\x00" * 640, {"Stella-Seq": "1", "Stella-Ts": "1", "Stella-Format": "opus"}),
    ],
)
def test_bad_frames_are_refused(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidAudioFrame):
        AudioFrame.from_message(body, headers)


def test_split_frames_keeps_the_remainder() -> None:
    frames, rest = audio.split_frames(b"\x00" * (640 * 3 + 100))
    assert len(frames) == 3 and all(len(f) == 640 for f in frames)
    assert len(rest) == 100


def test_padded_frames_pad_the_last_frame_with_silence() -> None:
    frames = audio.padded_frames(b"\x01" * (640 + 100))
    assert [len(f) for f in frames] == [640, 640]
    assert frames[1] == b"\x01" * 100 + b"\x00" * 540
    assert audio.padded_frames(b"") == []
