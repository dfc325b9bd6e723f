"""Clips as phones and cameras write them (a cover picture, several streams, no video, duplicated timestamps ...):
read as ffmpeg shows them, or refused in one line; never a wrong clip in silence.

Each clip is made at test time with the ffmpeg of imageio-ffmpeg (skipped, saying so, where it is missing) from a
few 64x48 frames. Nothing here needs ../shared.
"""

import struct
import subprocess
import warnings
from fractions import Fraction

import numpy as np
import pytest

from saicm.errors import SaicmError
from saicm.video import io


def _ffmpeg() -> str:
    """The ffmpeg saicm reads clips with (saicm.eval.ffmpeg.ffmpeg_exe: imageio-ffmpeg's, else one on PATH)."""
    from saicm.eval.ffmpeg import ffmpeg_exe

    try:
        return ffmpeg_exe()
    except SaicmError as e:
        pytest.skip(f"makes its clips with the ffmpeg saicm uses, missing here ({e})")


def _ffmpeg_run(*args) -> None:
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def _frames(n: int = 4, h: int = 48, w: int = 64) -> np.ndarray:
    """n frames of a gradient with a bar that moves: (n, h, w, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.stack([np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], -1)] * n).astype(np.uint8)
    for t in range(n):
        out[t, 8:20, 4 + 6 * t:14 + 6 * t] = [230, 40, 40]
    return out


@pytest.fixture
def clip(tmp_path):
    """A lossless 4-frame 64x48 .mp4 (libx264rgb -qp 0) and its frames."""
    frames = _frames()
    path = tmp_path / "clip.mp4"
    _ffmpeg()
    io.write_video(enumerate(frames[:, None]), path, 64, 48, Fraction(25))
    return path, frames


def _rewrite_moov(src, dst, edit) -> None:
    """``src`` (an .mp4 whose moov follows its mdat, so no chunk offset moves) with its moov's boxes ``edit``ed (a list
    of (kind, bytes) in, one out): the boxes of a moov come in any order."""
    data = src.read_bytes()

    def boxes(start, end):
        while start < end:
            size, kind = struct.unpack(">I4s", data[start:start + 8])
            yield kind, data[start:start + size]
            start += size

    top = list(boxes(0, len(data)))
    assert [k for k, _ in top][-2:] == [b"mdat", b"moov"]
    kids = b"".join(b for _, b in edit(list(boxes(len(data) - len(top[-1][1]) + 8, len(data)))))
    dst.write_bytes(b"".join(b for _, b in top[:-1]) + struct.pack(">I4s", 8 + len(kids), b"moov") + kids)


def _udta_first(src, dst) -> None:
    """``src`` with its tags (udta: cover art) before its tracks: ffmpeg then lists the cover art as stream 0."""
    _rewrite_moov(src, dst, lambda kids: sorted(kids, key=lambda kb: {b"mvhd": 0, b"udta": 1}.get(kb[0], 2)))


def test_cover_art_listed_before_the_video_is_not_read_as_the_clip(clip, tmp_path):
    """An .mp4 with cover art whose tags come before its track (ffmpeg lists the picture as stream 0): the picture
    was read as a 1-frame 32x32 clip at 90000 fps, coded and evaluated as the clip, exit 0 and no word. The video
    stream is read now."""
    from PIL import Image

    path, frames = clip
    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "cover.png")
    tagged = tmp_path / "tagged.mp4"
    _ffmpeg_run("-i", tmp_path / "cover.png", "-i", path, "-map", "0", "-map", "1", "-c", "copy",
                "-disposition:v:0", "attached_pic", tagged)
    _udta_first(tagged, tmp_path / "cover-first.mp4")
    text = subprocess.run([_ffmpeg(), "-hide_banner", "-i", tmp_path / "cover-first.mp4"], capture_output=True,
                          text=True).stderr
    assert "Stream #0:0" in next(ln for ln in text.splitlines() if "(attached pic)" in ln)  # (the case at hand)
    info = io.probe(tmp_path / "cover-first.mp4")
    assert (info.width, info.height, info.fps) == (64, 48, 25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a cover picture is no second video: nothing to say)
        c = io.read_clip(tmp_path / "cover-first.mp4")
    assert np.array_equal(c.frames, frames)
    assert io.iter_clip(tmp_path / "cover-first.mp4")[0].stream == "0:1"  # (the clip's info names the stream read)


def test_of_two_video_streams_the_default_one_is_read_and_said(clip, tmp_path):
    """A file with two video streams (a camera's preview track first, the main one flagged default): the first was
    read, whatever the flags, and nothing said. The default one is read now, with a warning naming it."""
    path, frames = clip
    _ffmpeg_run("-f", "lavfi", "-i", "smptebars=size=32x24:rate=10:duration=0.3", "-i", path, "-map", "0", "-map", "1",
                "-c:v:0", "ffv1", "-c:v:1", "copy", "-disposition:v:0", "0", "-disposition:v:1", "default",
                tmp_path / "two.mkv")
    with pytest.warns(UserWarning, match=r"2 video streams; stream #0:1 \(the default one, 64x48\) is read"):
        c = io.read_clip(tmp_path / "two.mkv")
    assert np.array_equal(c.frames, frames)


def test_a_stream_listed_under_two_programs_is_one_video_stream(clip, tmp_path):
    """A transport stream whose one video stream belongs to two programs (a broadcast recording): ffmpeg lists the
    stream under each, and it is one stream, read without a word of "2 video streams"."""
    path, frames = clip
    _ffmpeg_run("-i", path, "-map", "0", "-c:v", "mpeg2video", "-program", "title=A:st=0", "-program", "title=B:st=0",
                tmp_path / "two-programs.ts")
    text = subprocess.run([_ffmpeg(), "-hide_banner", "-i", tmp_path / "two-programs.ts"], capture_output=True,
                          text=True).stderr
    assert text.count("Stream #0:0") == 2  # (the case at hand)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = io.read_clip(tmp_path / "two-programs.ts")
    assert c.n == 4


def test_a_file_without_a_video_stream_is_refused_saying_what_it_holds(tmp_path):
    """A voice memo, a song with its cover art, a subtitles file: "not a video ffmpeg can read (handler_name    :
    SoundHandler)", ffmpeg's last line of tags. What the file holds instead is said now."""
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "cover.png")
    (tmp_path / "s.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    _ffmpeg_run("-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac", tmp_path / "memo.mp4")
    _ffmpeg_run("-i", tmp_path / "memo.mp4", "-i", tmp_path / "cover.png", "-map", "0", "-map", "1", "-c", "copy",
                "-disposition:v:0", "attached_pic", tmp_path / "song.m4a")
    _ffmpeg_run("-i", tmp_path / "s.srt", "-c:s", "srt", tmp_path / "subtitles.mkv")
    _ffmpeg_run("-i", tmp_path / "memo.mp4", "-map", "0", "-map", "0", "-c", "copy", tmp_path / "two-languages.mp4")
    _rewrite_moov(tmp_path / "memo.mp4", tmp_path / "empty.mp4", lambda kids: [k for k in kids if k[0] != b"trak"])
    for name, said in (("memo.mp4", "no video stream: audio only"),
                       ("two-languages.mp4", "no video stream: audio only"),  # (each kind once)
                       ("song.m4a", "no video stream: audio and a cover picture only"),
                       ("subtitles.mkv", "no video stream: subtitles only"),
                       ("empty.mp4", "no streams in it: no video to read")):
        for read in (io.probe, io.read_clip):
            with pytest.raises(SaicmError) as e:
                read(tmp_path / name)
            assert (e.value.path, e.value.message) == (str(tmp_path / name), said)


def test_duplicated_timestamps_give_every_frame_without_a_false_alarm(clip, tmp_path):
    """Frames that share a timestamp (a screen recorder's, a phone's at a frame-rate switch) are all read, and
    nothing is said: the pipe's muxer took them for "non monotonically increasing dts", and the clip was reported
    damaged ("ffmpeg reported errors while decoding ...: some may be concealed or missing") with every frame there.
    A clip whose timestamps jump (variable frame rate) and one that starts at 3 s read their frames once each too."""
    path, frames = clip
    for name, pts in (("same.mkv", "floor(N/2)/25/TB"), ("gaps.mkv", "if(lt(N,2),N,N+5)/25/TB"),
                      ("late.mkv", "(N+75)/25/TB")):
        _ffmpeg_run("-i", path, "-vf", f"setpts='{pts}'", "-fps_mode", "passthrough", "-c:v", "ffv1", tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            c = io.read_clip(tmp_path / name)
        assert np.array_equal(c.frames, frames), name


def test_non_square_pixels_and_interlaced_frames_are_read_as_stored_and_said(clip, tmp_path):
    """A camera's anamorphic clip (SAR 2:1: 64x48 stored, shown 128x48) and an interlaced one were read as stored
    (as ffmpeg gives them), squashed or combed, and nothing said. They still are (docs/video.md), with a warning
    saying so and what to do; a size asked for (the resampling it names) silences the first."""
    path, frames = clip
    _ffmpeg_run("-i", path, "-vf", "setsar=2/1", "-c:v", "ffv1", tmp_path / "wide.mkv")
    _ffmpeg_run("-display_rotation", "90", "-i", tmp_path / "wide.mkv", "-c", "copy", tmp_path / "wide-turned.mkv")
    for name, shown in (("wide.mkv", "128x48"), ("wide-turned.mkv", "48x128")):
        with pytest.warns(UserWarning, match=rf"non-square pixels \(SAR 2:1\): its frames are read as stored, "
                                             rf"{'64x48' if shown == '128x48' else '48x64'}, and show as {shown}; "
                                             rf"give the size {shown}"):
            c = io.read_clip(tmp_path / name)
        assert c.n == 4
    assert np.array_equal(c.frames, np.rot90(frames, -1, axes=(1, 2))) or np.array_equal(
        c.frames, np.rot90(frames, 1, axes=(1, 2)))
    # (ffmpeg's scale to 63x47 keeps the 4:3 shape: SAR 188:189, 63 pixels that show as 63)
    _ffmpeg_run("-i", path, "-vf", "setsar=1,scale=63:47", "-c:v", "libx264rgb", "-qp", "0", tmp_path / "almost.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert io.read_clip(tmp_path / "wide.mkv", size=(128, 48)).width == 128
        assert io.read_clip(tmp_path / "almost.mp4").width == 63
    _ffmpeg_run("-i", path, "-vf", "setfield=tff", "-c:v", "ffv1", tmp_path / "fields.mkv")
    with pytest.warns(UserWarning, match=r"interlaced \(top (coded )?first( \(swapped\))?\): each frame is read as "
                                         r"coded"):
        c = io.read_clip(tmp_path / "fields.mkv")
    assert np.array_equal(c.frames, frames)


def test_a_recording_cut_off_before_its_index_is_refused_saying_so(clip, tmp_path):
    """A phone's recording cut off (battery, crash) leaves an .mp4 without its index (moov, written last): "not a
    video ffmpeg can read (Error opening input files: Invalid data found when processing input)", the clip's
    trouble unsaid. It is said now."""
    path, frames = clip
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:data.index(b"moov") - 4])
    with pytest.raises(SaicmError) as e:
        io.read_clip(tmp_path / "cut.mp4")
    assert e.value.message.startswith("an unfinished recording: its index (moov) is missing")
    # (a QuickTime file need not begin with ftyp: one whose first box is its free, wide or mdat box, cut off too)
    first = struct.unpack(">I", data[:4])[0]
    assert data[first + 4:first + 8] in (b"free", b"wide", b"mdat")
    (tmp_path / "cut.mov").write_bytes(data[first:data.index(b"moov") - 4])
    with pytest.raises(SaicmError) as e:
        io.read_clip(tmp_path / "cut.mov")
    assert e.value.message.startswith("an unfinished recording: its index (moov) is missing")
    # its index first (faststart, as streaming writers put it), its data cut before a whole frame: ffmpeg's words
    # were of its output ("Nothing was written into output file, because at least one of its streams received no
    # packets")
    _ffmpeg_run("-i", path, "-c", "copy", "-movflags", "+faststart", tmp_path / "fast.mp4")
    data = (tmp_path / "fast.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    (tmp_path / "early.mp4").write_bytes(data[:data.index(b"mdat") + 12])
    with pytest.raises(SaicmError) as e:
        io.read_clip(tmp_path / "early.mp4")
    assert e.value.message.startswith("no frame of it decodes: its video data ends before the first complete frame")
    (tmp_path / "nothing.mp4").write_bytes(b"")  # (ffmpeg says the same of these: "moov atom not found")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes())
    for name, said in (("nothing.mp4", "an empty file (0 bytes): no video to read"),
                       ("noise.mp4", "not a video ffmpeg can read (")):
        with pytest.raises(SaicmError) as e:
            io.read_clip(tmp_path / name)
        assert e.value.message.startswith(said)
