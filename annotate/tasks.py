"""Periodic housekeeping for the annotation queue."""

from celery import shared_task

from .queue import reclaim_expired


@shared_task(name="annotate.tasks.reclaim_expired_leases")
def reclaim_expired_leases():
    return reclaim_expired()


@shared_task(name="annotate.tasks.refresh_dashboard")
def refresh_dashboard(project_id):
    from .dashboards import refresh
    from .models import Project

    project = Project.objects.filter(pk=project_id).first()
    return None if project is None else refresh(project).judgements


@shared_task(name="annotate.tasks.refresh_dashboards")
def refresh_dashboards():
    """Recompute the dashboards of projects with judgements newer than their figures."""
    from .dashboards import is_stale, refresh
    from .models import DashboardCache, Project

    refreshed = 0
    for project in Project.objects.all():
        cache = DashboardCache.objects.filter(project=project).first()
        if is_stale(project, cache) and (cache is not None or project.items.exists()):
            refresh(project)
            refreshed += 1
    return refreshed
