"""Dashboard latency at a million judgements (issue 5): seed, compute once, time the pages.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench
    .venv/bin/python bench/dashboard_bench.py [--judgements 1000000] [--requests 40]

It uses (creating and migrating it if needed) its own database, DATABASE_URL's name plus
"_dashboard" (or DASHBOARD_BENCH_DATABASE_URL).

Seeds one project (overlap 3, two candidates per item, 30 annotators, judgements spread over
90 days, 75 % of them agreeing with the item's majority direction) with INSERT … SELECT, then
measures: the time `annotate.dashboards.refresh` takes to compute every figure (what the
beat task does in the worker), and the latency of the dashboard page and a CSV download as a
manager sees them (Django test client, full middleware, template rendering), with the
"is anything new?" check every view makes. Beside it, the same page computed inline on every
request (what the cache replaces), timed a few times. A seeded project is reused.
"""

import argparse
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from claim_bench import (  # noqa: E402
    insert_select,
    item_steps,
    log,
    sql,
    tables,
    vacuum_analyze,
)

SLUG = "bench-dashboard-{}"
SEEDED = "seeded"
OVERLAP = 3
ANNOTATORS = 30
TARGET_P95_MS = 300.0


def database_url():
    """Return the benchmark's database URL (its own: see the module docstring).

    claim_bench empties the judgement table of its database, so the two never share one.
    """
    explicit = os.getenv("DASHBOARD_BENCH_DATABASE_URL")
    if explicit:
        return explicit
    base = os.getenv("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        sys.exit("dashboard_bench needs PostgreSQL: set DATABASE_URL (or "
                 "DASHBOARD_BENCH_DATABASE_URL) to a postgres:// URL, e.g.\n"
                 "  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench\n"
                 "(the benchmark then uses, and creates, preflab_bench_dashboard)")
    head, _, name = base.rpartition("/")
    return f"{head}/{name.split('?')[0]}_dashboard"


def setup():
    """Point Django at the benchmark database, creating and migrating it when needed."""
    import dj_database_url
    import psycopg

    url = database_url()
    cfg = dj_database_url.parse(url)
    admin = psycopg.connect(host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"],
                            password=cfg["PASSWORD"] or None, dbname="postgres",
                            autocommit=True)
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               [cfg["NAME"]]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
            log(f"created database {cfg['NAME']}")
    os.environ["DATABASE_URL"] = url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotate.models import Project

    others = Project.objects.exclude(slug__startswith="bench-dashboard-").count()
    if others:
        sys.exit(f"{cfg['NAME']} holds {others} other project(s): use a dedicated database.")


def users():
    from django.contrib.auth.models import Group, User

    group, _ = Group.objects.get_or_create(name="Annotator")
    out = []
    for i in range(ANNOTATORS):
        user, _ = User.objects.get_or_create(username=f"dash-annotator-{i:02d}")
        user.groups.add(group)
        out.append(user)
    manager, _ = User.objects.get_or_create(username="dash-manager")
    manager.groups.add(Group.objects.get_or_create(name="Manager")[0])
    return out, manager


def seed(n_judgements, annotators):
    from annotate.models import Assignment, Judgement, Project

    n_items = n_judgements // OVERLAP
    slug = SLUG.format(n_judgements)
    project = Project.objects.filter(slug=slug).first()
    if project is not None and project.description == SEEDED:
        log(f"reusing seeded project {slug}")
        return project
    if project is not None:
        log(f"dropping incomplete project {slug}")
        t = tables()
        for table in ("judgement", "assignment"):
            sql(f"DELETE FROM {t[table]} WHERE item_id IN "
                f"(SELECT id FROM {t['item']} WHERE project_id = %s)", [project.pk])
        project.delete()
    t = tables()
    project = Project.objects.create(name=f"Dashboard benchmark, {n_judgements:,} judgements",
                                     slug=slug, overlap=OVERLAP, judgement_kinds=["ranking"],
                                     description="seeding")
    pid = project.pk
    ids = [u.pk for u in annotators]
    started = time.monotonic()
    sql("SET synchronous_commit = off")
    steps = item_steps(
        pid, n_items, 2, open_slots=0, judgement_count=OVERLAP, label="Dashboard",
        answer_sql="'Answer ' || k || repeat(' more words', ((p.id %% 7) * k)::int)",
    ) + [
        ("assignments", Assignment, {
            "item": ("i.id", []),
            "annotator": ("(%s::bigint[])[1 + ((i.id + s) %% " + str(ANNOTATORS) + ")]", [ids]),
            "status": ("%s", [Assignment.Status.SUBMITTED]),
            "leased_until": ("now()", []),
            "shown_order": ("CASE WHEN random() < 0.5 THEN jsonb_build_array(c.lo, c.hi) "
                            "ELSE jsonb_build_array(c.hi, c.lo) END", []),
        }, f"FROM {t['item']} AS i CROSS JOIN generate_series(0, {OVERLAP - 1}) AS s "
           f"JOIN (SELECT prompt_id, min(id) AS lo, max(id) AS hi FROM {t['candidate']} "
           "GROUP BY prompt_id) AS c ON c.prompt_id = i.prompt_id "
           "WHERE i.project_id = %s ORDER BY i.id, s", [pid]),
        ("judgements", Judgement, {
            "assignment": ("a.id", []),
            "item": ("a.item_id", []),
            "annotator": ("a.annotator_id", []),
            "kinds": ("'[\"ranking\"]'::jsonb", []),
            # 75 % rank the lower id first (the "true" order), the rest the other way.
            "ranking": ("CASE WHEN random() < 0.75 "
                        "THEN jsonb_build_array(jsonb_build_array(least((a.shown_order->>0)::int,"
                        " (a.shown_order->>1)::int)), jsonb_build_array(greatest("
                        "(a.shown_order->>0)::int, (a.shown_order->>1)::int))) "
                        "ELSE jsonb_build_array(jsonb_build_array(greatest("
                        "(a.shown_order->>0)::int, (a.shown_order->>1)::int)), "
                        "jsonb_build_array(least((a.shown_order->>0)::int, "
                        "(a.shown_order->>1)::int))) END", []),
            "shown_order": ("a.shown_order", []),
            "flags": ("CASE WHEN random() < 0.01 THEN '[\"pii\"]'::jsonb ELSE '[]'::jsonb END",
                      []),
            "duration_ms": ("(2000 + random() * 28000)::int", []),
            "client_uuid": ("gen_random_uuid()", []),
            "created_at": ("now() - random() * interval '90 days'", []),
        }, f"FROM {t['assignment']} AS a JOIN {t['item']} AS i ON i.id = a.item_id "
           "WHERE i.project_id = %s ORDER BY a.id", [pid]),
    ]
    for name, model, given, tail, params in steps:
        step = time.monotonic()
        rows = insert_select(model, given, tail, params)
        log(f"  seeded {rows:>10,} {name} in {time.monotonic() - step:.1f} s")
    sql("SET synchronous_commit = on")
    vacuum_analyze("prompt", "candidate", "item", "m2m", "assignment", "judgement")
    project.description = SEEDED
    project.save(update_fields=["description"])
    log(f"seeded {slug} in {time.monotonic() - started:.0f} s")
    return project


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def time_requests(client, url, count):
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return timings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judgements", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page")
    parser.add_argument("--inline-requests", type=int, default=0,
                        help="requests timed with the figures computed inline")
    args = parser.parse_args(argv)
    setup()
    from django.test import Client
    from django.urls import reverse

    from annotate import dashboards
    from annotate.models import Judgement

    annotators, manager = users()
    project = seed(args.judgements, annotators)
    total = Judgement.objects.filter(item__project=project).count()
    log(f"{total:,} judgements in {project.slug}")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    cache = dashboards.refresh(project)
    compute_s = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log(f"computed every figure in {compute_s:.1f} s "
        f"(peak RSS {rss_after / 1024:.0f} MiB, +{(rss_after - rss_before) / 1024:.0f} MiB)")

    client = Client()
    client.force_login(manager)
    page = reverse("dashboard-project", args=[project.slug])
    csv_url = reverse("dashboard-csv", args=[project.slug, "annotators"])
    agreement_url = reverse("dashboard-csv", args=[project.slug, "agreement"])
    time_requests(client, page, 2)  # warm-up: templates, connections
    results = {
        "dashboard page": time_requests(client, page, args.requests),
        "annotators.csv": time_requests(client, csv_url, args.requests),
        "agreement.csv": time_requests(client, agreement_url, args.requests),
    }
    inline = []
    for _ in range(args.inline_requests):
        started = time.perf_counter()
        dashboards.compute(project)
        inline.append((time.perf_counter() - started) * 1000)

    print()
    print(f"dashboard benchmark: {total:,} judgements, {ANNOTATORS} annotators, overlap "
          f"{OVERLAP}, {os.cpu_count()} CPU core(s), PostgreSQL")
    print(f"figures: alpha {cache.data['overall']['pairs']}, "
          f"{len(cache.data['per_day'])} days, {len(cache.data['annotators'])} annotators")
    print(f"{'':18} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'n':>4}")
    for name, timings in results.items():
        print(f"{name:18} {statistics.median(timings):8.1f} {pct(timings, 95):8.1f} "
              f"{max(timings):8.1f} {len(timings):4}")
    page_p95 = pct(results["dashboard page"], 95)
    # The refresh above is one inline computation already; more are optional.
    inline = inline or [compute_s * 1000]
    inline_ms = statistics.median(inline)
    print(f"{'computed inline':18} {inline_ms:8.1f} {'':>8} {max(inline):8.1f} {len(inline):4}"
          "   (every figure recomputed per request: what the cache replaces)")
    print(f"refresh (beat task): {compute_s:.1f} s")
    print()
    status = "PASS" if page_p95 <= TARGET_P95_MS else "MISS"
    print(f"{status}  dashboard page p95 <= {TARGET_P95_MS:.0f} ms: {page_p95:.1f} ms")
    worst_csv = max(pct(results[n], 95) for n in ("annotators.csv", "agreement.csv"))
    status = "PASS" if worst_csv <= TARGET_P95_MS else "MISS"
    print(f"{status}  CSV downloads p95 <= {TARGET_P95_MS:.0f} ms: {worst_csv:.1f} ms")
    speedup = inline_ms / statistics.median(results["dashboard page"])
    print(f"      cached page vs computing inline: {speedup:.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
