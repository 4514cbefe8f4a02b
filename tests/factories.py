"""Small builders for test data (plain functions: the models are simple)."""

import itertools

from django.contrib.auth.models import Group, User

from annotate.importing import create_item
from annotate.models import Candidate, Project, Prompt

_seq = itertools.count(1)


def user(username, *roles, password="pw-for-tests"):
    account = User.objects.create_user(username=username, password=password)
    for role in roles:
        # get_or_create: transactional tests flush the groups the data migration made.
        account.groups.add(Group.objects.get_or_create(name=role)[0])
    return account


def project(slug=None, **fields):
    slug = slug or f"proj-{next(_seq)}"
    fields.setdefault("name", slug.replace("-", " ").title())
    return Project.objects.create(slug=slug, **fields)


def prompt(project, text="Where is my order NW-123456?", external_id="", **fields):
    conversation = text if isinstance(text, list) else [{"role": "user", "content": text}]
    return Prompt.objects.create(
        project=project, conversation=conversation, external_id=external_id, **fields
    )


def project_with_items(n_prompts=4, n_candidates=3, slug=None, **fields):
    proj = project(slug, **fields)
    for i in range(n_prompts):
        p = prompt(proj, f"Question {i}: my parcel {i} has not arrived, what now?", f"q{i}")
        cands = [
            Candidate.objects.create(prompt=p, text=f"Answer {j} to question {i}.")
            for j in range(n_candidates)
        ]
        create_item(proj, p, cands)
    return proj
