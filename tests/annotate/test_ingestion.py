"""Ingesting production conversations: scrubbed before storing, once per id, routed to data."""

import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from annotate.ingestion import InvalidConversation, ingest, prompt_external_id
from annotate.models import Candidate, Conversation, Item, Prompt
from annotate.services import preference_rows
from rlhf.models import GenerationJob, ModelVersion
from rlhf.runner import execute_generation
from rlhf.snapshots import JudgementFilter, kto_snapshot_rows, sft_snapshot_rows
from tests import factories

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
NAME = "Jane Doe"
ACCOUNT = "ACC-99812"
RAW = (EMAIL, PHONE, NAME, "Jane", "Doe", ACCOUNT)


def conversation(external_id="c1", thumb=None, correction=None, **extra):
    return {
        "external_id": external_id,
        "messages": [
            {"role": "system", "content": "You are the support assistant of Northwind."},
            {"role": "user", "content": f"Hi, I am {NAME}, write to {EMAIL} or call {PHONE}."},
            {"role": "assistant", "content": "Hello Jane, how can I help?"},
            {"role": "user", "content": f"My account {ACCOUNT} is locked."},
        ],
        "reply": f"Sorry Jane, I unlocked {ACCOUNT}; a mail went to {EMAIL}.",
        "model_version": extra.pop("model_version", None),
        "feedback": {"thumb": thumb, "correction": correction,
                     "comment": f"Customer {NAME} was angry"},
        "customer": {"name": NAME, "email": EMAIL, "phone": PHONE, "account": ACCOUNT},
        **extra,
    }


@pytest.fixture
def shop(db):
    return factories.project("shop")


def stored_texts(project):
    """Every text value of the project's conversations, prompts and candidates."""
    texts = []
    for c in Conversation.objects.filter(project=project):
        texts += [c.external_id, json.dumps(c.messages), c.reply, c.model_name, c.feedback,
                  c.correction, c.comment, json.dumps(c.pii_counts)]
    for p in Prompt.objects.filter(project=project):
        texts += [p.external_id, json.dumps(p.conversation), p.source, json.dumps(p.metadata)]
    for cand in Candidate.objects.filter(prompt__project=project):
        texts += [cand.text, json.dumps(cand.metadata)]
    return "\n".join(texts)


def test_it_stores_only_scrubbed_text(shop):
    correction = f"Dear {NAME}, account {ACCOUNT} is unlocked; we wrote to {EMAIL}."
    result = ingest(shop, [conversation(thumb="down", correction=correction)])
    assert result == {"created": 1, "duplicates": 0, "items": 1, "ids": ["c1"]}
    everything = stored_texts(shop)
    for raw in RAW:
        assert raw not in everything
    stored = Conversation.objects.get()
    assert stored.messages[1]["content"] == "Hi, I am [NAME], write to [EMAIL] or call [PHONE]."
    assert "[EMAIL]" in stored.reply and "[ID]" in stored.correction
    assert stored.pii_counts["EMAIL"] == 3 and stored.pii_counts["NAME"] >= 4
    assert all(isinstance(n, int) for n in stored.pii_counts.values())


def test_it_leaves_clean_text_as_it_was(shop):
    row = {"external_id": "plain", "messages": [{"role": "user", "content": "Where is my parcel?"}],
           "reply": "It arrives on Monday."}
    ingest(shop, [row])
    stored = Conversation.objects.get()
    assert stored.messages == row["messages"] and stored.reply == "It arrives on Monday."
    assert stored.pii_counts == {} and stored.feedback == ""


