"""A batch's input and journal, read without a network: every problem is named by its line
before anything is sent, and a journal that is not this kind's is refused untouched."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from langchain_websim import BatchInputError, run_batch
from langchain_websim._batch_input import BatchSource, check_input, image_stem, parse_line
from langchain_websim._batch_journal import Journal, read_journal
from langchain_websim._image_options import IMAGE_OPTIONS, ImageOption
from langchain_websim._requests import ImageRequest


def write_lines(path: Path, *lines: object) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def problems(kind: str, path: Path, defaults: dict[str, object] | None = None) -> list[str]:
    with pytest.raises(BatchInputError) as caught:
        check_input(kind, BatchSource(path), defaults or {})  # type: ignore[arg-type]
    return [f"{line}: {problem}" for line, problem in caught.value.problems]


def test_each_problem_is_named_with_its_line_number(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {"prompt": "fine"},
        "{not json",
        {"system": "no text"},
        {"prompt": "a", "messages": [{"role": "user", "content": "b"}]},
        {"id": "1", "prompt": "same id as line 1"},
        {"prompt": "x", "temperature": 0.2},
        {"prompt": "x", "stop": 5},
        {"prompt": "x", "model": "flux"},
        {"messages": [{"role": "robot", "content": "hi"}]},
        ["a", "list"],
    )
    found = problems("chat", source)
    assert [entry.split(":")[0] for entry in found] == [str(n) for n in range(2, 11)]
    assert found[0].startswith("2: malformed JSON")
    assert found[1] == "3: give either 'prompt' or 'messages'"
    assert found[2] == "4: give 'prompt' or 'messages', not both"
    assert found[3] == "5: duplicate id '1' (first on line 1)"
    assert found[4].startswith("6: unknown option 'temperature'")
    assert "stop" in found[5]  # ChatWebsim's own check of the field
    assert "generates images" in found[6]
    assert found[8] == "10: expected a JSON object, got list"


def test_only_the_first_ten_are_listed_and_the_rest_counted(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", *({"prompt": i} for i in range(14)))
    with pytest.raises(BatchInputError) as caught:
        check_input("chat", BatchSource(source), {})
    err = caught.value
    assert err.count == 14
    assert [line for line, _ in err.problems] == list(range(1, 11))
    assert err.lines()[0] == f"{source} has 14 problems; nothing was sent:"
    assert err.lines()[-1] == "... and 4 more"
    assert isinstance(err, ValueError)


def test_image_options_are_checked_by_the_image_request(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {"prompt": "ok", "seed": 7, "width": 512, "aspect_ratio": "16:9"},
        {"prompt": "x", "seed": -1},
        {"prompt": "x", "width": 10},
        {"prompt": "x", "transparent": "yes"},
        {"prompt": "x", "aspect_ratio": "wide"},
        {"prompt": "   "},
        {"prompt": "x", "model": "gemini"},
    )
    found = problems("image", source)
    assert [entry.split(":")[0] for entry in found] == ["2", "3", "4", "5", "6", "7"]
    assert "seed must be 0 to" in found[0]
    assert "width must be 64 to 2048" in found[1]
    assert "transparent must be True or False" in found[2]
    assert "aspect_ratio must look like" in found[3]
    assert "prompt is empty" in found[4]
    assert "unknown option 'model' (an image line takes id, prompt, aspect_ratio" in found[5]


def test_the_defaults_are_checked_like_a_line(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", {"prompt": "x"}, {"prompt": "y", "seed": 3})
    found = problems("image", source, {"width": 5})
    assert [entry.split(":")[0] for entry in found] == ["1", "2"]
    # A line's own option wins over the default.
    assert check_input("image", BatchSource(source), {"seed": 1}).ids == {"1", "2"}


def test_a_text_file_is_one_prompt_per_line_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("a lighthouse\n\n{not an object, but text: auto sees the first line}\n")
    assert check_input("chat", BatchSource(source), {}).ids == {"1", "3"}
    lines = list(BatchSource(source).lines())
    assert [number for number, _ in lines] == [1, 3]


def test_jsonl_can_be_forced_and_then_a_text_line_is_malformed(tmp_path: Path) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("a lighthouse\n")
    assert check_input("chat", BatchSource(source), {}).ids == {"1"}
    with pytest.raises(BatchInputError) as caught:
        check_input("chat", BatchSource(source, "jsonl"), {})
    assert caught.value.problems[0][1].startswith("malformed JSON")


def test_a_stream_is_read_once_and_can_be_passed_over_twice() -> None:
    class Once(io.StringIO):
        reads = 0

        def read(self, size: int | None = -1) -> str:
            chunk = super().read(size)
            if chunk:
                Once.reads += 1
            return chunk

    stream = Once('{"prompt": "a"}\n{"prompt": "b"}\n')
    source = BatchSource(stream)
    try:
        first = [item for _, item in source.lines()]
        second = [item for _, item in source.lines()]
    finally:
        source.close()
    assert first == second == ['{"prompt": "a"}', '{"prompt": "b"}']
    assert Once.reads == 1


def test_image_file_names_are_safe_and_distinct() -> None:
    assert image_stem("cat-01") == "cat-01"
    stems = {image_stem(i) for i in ("a/b", "a b", "a_b", "../x", ".hidden", "é", "", "x.")}
    assert len(stems) == 8
    for stem in stems:
        assert "/" not in stem and not stem.startswith(".") and stem
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in stem)


def test_ids_that_would_share_an_image_file_are_refused(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl", {"id": "Cat", "prompt": "a"}, {"id": "cat", "prompt": "b"}
    )
    [found] = problems("image", source)
    assert found.startswith("2: id 'cat' would be saved under the same file name as id 'Cat'")
    # Chat lines have no files: the same ids are fine there.
    assert check_input("chat", BatchSource(source), {}).ids == {"Cat", "cat"}


def test_ids_may_be_strings_or_whole_numbers(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {"id": 7, "prompt": "a"},
        {"id": "7", "prompt": "b"},
        {"id": True, "prompt": "c"},
        {"id": "", "prompt": "d"},
    )
    found = problems("chat", source)
    assert found[0] == "2: duplicate id '7' (first on line 1)"
    assert found[1].startswith("3: id must be a string or a whole number")
    assert found[2].startswith("4: id must be non-empty")


def test_an_empty_input_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "empty.txt"
    source.write_text("\n\n")
    with pytest.raises(ValueError, match="has no lines to run"):
        check_input("chat", BatchSource(source), {})


# ---------------------------------------------------------------------- the journal


def test_a_foreign_output_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", {"prompt": "a"})
    out = tmp_path / "notes.jsonl"
    out.write_text('{"name": "my precious data"}\n')
    with pytest.raises(ValueError, match="is not a websim batch journal"):
        run_batch("chat", source, out, progress="off")
    assert out.read_text() == '{"name": "my precious data"}\n'


def test_a_journal_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    Journal(out, "image").close()
    before = out.read_bytes()
    with pytest.raises(ValueError, match="journal of a batch of image calls, not of chat calls"):
        read_journal(out, "chat")
    assert out.read_bytes() == before


def test_a_line_in_the_middle_that_is_not_an_entry_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    Journal(out, "chat").close()
    with out.open("a") as journal:
        journal.write('{"id": "1", "ok": true}\nsomething else\n{"id": "2", "ok": true}\n')
    with pytest.raises(ValueError, match=r"line 3 of .* is not a journal entry"):
        read_journal(out, "chat")


def test_a_torn_last_line_is_found_and_cut_off_when_appending(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    Journal(out, "chat").close()
    with out.open("a") as journal:
        journal.write('{"id": "1", "ok": true}\n{"id": "2", "ok": fal')
    state = read_journal(out, "chat")
    assert state.torn and state.ok == {"1"} and state.failed == set()
    assert out.read_text().endswith('"ok": fal')  # reading changes nothing
    Journal(out, "chat", state.keep).close()
    assert out.read_text().splitlines()[-1] == '{"id": "1", "ok": true}'


def test_a_torn_header_starts_the_journal_afresh(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"websim_batch_jour')
    state = read_journal(out, "chat")
    assert state.keep == 0
    Journal(out, "chat", state.keep).close()
    assert json.loads(out.read_text()) == {"websim_batch_journal": 1, "kind": "chat"}


def test_the_last_line_of_an_id_is_its_outcome(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    Journal(out, "chat").close()
    with out.open("a") as journal:
        for entry in (
            {"id": "a", "ok": False},
            {"id": "b", "ok": True},
            {"id": "a", "ok": True},
            {"id": "c", "ok": False},
        ):
            journal.write(json.dumps(entry) + "\n")
    state = read_journal(out, "chat")
    assert state.ok == {"a", "b"} and state.failed == {"c"}


async def test_appends_are_fsynced_lines_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    journal = Journal(out, "chat")
    try:
        for i in range(5):
            await journal.append({"id": str(i), "ok": True, "content": f"answer {i}"})
    finally:
        journal.close()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines[1:]] == ["0", "1", "2", "3", "4"]


def test_bad_arguments_are_refused_before_reading_anything(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", {"prompt": "a"})
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match="concurrency must be"):
        run_batch("chat", source, out, concurrency=0)
    with pytest.raises(ValueError, match="kind must be one of chat, image"):
        run_batch("video", source, out)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs images_dir"):
        run_batch("image", source, out)
    with pytest.raises(ValueError, match="unknown option 'seed' for a chat batch"):
        run_batch("chat", source, out, options={"seed": 1})
    with pytest.raises(ValueError, match="the options for every line: width must be 64 to"):
        run_batch("image", source, out, images_dir=tmp_path / "pics", options={"width": 5})
    assert not (tmp_path / "pics").exists()
    with pytest.raises(ValueError, match="the options for every line: model 'flux' generates"):
        run_batch("chat", source, out, options={"model": "flux"})
    with pytest.raises(ValueError, match="is the input file"):
        run_batch("chat", source, source)
    assert not out.exists()


# ---------------------------------------------------------------------- the image options


@pytest.mark.parametrize("option", IMAGE_OPTIONS, ids=lambda option: option.name)
def test_each_image_option_is_a_line_option_and_a_batch_flag(option: ImageOption) -> None:
    from langchain_websim._cli_batch import prepare_batch
    from langchain_websim.cli import build_parser

    [line] = [
        parse_line("image", number, item, {})
        for number, item in BatchSource([{"prompt": "a fox", option.name: option.example}]).lines()
    ]
    assert isinstance(line.call, ImageRequest)
    assert line.call.options[option.name] == option.example

    if isinstance(option.example, bool):
        words = [option.flag.flag]
    elif isinstance(option.example, list):
        words = [word for item in option.example for word in (option.flag.flag, item)]
    else:
        words = [option.flag.flag, str(option.example)]
    argv = ["batch", "image", "in.txt", "-o", "out.jsonl", "--images-dir", "pics", *words]
    args = build_parser().parse_args(argv)
    prepare_batch(args)
    assert args.defaults[option.name] == option.example
