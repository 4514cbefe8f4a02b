"""Many annotators claiming and submitting at once on PostgreSQL: nothing doubled or lost."""

import threading
import uuid

import pytest
from django.db import connection, connections
from django.db.models import Count

from annotate import queue
from annotate.importing import create_item
from annotate.models import Assignment, Candidate, Item, Judgement, Project, Prompt
from annotate.services import submit_judgement
from tests import factories

THREADS = 32
ITEMS = 700
OVERLAP = 3


def make_project():
    project = Project.objects.create(slug="crowd", name="Crowd", overlap=OVERLAP)
    prompts = Prompt.objects.bulk_create(
        Prompt(project=project, conversation=[{"role": "user", "content": f"q{i}"}])
        for i in range(ITEMS)
    )
    candidates = Candidate.objects.bulk_create(
        Candidate(prompt=p, text=f"answer {j}") for p in prompts for j in range(2)
    )
    for i, prompt in enumerate(prompts):
        create_item(project, prompt, candidates[2 * i:2 * i + 2])
    return project


def test_it_fills_every_slot_exactly_once_under_contention(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("the concurrency test needs PostgreSQL (SKIP LOCKED); CI runs it there")
    project = make_project()
    users = [factories.user(f"crowd{i}", "Annotator") for i in range(THREADS)]
    stored, errors = [], []
    lock = threading.Lock()

    def work(user):
        try:
            while (assignment := queue.claim_next(project, user)) is not None:
                ranking = ";".join(map(str, assignment.shown_order))
                client_uuid = uuid.uuid4()
                judgement, created = submit_judgement(user, assignment.pk, ranking, client_uuid)
                # A retry of the same request (lost response) must not store a second row.
                replay, replay_created = submit_judgement(user, assignment.pk, ranking,
                                                          client_uuid)
                assert created and not replay_created and replay.pk == judgement.pk
                with lock:
                    stored.append(judgement.pk)
        except Exception as exc:  # collected and reported below, with the thread's user
            errors.append(f"{user.username}: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert errors == []

    assert len(stored) == len(set(stored)) == ITEMS * OVERLAP
    assert Judgement.objects.count() == ITEMS * OVERLAP
    pairs = Assignment.objects.values("item", "annotator").annotate(n=Count("id"))
    assert not pairs.filter(n__gt=1).exists()
    assert not Item.objects.filter(project=project).exclude(judgement_count=OVERLAP).exists()
    assert not Item.objects.filter(project=project, open_slots__gt=0).exists()
    per_item = Judgement.objects.values("item").annotate(n=Count("id"))
    assert {row["n"] for row in per_item} == {OVERLAP}
    assert not Assignment.objects.exclude(status="submitted").exists()
