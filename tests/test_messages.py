"""What a user reads when a file is given to the wrong command, or an argument names the wrong kind of file: the
file, what it is, and what to do (the error-message audit of 0.26.0). Each message was vague or wrong before:
"wrong magic" of a photo, "not a format Pillow reads" of a .saicm file, "unknown model" of a file that exists,
a JSON decoder's or safetensors' own words."""

import json
from pathlib import Path

import pytest
from PIL import Image

from saicm.cli import main
from saicm.models.catalog import WEIGHTS_DIR  # the imported package's (an installed wheel's, not the checkout's)

from .conftest import natural_image

HERE = Path(__file__).parent
CLIP = HERE / "reference" / "shapes-64x48-8f-tiny.saicmv"
V5 = "mse-hyperprior-n64-v5"


def _error(capsys, argv, code=2) -> str:
    """The one line of error of ``saicm ARGV``, after checking the exit status."""
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("saicm: error: "), err
    return lines[0]


@pytest.fixture
def files(tmp_path):
    """A photo, its .saicm file, a model file, a results file, a clip and a text file."""
    photo = tmp_path / "photo.png"
    Image.fromarray(natural_image(64, 64)).save(photo)
    coded = tmp_path / "photo.saicm"
    assert main(["compress", str(photo), "-o", str(coded), "--model", V5, "--quiet"]) == 0
    model = tmp_path / "model.safetensors"
    model.write_bytes((WEIGHTS_DIR / f"{V5}.safetensors").read_bytes())
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    return {"photo": photo, "coded": coded, "model": model, "clip": CLIP, "text": text}


def test_a_file_given_to_a_decoder_is_named_for_what_it_is(files, capsys, tmp_path):
    """`saicm decompress photo.png` said "not a .saicm file (wrong magic)"."""
    out = tmp_path / "out.png"
    assert _error(capsys, ["decompress", files["photo"], "-o", out]).endswith(
        "photo.png: a PNG image, not a .saicm file: code it with 'saicm compress'")
    assert "photo.png: a PNG image, not a .saicm file" in _error(capsys, ["info", files["photo"]])
    assert _error(capsys, ["decompress", files["model"], "-o", out]).endswith(
        "model.safetensors: a model file (.safetensors), not a .saicm file: give it with --model")
    assert _error(capsys, ["video", "decode", files["photo"], "-o", tmp_path / "frames"]).endswith(
        "photo.png: a PNG image, not a .saicmv file: code it with 'saicm compress'")
    # bytes of no kind saicm knows: as before
    assert _error(capsys, ["info", files["text"]]).endswith("notes.txt: not a .saicm file (wrong magic)")


#: how clips' files begin (their first bytes as ffmpeg writes them; the rest does not matter to the message)
CLIP_HEADS = {
    "clip.mp4": ("an MP4 file", bytes.fromhex("000000206674797069736f6d0000020069736f6d69736f32617663316d703431")),
    "clip.mov": ("a QuickTime (.mov) file", bytes.fromhex("0000001466747970717420200000020071742020")),
    "clip.mkv": ("a Matroska or WebM file", bytes.fromhex("1a45dfa3a34286810142f7810142f2810442f381")),
    "clip.avi": ("an AVI file", b"RIFF\x62\x14\x7c\x00AVI LIST" + bytes(8)),
    "clip.y4m": ("a Y4M video", b"YUV4MPEG2 W352 H288 F25:1 Ip A0:0 C420jpeg\n"),
    "clip.264": ("an H.264 / H.265 stream", bytes.fromhex("00000001674d0028e7202c12c8000000")),
    "clip.265": ("an H.264 / H.265 stream", bytes.fromhex("0000000140010c01ffff016000000300")),
    "clip.ts": ("an MPEG transport stream", bytes.fromhex("47401110 0042f025 0001c100 00ff01ff 0001fc80")),
    "clip.m2ts": ("an MPEG transport stream", bytes.fromhex("0ebf4622 47401110 0042f025 0001c100 00ff01ff")),
    "pat.ts": ("an MPEG transport stream", bytes.fromhex("47400010 0000b00d 0001c100 000001f0")),
}


