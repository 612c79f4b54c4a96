"""Files a user names: written whole or not at all, read with their mistakes named."""

import os

import pytest

from fcsft.errors import UserError
from fcsft.files import read_text
from fcsft.jsonl import read_lines, write_jsonl


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "data.jsonl"
    target.write_text("old\n")

    def records():
        yield {"a": 1}
        raise RuntimeError("the producer broke")

    with pytest.raises(RuntimeError):
        write_jsonl(target, records())
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["data.jsonl"]


def test_a_rewrite_keeps_the_permissions_and_the_symlink(tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    write_jsonl(link, [{"a": 1}])
    assert link.is_symlink() and real.read_text() == '{"a":1}\n'
    assert real.stat().st_mode & 0o777 == 0o640


def test_lines_keep_their_numbers_whatever_the_bytes(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"b": "\xff"}\n{"c": 3}')
    lines = list(read_lines(path))
    assert [(line.number, line.obj, line.error) for line in lines] == [
        (1, {"a": 1}, None),
        (3, None, "not valid UTF-8 at byte 7 (0xff)"),
        (4, {"c": 3}, None),
    ]
    assert lines[1].raw == '{"b": "\\xff"}'


def test_utf16_and_bad_bytes_in_text_files_are_named(tmp_path):
    path = tmp_path / "project.yaml"
    path.write_text("name: demo\n", encoding="utf-16")
    with pytest.raises(UserError, match="UTF-16; save it as UTF-8"):
        read_text(path)
    with pytest.raises(UserError, match="UTF-16; save it as UTF-8"):
        list(read_lines(path))
    path.write_bytes(b"name: demo\n# caf\xe9\n")
    with pytest.raises(UserError, match=r"project.yaml:2: not valid UTF-8 at byte 5 \(0xe9\)"):
        read_text(path)


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    from fcsft.files import replacing_folder

    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with pytest.raises(RuntimeError), replacing_folder(target) as staging:
        (staging / "new.bin").write_text("half")
        raise RuntimeError("killed midway")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging left behind
    assert [p.name for p in target.iterdir()] == ["old.bin"]

    (tmp_path / "model.partial").mkdir()  # left by a process that was killed
    (tmp_path / "model.partial" / "stale.bin").write_text("stale")
    with replacing_folder(target) as staging:
        assert list(staging.iterdir()) == []
        (staging / "new.bin").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert [p.name for p in target.iterdir()] == ["new.bin"]
