"""Periodic housekeeping for the annotation queue."""

from celery import shared_task

from .queue import reclaim_expired


@shared_task(name="annotate.tasks.reclaim_expired_leases")
def reclaim_expired_leases():
    return reclaim_expired()