@pytest.mark.parametrize("name", sorted(CLIP_HEADS))
def test_a_clip_given_where_an_image_or_a_coded_file_was_wanted_is_named_and_sent_to_saicm_video(
        name, capsys, tmp_path):
    """`saicm compress clip.mp4` said "cannot read image (not a format Pillow reads …)", and `saicm info clip.mp4`,
    `saicm decompress`, `saicm video decode` "not a .saicm(v) file (wrong magic)" (the phone-clips audit's
    left-alone, 0.37.0)."""
    what, head = CLIP_HEADS[name]
    clip = tmp_path / name
    clip.write_bytes(head + bytes(64))
    todo = "a clip is coded with 'saicm video encode'"
    assert _error(capsys, ["compress", clip, "-o", tmp_path / "x.saicm"], 1).endswith(
        f"{name}: {what}, not an image: {todo}")
    assert _error(capsys, ["decompress", clip, "-o", tmp_path / "x.png"]).endswith(
        f"{name}: {what}, not a .saicm file: {todo}")
    assert _error(capsys, ["info", clip]).endswith(f"{name}: {what}, not a .saicm file: {todo}")
    assert _error(capsys, ["video", "decode", clip, "-o", tmp_path / "frames"]).endswith(
        f"{name}: {what}, not a .saicmv file: {todo}")
    assert not (tmp_path / "x.saicm").exists() and not (tmp_path / "x.png").exists()