def test_a_resent_batch_creates_nothing(shop):
    batch = [conversation("c1", thumb="down"), conversation("c2", thumb="up")]
    first = ingest(shop, batch)
    counts = (Conversation.objects.count(), Prompt.objects.count(), Candidate.objects.count(),
              Item.objects.count())
    again = ingest(shop, [*batch, conversation("c3")])
    assert first["created"] == 2 and first["ids"] == ["c1", "c2"]
    assert again == {"created": 1, "duplicates": 2, "items": 0, "ids": ["c3"]}
    assert Conversation.objects.count() == counts[0] + 1
    assert Prompt.objects.count() == counts[1] + 1
    assert Candidate.objects.count() == counts[2] + 1
    assert Item.objects.count() == counts[3]


def test_a_repeated_id_in_one_batch_is_stored_once(shop):
    result = ingest(shop, [conversation("c1"), conversation("c1")])
    assert result["created"] == 1 and result["duplicates"] == 1
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("bad, reason", [
    ({"messages": []}, "messages must be a non-empty list"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]},
     "last message must have role 'user'"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "role must be one of"),
    ({"reply": "  "}, "reply must be a non-empty string"),
    ({"feedback": {"thumb": "sideways"}}, "feedback.thumb must be"),
    ({"feedback": {"thumb": "up", "rating": 5}}, "feedback has unknown field"),
    ({"customer": {"name": 5}}, "customer must be an object of strings"),
    ({"external_id": "x" * 201}, "longer than 200"),
    ({"external_id": ""}, "external_id must be a non-empty string"),
    ({"colour": "red"}, "unknown field(s): colour"),
])
def test_an_invalid_row_stores_nothing_and_names_the_row(shop, bad, reason):
    rows = [conversation("ok-1"), {**conversation("bad-2"), **bad}, conversation("ok-3")]
    with pytest.raises(InvalidConversation) as caught:
        ingest(shop, rows)
    message = str(caught.value)
    assert caught.value.index == 1
    assert message.startswith("conversation 1") and reason in message
    if "external_id" not in bad:
        assert "'bad-2'" in message
    assert "Nothing was stored" in message
    for raw in RAW:  # the error never echoes the content
        assert raw not in message
    assert not Conversation.objects.exists() and not Prompt.objects.exists()


def test_an_invalid_row_is_a_value_error(shop):
    with pytest.raises(ValueError, match="conversation 0"):
        ingest(shop, [{"external_id": "x"}])


def test_a_thumbs_down_becomes_an_item_with_the_production_reply(shop):
    ingest(shop, [conversation("down", thumb="down"), conversation("up", thumb="up"),
                  conversation("quiet")])
    down = Conversation.objects.get(external_id="down")
    assert down.item is not None and down.item.open_slots == shop.overlap
    reply = down.item.candidates.get()
    assert reply.text == down.reply and reply.origin == Candidate.Origin.MODEL
    assert reply.metadata["production"] is True
    assert Item.objects.count() == 1
    prompt = down.prompt
    assert prompt.source == "production" and prompt.split == "train"
    assert prompt.external_id == "conv:down" and prompt.conversation == down.messages
    assert Conversation.objects.get(external_id="up").item is None


