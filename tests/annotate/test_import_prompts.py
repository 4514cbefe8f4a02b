"""import_prompts and the import form: valid files load, bad files load nothing."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotate.models import Candidate, Item, Project, Prompt
from tests import factories


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def jsonl(*rows):
    return "\n".join(json.dumps(r) for r in rows) + "\n"


@pytest.mark.django_db
def test_it_imports_jsonl_with_candidates_and_chat_prompts(tmp_path):
    path = write(tmp_path, "p.jsonl", jsonl(
        {"id": "a", "prompt": "Where is my parcel?", "candidates": ["Soon.", "Let me check."]},
        {"prompt": [{"role": "system", "content": "Be kind."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Refund please"}],
         "metadata": {"lang": "en"}},
    ))
    call_command("import_prompts", "shop", str(path), "--create")
    project = Project.objects.get(slug="shop")
    prompts = list(project.prompts.order_by("id"))
    assert [p.external_id for p in prompts] == ["a", ""]
    assert prompts[0].conversation == [{"role": "user", "content": "Where is my parcel?"}]
    assert prompts[1].conversation[-1] == {"role": "user", "content": "Refund please"}
    assert prompts[1].metadata == {"lang": "en"}
    assert Candidate.objects.filter(prompt__project=project).count() == 2
    item = Item.objects.get(project=project)
    assert item.candidates.count() == 2 and item.open_slots == project.overlap


@pytest.mark.django_db
def test_it_imports_csv_with_candidate_columns(tmp_path):
    path = write(tmp_path, "p.csv",
                 "id,prompt,candidate_1,candidate_2,candidate_3\n"
                 'x1,"Reset my password, please",Use the link.,No.,\n'
                 "x2,Cancel my order,,,\n")
    factories.project("csvp")
    call_command("import_prompts", "csvp", str(path))
    assert Prompt.objects.filter(project__slug="csvp").count() == 2
    assert Candidate.objects.filter(prompt__external_id="x1").count() == 2
    assert Item.objects.filter(project__slug="csvp").count() == 1


BAD_FILES = {
    "bad-json.jsonl": (jsonl({"prompt": "ok"}) + '{"prompt": "unterminated\n',
                       "line 2: invalid JSON"),
    "missing.jsonl": (jsonl({"prompt": "ok"}, {"candidates": ["a", "b"]}),
                      "line 2: missing required field 'prompt'"),
    "ends-assistant.jsonl": (jsonl({"prompt": [{"role": "user", "content": "q"},
                                               {"role": "assistant", "content": "a"}]}),
                             "line 1: 'prompt' must end with a 'user' turn"),
    "bad-role.jsonl": (jsonl({"prompt": [{"role": "bot", "content": "q"}]}), "line 1:"),
    "bad-cands.jsonl": (jsonl({"prompt": "q", "candidates": "not a list"}), "line 1:"),
    "dup-id.jsonl": (jsonl({"id": "1", "prompt": "a"}, {"id": "1", "prompt": "b"}),
                     "line 2: duplicate id '1'"),
    "latin1.jsonl": ('{"prompt": "caf\xe9"}\n'.encode("latin-1"), "not UTF-8"),
    "no-prompt-col.csv": ("question,candidate_1\nq,a\n", "no 'prompt' column"),
    "empty.jsonl": ("\n\n", "no rows"),
    "data.txt": ("prompt\nq\n", "unsupported file type"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_it_rejects_bad_files_and_imports_nothing(tmp_path, name):
    content, message = BAD_FILES[name]
    proj = factories.project("strict")
    path = write(tmp_path, name, content)
    with pytest.raises(CommandError) as excinfo:
        call_command("import_prompts", "strict", str(path))
    assert message in str(excinfo.value)
    assert "Nothing was imported" in str(excinfo.value)
    assert not Prompt.objects.filter(project=proj).exists()
    assert not Candidate.objects.exists()


@pytest.mark.django_db
def test_it_rolls_back_the_whole_file_when_one_id_already_exists(tmp_path):
    proj = factories.project("dups")
    factories.prompt(proj, "old", external_id="k2")
    path = write(tmp_path, "p.jsonl", jsonl({"id": "k1", "prompt": "a"},
                                            {"id": "k2", "prompt": "b"}))
    with pytest.raises(CommandError, match="line 2: id 'k2' already exists"):
        call_command("import_prompts", "dups", str(path))
    assert list(proj.prompts.values_list("external_id", flat=True)) == ["k2"]


@pytest.mark.django_db
def test_it_refuses_an_unknown_project_without_create(tmp_path):
    path = write(tmp_path, "p.jsonl", jsonl({"prompt": "a"}))
    with pytest.raises(CommandError, match="--create"):
        call_command("import_prompts", "nope", str(path))
    assert not Project.objects.filter(slug="nope").exists()


def test_it_imports_through_the_upload_form(client, engineer, tmp_path):
    proj = factories.project("upload")
    client.force_login(engineer)
    path = write(tmp_path, "p.jsonl", jsonl({"prompt": "a", "candidates": ["x", "y"]}))
    with path.open("rb") as fh:
        response = client.post(reverse("annotate-import", args=["upload"]), {"file": fh})
    assert response.status_code == 302
    assert proj.items.count() == 1


def test_it_shows_line_numbered_errors_in_the_form(client, engineer, tmp_path):
    proj = factories.project("upload-bad")
    client.force_login(engineer)
    path = write(tmp_path, "p.jsonl", jsonl({"prompt": "a"}) + "{oops\n")
    with path.open("rb") as fh:
        response = client.post(reverse("annotate-import", args=["upload-bad"]), {"file": fh})
    assert response.status_code == 400
    assert b"line 2: invalid JSON" in response.content
    assert b"Nothing was imported" in response.content
    assert not proj.prompts.exists()