def test_a_heif_photo_is_named_with_what_to_do_and_bytes_like_a_start_code_are_not_a_stream(capsys, tmp_path):
    """An iPhone's .heic (which Pillow reads only with a plugin) said "cannot read image (not a format Pillow
    reads …)"; AVIF stays Pillow's to read, and bytes that begin like a start code without a NAL header are no
    stream."""
    heic = tmp_path / "IMG_0001.heic"
    heic.write_bytes(bytes.fromhex("000000186674797068656963000000006d69663168656963") + bytes(64))
    assert _error(capsys, ["compress", heic, "-o", tmp_path / "x.saicm"], 1).endswith(
        "IMG_0001.heic: a HEIF (HEIC) image: saicm reads no HEIF without a Pillow plugin: convert it to PNG or JPEG "
        "first")
    from saicm.codec.container import file_kind

    assert file_kind(bytes.fromhex("0000001c667479706d69663100000000") + b"mif1avifmiaf")[0] == "an AVIF image"
    assert file_kind(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom")[0] == "a Canon raw (CR3) image"
    assert file_kind(b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A isommp42") is None  # (audio: no clip)
    assert file_kind(b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x02\x00isom")[0] == "an MP4 file"
    assert file_kind(bytes.fromhex("0000000180") + bytes(32)) is None  # (the forbidden bit set: no NAL header)
    assert file_kind(bytes.fromhex("00000001") + b"\x21" + bytes(32)) is None  # (a slice of no stream start)
    # text that starts with 'G', and a TS packet of a video PID (no table): no transport stream by its first bytes
    assert file_kind(b"GAIN,0.5\nGAMMA,2.2\n" + bytes(32)) is None
    assert file_kind(b"G@\x00\x10 notes" + bytes(32)) is None
    assert file_kind(bytes.fromhex("47410030 07500000 7b0c7e00") + bytes(32)) is None


@pytest.mark.parametrize("packet, ts", [
    ("47401f10 0042f025", True),  # (the last program-specific PID, 0x1F)
    ("46401110 0042f025", False),  # no sync byte
    ("47c01110 0042f025", False),  # the transport error bit set
    ("47001110 0042f025", False),  # no payload starting
    ("47402010 0042f025", False),  # PID 0x20: no table of the stream's layout
    ("47411110 0042f025", False),  # PID 0x111
    ("47401130 0042f025", False),  # an adaptation field before the payload
    ("47401110 0142f025", False),  # a pointer field other than 0
    ("47401110 00fff025", False),  # stuffing, not a table
    ("47401110 00427025", False),  # no section syntax bit
    ("47401110 0042", False)])  # cut short
def test_a_transport_stream_is_told_by_each_field_of_its_first_packet(packet, ts):
    """Each test of the first packet's fields counts (mutation audit of the TS recognition: the sync byte, the
    error bit, the PID's bound, the pointer field, the table id and the syntax bit could go with no test failing)."""
    from saicm.codec.container import file_kind

    head = bytes.fromhex(packet)
    assert (file_kind(head + (bytes(32) if len(head) == 8 else b"")) is not None) == ts
    assert (file_kind(bytes.fromhex("0ebf4622") + head + bytes(32)) is not None) == (ts and len(head) == 8)  # (.m2ts)


def test_a_coded_file_given_to_compress_is_named_for_what_it_is(files, capsys, tmp_path):
    """`saicm compress photo.saicm` said "cannot read image (not a format Pillow reads)"."""
    out = tmp_path / "x.saicm"
    assert _error(capsys, ["compress", files["coded"], "-o", out], 1).endswith(
        "photo.saicm: a .saicm file, not an image: decode it with 'saicm decompress'")
    assert _error(capsys, ["compress", files["clip"], "-o", out], 1).endswith(
        "a .saicmv clip, not an image: decode it with 'saicm video decode'")
    assert _error(capsys, ["compress", files["model"], "-o", out], 1).endswith(
        "model.safetensors: a model file (.safetensors), not an image: give it with --model")
    # what Pillow does not read and saicm does not know: Pillow's word, as before
    assert _error(capsys, ["compress", files["text"], "-o", out], 1).endswith(
        "notes.txt: cannot read image (not a format Pillow reads, or one saicm opens only under its own suffix, "
        "such as .psd)")
    assert not out.exists()


def test_a_results_file_that_is_missing_or_not_json_is_said_in_the_users_terms(files, capsys, tmp_path):
    """plot/bdrate/report said "cannot read results ([Errno 2] No such file or directory: 'x.json')", or a JSON
    decoder's "'utf-8' codec can't decode byte 0x89 in position 0" of a photo."""
    png = tmp_path / "p.png"
    missing = tmp_path / "nope.json"
    assert _error(capsys, ["plot", missing, "-o", png]).endswith("nope.json: no such file")
    line = _error(capsys, ["plot", files["photo"], "-o", png])
    assert line.endswith("photo.png: a PNG image, not a results file (the JSON saicm eval writes)")
    assert "codec" not in line
    assert _error(capsys, ["bdrate", files["coded"], files["coded"]]).endswith(
        "photo.saicm: a .saicm file, not a results file (the JSON saicm eval writes)")
    line = _error(capsys, ["report", files["text"], "-o", tmp_path / "r.html"])
    assert line.endswith("notes.txt: not a results file (not JSON; saicm eval writes them)")
    assert "Expecting value" not in line
    assert not png.exists()


def test_a_model_option_naming_a_file_of_another_kind_says_so(files, capsys, tmp_path, monkeypatch):
    """`--model photo.png` (a file that exists) said "unknown model 'photo.png' (shipped: …)"; a damaged
    .safetensors file said safetensors' "Error while deserializing header: header too small"."""
    out = tmp_path / "x.saicm"
    assert _error(capsys, ["compress", files["photo"], "--model", files["photo"], "-o", out]).endswith(
        "photo.png: a PNG image, not a model file (.safetensors)")
    monkeypatch.chdir(tmp_path)  # (a bare name that is a file here, not a model's name)
    assert _error(capsys, ["compress", files["photo"], "--model", "notes.txt", "-o", out]).endswith(
        "saicm: error: notes.txt: not a model file: --model takes a model's name or its .safetensors file")
    assert _error(capsys, ["compress", files["photo"], "--model", "photo.png", "-o", out]).endswith(
        "saicm: error: photo.png: a PNG image, not a model file (.safetensors)")
    assert _error(capsys, ["compress", files["photo"], "--model", files["text"], "-o", out]).endswith(
        "notes.txt: not a saicm model file (not in the safetensors format, or damaged)")
    bad = tmp_path / "bad.safetensors"
    bad.write_text("hello\n")
    line = _error(capsys, ["compress", files["photo"], "--model", bad, "-o", out])
    assert line.endswith("bad.safetensors: not a saicm model file (not in the safetensors format, or damaged)")
    assert "deserializing" not in _error(capsys, ["info", bad])
    # a model file without its suffix is still read as one
    plain = tmp_path / "mymodel"
    plain.write_bytes(files["model"].read_bytes())
    assert main(["compress", str(files["photo"]), "--model", str(plain), "-o", str(out), "--quiet"]) == 0


def test_an_eval_dataset_that_is_missing_or_a_file_is_said_so(files, capsys, tmp_path):
    """`saicm eval --dataset photo.png` said "photo.png: no images found" of an image, and of a folder that does
    not exist the same."""
    out = tmp_path / "r.json"
    base = ["eval", "--codec", "jpeg", "--task", "psnr", "-o", out]
    assert _error(capsys, base + ["--dataset", tmp_path / "nope"]).endswith("nope: no such folder")
    assert _error(capsys, base + ["--dataset", files["photo"]]).endswith(
        "photo.png: is a file, not a folder of images (nor a video clip: docs/video.md)")
    (tmp_path / "empty").mkdir()
    assert _error(capsys, base + ["--dataset", tmp_path / "empty"]).endswith("empty: no images found")
    assert not out.exists()


def test_an_image_over_the_pixel_limit_is_named_once(files, capsys, tmp_path):
    """It said "the image is a 64x64 image"."""
    line = _error(capsys, ["compress", files["photo"], "--max-pixels", "100", "-o", tmp_path / "x.saicm"], 1)
    assert "photo.png: the image is 64x64 (4,096 pixels), more than the limit of 100" in line
    line = _error(capsys, ["decompress", files["coded"], "--max-pixels", "100", "-o", tmp_path / "x.png"], 1)
    assert "photo.saicm: the file holds a 64x64 image (4,096 pixels), more than the limit of 100" in line


def test_export_of_a_model_file_says_it_is_one_already(files, capsys, tmp_path):
    """`saicm export model.safetensors` said "cannot read the training checkpoint: not a PyTorch checkpoint"."""
    pytest.importorskip("torch")
    assert _error(capsys, ["export", files["model"], "-o", tmp_path / "m.safetensors"]).endswith(
        "model.safetensors: a model file (.safetensors), not a training checkpoint: a training checkpoint is the "
        "checkpoint.pt a saicm train run writes (a model file is one already: --model takes it)")  # (export has no
    # --model: "give it with --model" was compress's advice)


def test_decoding_with_another_models_file_says_which_model_the_file_needs(files, capsys, tmp_path):
    """`saicm decompress x.saicm --model object-coco-n64-v5` said "coded with other weights of model
    'mse-hyperprior-n64-v5' than object-coco-n64-v5.safetensors": as if they were two files of one model."""
    line = _error(capsys, ["decompress", files["coded"], "--model", "object-coco-n64-v5", "-o", tmp_path / "x.png"],
                  1)
    assert line.endswith(f"photo.saicm: the file was coded with model '{V5}', not object-coco-n64-v5: drop --model "
                         "(Python: model=) to decode it with its own")
    assert not (tmp_path / "x.png").exists()


def test_a_coded_file_given_as_a_video_says_what_it_is(files, capsys, tmp_path):
    """`saicm video encode x.saicmv` said ffmpeg's "Error opening input files: Invalid data found when processing
    input"."""
    pytest.importorskip("imageio_ffmpeg")
    assert _error(capsys, ["video", "encode", files["clip"], "-o", tmp_path / "x.saicmv"]).endswith(
        "a .saicmv clip, not a video file: decode it with 'saicm video decode'")
    assert _error(capsys, ["video", "frames", files["coded"], "-o", tmp_path / "f"]).endswith(
        "photo.saicm: a .saicm file, not a video file: decode it with 'saicm decompress'")
    assert not (tmp_path / "x.saicmv").exists()


def test_annotations_or_a_task_model_of_another_kind_say_what_the_file_is(files, capsys, tmp_path):
    """`--annotations notes.txt` said the JSON decoder's "Expecting value: line 1 column 1 (char 0)"; `--task-model
    picodet:photo.png` onnxruntime's "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF"."""
    pytest.importorskip("pycocotools")
    from saicm.eval.tasks.base import onnx_session
    from saicm.eval.tasks.coco import load_annotations as load_coco
    from saicm.errors import SaicmError

    with pytest.raises(SaicmError) as e:
        load_coco(files["text"])
    assert str(e.value).endswith("notes.txt: not a COCO annotation file (not JSON)")
    with pytest.raises(SaicmError) as e:
        load_coco(files["photo"])
    assert str(e.value).endswith("photo.png: a PNG image, not a COCO annotation file (JSON)")
    with pytest.raises(SaicmError) as e:
        load_coco(tmp_path / "nope.json")
    assert str(e.value).endswith("nope.json: no such file")
    with pytest.raises(SaicmError) as e:
        onnx_session(files["photo"])
    assert str(e.value).endswith("photo.png: a PNG image, not an ONNX model")


def test_plot_output_is_checked_like_other_outputs(tmp_path, capsys):
    """`plot -o photo.saicm` replaced photo.png without a word (the suffix is replaced by .png and .svg), `-o -`
    wrote "-.png", `-o figures/` wrote figures.png beside the folder."""
    pytest.importorskip("matplotlib")
    from .test_eval_cli import write_result

    res = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"my photo")
    assert _error(capsys, ["plot", res, "-o", tmp_path / "photo.saicm"]).endswith(
        "photo.saicm: plot writes photo.png and photo.svg, not a .saicm file: name the output FILE, FILE.png or "
        "FILE.svg (nothing written)")
    assert photo.read_bytes() == b"my photo"
    assert "not standard output" in _error(capsys, ["plot", res, "-o", "-"])
    (tmp_path / "figs").mkdir()
    assert "is a folder: name the file to write" in _error(capsys, ["plot", res, "-o", f"{tmp_path / 'figs'}/"])
    assert not (tmp_path / "figs.png").exists() and not Path("-.png").exists()
    assert main(["plot", str(res), "-o", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "curves.svg").is_file()


def test_a_file_in_the_way_of_an_output_folder_is_named_as_such(files, capsys, tmp_path):
    """A file where the output's folder would be was "output folder does not exist" (of a file that exists),
    "cannot create output folder (File exists)" (read as if all were well) or "(Not a directory)"."""
    text = files["text"]
    assert _error(capsys, ["compress", files["photo"], "-o", text / "sub" / "x.saicm"], 1).endswith(
        "notes.txt/sub/x.saicm: cannot write output (a file, not a folder, is in the way)")
    assert _error(capsys, ["strip", files["coded"], "-o", text / "m" / "x.saicm"]).endswith(
        "notes.txt: cannot create output folder (a file, not a folder, is in the way)")
    assert _error(capsys, ["eval", "--codec", "jpeg", "--task", "psnr", "--dataset", tmp_path, "--cache", text,
                           "-o", tmp_path / "r.json"]).endswith(
        "notes.txt: cannot create output folder (a file, not a folder, is in the way)")
    pytest.importorskip("matplotlib")
    from .test_eval_cli import write_result

    res = write_result(tmp_path / "a.json", "anchor", [(0.2, 30), (0.4, 33), (0.8, 36)])
    assert _error(capsys, ["plot", res, "-o", text / "p"]).endswith(  # (as eval -o: plot makes a missing folder)
        "notes.txt: cannot create output folder (a file, not a folder, is in the way)")


def test_a_model_name_typed_wrong_gets_the_close_names_and_a_later_version_a_newer_release(tmp_path, capsys):
    """`--model mse-hyperprior` listed all fourteen shipped names on one ~600-character line; now the close ones,
    and a version above the shipped family's is said to be perhaps a newer release's."""
    photo = tmp_path / "p.png"
    Image.fromarray(natural_image(32, 32)).save(photo)
    line = _error(capsys, ["compress", photo, "-o", tmp_path / "x.saicm", "--model", "mse-hyperprior"])
    assert "did you mean mse-hyperprior-n64-v5" in line and "saicm models" in line
    assert "object-coco" not in line and len(line) < 400
    line = _error(capsys, ["compress", photo, "-o", tmp_path / "x.saicm", "--model", "mse-hyperprior-n64-v9"])
    assert "ships mse-hyperprior-n64-v5 at most: a newer release's model?" in line


def test_a_file_of_a_model_not_here_says_so_without_did_you_mean(tmp_path, tiny_model, capsys):
    """A file's model name is not the user's typing: "unknown model 'x' (did you mean …)" misled; the file's model
    is named with what to do, and weights shipped under another name are named."""
    photo = tmp_path / "p.png"
    Image.fromarray(natural_image(32, 32)).save(photo)
    for weights, name, needle in ((tiny_model, "labmodel-v3", "does not ship (your own, or a newer release's?): pass "
                                                                "its model file with --model"),
                                  (WEIGHTS_DIR / f"{V5}.safetensors",
                                   "renamed-v1", f"whose weights saicm ships as {V5}: decode it with --model {V5}")):
        own = tmp_path / f"{name}.safetensors"
        own.write_bytes(weights.read_bytes())
        coded = tmp_path / f"{name}.saicm"
        assert main(["compress", str(photo), "-o", str(coded), "--model", str(own), "--quiet"]) == 0
        own.unlink()
        line = _error(capsys, ["decompress", coded, "-o", tmp_path / "out.png"], code=1)
        assert f"coded with model {name!r}" in line and needle in line and "did you mean" not in line, line
        assert not (tmp_path / "out.png").exists()


def test_commands_without_max_pixels_do_not_tell_to_raise_it(tmp_path, monkeypatch, capsys):
    """eval, train and masks refused an image above the pixel limit with "raise it with --max-pixels", an option
    none of them has (two audits of 0.26.1); they say what can be done there. compress still names the option."""
    import saicm.codec.limits as limits

    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(natural_image(48, 48)).save(d / "big.png")
    monkeypatch.setattr(limits, "DEFAULT_MAX_PIXELS", 1000)  # (a 1,000-pixel limit stands for the 64 MP one)
    for argv, command in ((["eval", "--codec", "jpeg", "--qualities", "50", "--dataset", d, "--task", "psnr",
                            "-o", tmp_path / "r.json", "--no-cache"], "eval"),
                          (["train", "--data", d, "--out", tmp_path / "run", "--steps", "1", "--patch", "64",
                            "--architecture", "gained-mean-scale-hyperprior", "--N", "8"], "train"),
                          (["masks", d, "-o", tmp_path / "m"], "masks")):
        main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert f"big.png: the image is 48x48 (2,304 pixels), more than the limit of 1,000: saicm {command} reads " \
               "images up to 1,000 pixels (it has no --max-pixels)" in err, err
        assert "raise it with" not in err
    line = _error(capsys, ["compress", d / "big.png", "-o", tmp_path / "x.saicm"], code=1)
    assert line.endswith("raise it with --max-pixels (Python: max_pixels=) if you trust it")


def test_report_names_itself_when_an_image_is_above_the_limit(tmp_path, monkeypatch, capsys):
    """`saicm report --images` reads its image as eval does, and its refusal said "saicm eval reads images up to
    ... pixels" to a user who ran saicm report."""
    import saicm.codec.limits as limits
    from saicm.eval import results

    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(natural_image(48, 48)).save(d / "big.png")
    res = results.new_result("jpeg", {}, str(d), "psnr", 1)
    res["points"] = [{"quality": 50, "bpp": 0.5, "psnr": 30.0}, {"quality": 80, "bpp": 1.0, "psnr": 35.0}]
    results.save(res, tmp_path / "r.json")
    monkeypatch.setattr(limits, "DEFAULT_MAX_PIXELS", 1000)
    for extra in ([], ["--image", "big.png"]):
        assert main(["report", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.html"), "--images", str(d),
                     *extra]) != 0
        err = capsys.readouterr().err
        assert "saicm report reads images up to 1,000 pixels" in err and "saicm eval" not in err, err


def test_only_a_version_above_the_shipped_ones_is_called_a_newer_releases():
    """An unknown version of a shipped family is "a newer release's model?" only above the family's highest
    (mutation audit: any version passed; mse-context-n64-v4, below the shipped v5 and v6, was called a newer
    release's)."""
    from saicm.models.catalog import _unknown_model_hint, shipped_models

    shipped = list(shipped_models())
    assert "mse-context-n64-v5" in shipped and "mse-context-n64-v4" not in shipped
    older = _unknown_model_hint("mse-context-n64-v4", shipped)
    assert "newer release" not in older and "did you mean mse-context-n64-v" in older
    assert "a newer release's model?" in _unknown_model_hint("mse-context-n64-v99", shipped)


def test_a_folder_for_a_file_or_a_file_for_a_folder_is_not_called_not_found(files, capsys, tmp_path):
    """`saicm export DIR`, `import-checkpoint DIR` and `train --data photo.png` said the checkpoint, the checkpoint
    file or the training data folder was "not found" of a path that is there (a CLI consistency audit: other
    commands say "is a folder, not a file" and "is a file, not a folder of images")."""
    pytest.importorskip("torch")
    folder = tmp_path / "dir"
    folder.mkdir()
    assert _error(capsys, ["export", folder, "-o", tmp_path / "m.safetensors"]).endswith(
        "dir: is a folder, not a file: name the training checkpoint")
    assert _error(capsys, ["import-checkpoint", folder, "--name", "mine", "--out", tmp_path / "o"]).endswith(
        "dir: is a folder, not a file: name the checkpoint file")
    assert _error(capsys, ["train", "--data", files["photo"], "--out", tmp_path / "run", "--steps", "1"]).endswith(
        "photo.png: is a file, not a folder of training images")
    assert not (tmp_path / "m.safetensors").exists() and not (tmp_path / "o").exists()


def test_an_output_folder_named_as_a_file_is_refused_by_masks_and_train(files, capsys, tmp_path):
    """`saicm masks DIR -o masks.png` and `saicm train -o model.safetensors` (as `export -o` takes it) made folders so
    named, where compress, decompress and video refuse such a name (a CLI consistency audit)."""
    pytest.importorskip("torch")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(natural_image(64, 64)).save(photos / "a.png")
    assert _error(capsys, ["masks", photos, "-o", tmp_path / "masks.png", "--quiet"]).endswith(
        "masks.png: names a .png file, but masks go to a folder: give a folder name without that suffix (nothing "
        "written)")
    assert _error(capsys, ["train", "--data", photos, "-o", tmp_path / "mine.safetensors", "--steps", "1",
                           "--patch", "64", "--batch", "1", "--quiet"]).endswith(
        "mine.safetensors: names a .safetensors file, but a run's checkpoint, log and model go to a folder: give a "
        "folder name without that suffix (nothing written)")
    assert not (tmp_path / "masks.png").exists() and not (tmp_path / "mine.safetensors").exists()


def test_a_model_found_by_name_with_other_weights_is_named_by_its_path(tmp_path, monkeypatch):
    """A file coded with ``model="mine.safetensors"`` (docs/usage.md's own training loop) names 'mine'; decoded
    without ``model=`` beside a model of that name in the model folder (docs/training.md's export), the error said
    "other weights of model 'mine' than mine.safetensors": the working folder's mine.safetensors is the right one,
    and the message did not say that another file of that name was read (the tutorial audit)."""
    import saicm
    import torch

    from saicm.errors import ModelError
    from saicm.models import build_architecture, save_model

    torch.manual_seed(0)
    here = tmp_path / "mine.safetensors"
    save_model(build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.003, 0.03]), here)
    folder = tmp_path / "models"
    folder.mkdir()
    save_model(build_architecture("gained-mean-scale-hyperprior", N=16, M=24, lambdas=[0.003, 0.03]),
               folder / "mine.safetensors")  # (other random weights, the same name)
    monkeypatch.setenv("SAICM_MODELS", str(folder))
    data = saicm.compress(natural_image(64, 64, seed=2), model=str(here), quality=1)
    assert saicm.describe(data)["model"] == "mine"
    with pytest.raises(ModelError) as e:
        saicm.decompress(data)
    assert str(folder / "mine.safetensors") in str(e.value) and "checksum mismatch" in str(e.value)
    assert saicm.decompress(data, model=str(here)).size == (64, 64)
