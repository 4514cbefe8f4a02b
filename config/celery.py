"""The Celery app: settings come from Django's, under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# TRL's trainers ping the Hub for usage telemetry unless told not to; workers stay quiet.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

app = Celery("preflab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