def test_a_correction_feeds_an_item_sft_preferences_and_kto(shop):
    base = ModelVersion.objects.create(project=shop, name="support-v3", source="/models/v3")
    corrected = conversation("fix", thumb="down", model_version="support-v3",
                             correction="Your account is unlocked. Anything else?")
    liked = conversation("liked", thumb="up", model_version=str(base.pk),
                         reply="Glad to help, Jane!")
    unknown = conversation("other", model_version="gpt-unknown")
    result = ingest(shop, [corrected, liked, unknown])
    assert result["items"] == 1 and "generation_job" not in result

    fix = Conversation.objects.get(external_id="fix")
    assert fix.model_version == base and fix.model_name == "support-v3"
    other = Conversation.objects.get(external_id="other")
    assert other.model_version is None and other.model_name == "gpt-unknown"
    assert Conversation.objects.get(external_id="liked").model_version == base

    reply, correction = fix.item.candidates.order_by("id")
    assert reply.model_version == base and reply.origin == "model"
    assert correction.origin == "correction" and correction.parent == reply
    assert correction.text == "Your account is unlocked. Anything else?"

    pairs = [r for r in preference_rows(shop) if r["source"] == "production"]
    assert len(pairs) == 1
    assert pairs[0]["chosen"][0]["content"] == correction.text
    assert pairs[0]["rejected"][0]["content"] == reply.text
    assert pairs[0]["prompt"] == fix.messages and pairs[0]["prompt_id"] == "conv:fix"

    keep = JudgementFilter(shop, object())
    sft = sft_snapshot_rows(shop, keep)
    assert [(r["completion"][0]["content"], r["source"]) for r in sft] == [
        (correction.text, "production")
    ]
    kto = {r["completion"][0]["content"]: r for r in kto_snapshot_rows(shop, keep, 0.5)}
    liked_reply = Conversation.objects.get(external_id="liked").reply
    assert liked_reply == "Glad to help, [NAME]!"
    assert kto[liked_reply]["label"] is True and kto[liked_reply]["source"] == "production"
    assert kto[fix.reply]["label"] is False
    assert len(kto) == 2  # the conversation without a thumb gives no KTO row


def test_only_reviewed_snapshots_drop_production_rows(shop):
    ingest(shop, [conversation("fix", thumb="down", correction="Fixed it for you.")])

    class OnlyReviewed:
        only_reviewed = True

    keep = JudgementFilter(shop, OnlyReviewed())
    assert sft_snapshot_rows(shop, keep) == [] and kto_snapshot_rows(shop, keep, 0.5) == []


def test_a_current_model_gets_a_generation_job_and_the_item_keeps_production_answers(
    shop, django_capture_on_commit_callbacks, monkeypatch
):
    current = ModelVersion.objects.create(project=shop, name="policy-v2", source="/models/v2")
    shop.current_model = current
    shop.save()
    sent = []
    monkeypatch.setattr("rlhf.tasks.generate.apply_async", lambda args, **kw: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest(shop, [conversation("fix", thumb="down", correction="All fixed now."),
                               conversation("bad", thumb="down"), conversation("fine", thumb="up")])
    job = GenerationJob.objects.get()
    assert result["generation_job"] == job.pk and result["items"] == 2
    assert sent == [[job.pk]] and job.model_version == current
    fix, bad = Conversation.objects.get(external_id="fix"), Conversation.objects.get(
        external_id="bad")
    assert job.prompt_ids == [fix.prompt_id, bad.prompt_id]
    assert not Item.objects.exists()  # the worker builds the items

    def fake_generate(source, conversations, config, on_progress=None, should_stop=None):
        return [[f"fresh {i}a", f"fresh {i}b"] for i in range(len(conversations))]

    monkeypatch.setattr("rlhf.ml.generate.generate", fake_generate)
    execute_generation(job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    fix.refresh_from_db()
    bad.refresh_from_db()
    texts = list(fix.item.candidates.order_by("id").values_list("origin", "text"))
    assert texts[:2] == [("model", fix.reply), ("correction", "All fixed now.")]
    assert [t for _, t in texts[2:]] == ["fresh 0a", "fresh 0b"]
    assert bad.item.candidates.count() == 3
    assert Item.objects.count() == 2


def test_generation_for_ordinary_prompts_is_unchanged(shop, monkeypatch):
    current = ModelVersion.objects.create(project=shop, name="p", source="/m")
    prompt = factories.prompt(shop, "How do I return shoes?")
    Candidate.objects.create(prompt=prompt, text="an imported answer")
    job = GenerationJob.objects.create(project=shop, model_version=current,
                                       prompt_ids=[prompt.pk], total=1)
    monkeypatch.setattr("rlhf.ml.generate.generate",
                        lambda *a, **k: [["one", "two"]])
    execute_generation(job.pk)
    item = Item.objects.get()
    assert list(item.candidates.values_list("text", flat=True)) == ["one", "two"]


def test_it_records_who_posted_it(shop, engineer):
    ingest(shop, [conversation()], user=engineer)
    assert Conversation.objects.get().received_by == engineer


def test_long_external_ids_fit_the_prompt_column():
    long_id = "x" * 200
    value = prompt_external_id(long_id)
    assert len(value) <= 200 and value.startswith("conv:")
    assert value != prompt_external_id("x" * 199 + "y")


def test_the_command_ingests_a_jsonl_file(shop, tmp_path, capsys):
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(conversation(f"c{i}", thumb="down")) for i in range(3))
                    + "\n\n")
    call_command("ingest_conversations", "shop", str(path))
    assert Conversation.objects.count() == 3 and Item.objects.count() == 3
    assert "Ingested 3 conversations" in capsys.readouterr().out
    call_command("ingest_conversations", "shop", str(path))
    assert Conversation.objects.count() == 3
    assert "3 already stored" in capsys.readouterr().out


