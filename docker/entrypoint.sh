#!/bin/sh
# Start one preflab role: web (migrates first), worker-training, worker-default or beat.
set -e
role="${1:-web}"
case "$role" in
  web)
    python manage.py migrate --noinput
    exec gunicorn config.wsgi:application --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" \
      --timeout 60 --access-logfile -
    ;;
  worker-training)
    # One training job at a time per worker; prefetch 1 so a long run does not hold others.
    exec celery -A config worker -Q training -c 1 --prefetch-multiplier 1 -n training@%h \
      --loglevel "${LOG_LEVEL:-INFO}"
    ;;
  worker-default)
    exec celery -A config worker -Q default,generation -c "${WORKER_CONCURRENCY:-2}" \
      -n default@%h --loglevel "${LOG_LEVEL:-INFO}"
    ;;
  beat)
    exec celery -A config beat -s /data/celerybeat-schedule --loglevel "${LOG_LEVEL:-INFO}"
    ;;
  setup-demo)
    python manage.py migrate --noinput
    exec python manage.py setup_demo
    ;;
  *)
    exec "$@"
    ;;
esac