def test_the_command_names_the_line_and_stores_nothing(shop, tmp_path):
    path = tmp_path / "batch.jsonl"
    bad = {**conversation("c3"), "reply": ""}
    path.write_text("\n".join([json.dumps(conversation("c1")), "", json.dumps(bad)]))
    with pytest.raises(CommandError, match=r"line 3: conversation 1 \(external_id 'c3'\)"):
        call_command("ingest_conversations", "shop", str(path))
    path.write_text(json.dumps(conversation("c1")) + '\n{"external_id": "c2", ' + EMAIL + "\n")
    with pytest.raises(CommandError, match="line 2: not valid JSON") as caught:
        call_command("ingest_conversations", "shop", str(path))
    assert EMAIL not in str(caught.value)
    assert not Conversation.objects.exists()


def test_the_command_refuses_an_unknown_project(db, tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps(conversation()))
    with pytest.raises(CommandError, match="No project 'nope'"):
        call_command("ingest_conversations", "nope", str(path))


def test_concurrent_identical_posts_store_each_conversation_once(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; CI runs this test there")
    project = factories.project("busy")
    batch = [conversation(f"c{i}", thumb="down" if i % 2 else "up") for i in range(20)]
    results, errors = [], []
    barrier = threading.Barrier(6)

    def post():
        try:
            barrier.wait()
            results.append(ingest(project, batch))
        except Exception as exc:  # reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sum(r["created"] for r in results) == 20
    assert all(r["created"] + r["duplicates"] == 20 for r in results)
    assert Conversation.objects.filter(project=project).count() == 20
    assert Prompt.objects.filter(project=project).count() == 20
    assert Candidate.objects.filter(prompt__project=project).count() == 20
    assert Item.objects.filter(project=project).count() == 10


def test_it_puts_each_batch_on_the_loop_timeline_with_counts_only(db):
    from rlhf.models import LoopEvent

    project = factories.project("timeline-ingest")
    batch = [{"external_id": "t-1", "messages": [{"role": "user", "content":
              "I'm Priya Raman, priya.raman@example.com, call +44 20 7946 0958"}],
              "reply": "Sorry Priya!", "feedback": {"thumb": "down"},
              "customer": {"name": "Priya Raman"}},
             {"external_id": "t-2", "messages": [{"role": "user", "content": "Hi"}],
              "reply": "Hello", "feedback": {"thumb": "up"}}]
    ingest(project, batch)
    line = LoopEvent.objects.get(project=project, kind="ingested")
    assert line.data["created"] == 2 and line.data["items"] == 1
    assert line.data["feedback"] == {"down": 1, "up": 1}
    assert line.data["pii"]["EMAIL"] == 1 and line.data["pii"]["PHONE"] == 1
    text = line.message + str(line.data)
    assert "Priya" not in text and "example.com" not in text and "7946" not in text
    ingest(project, batch)  # all duplicates: nothing new on the timeline
    assert LoopEvent.objects.filter(project=project, kind="ingested").count() == 1
