from django.contrib import admin
from django.urls import include, path

from annotate import views as annotate_views
from rlhf import views as rlhf_views

urlpatterns = [
    path("", annotate_views.home, name="home"),
    path("healthz", annotate_views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("projects/new/", annotate_views.project_new, name="annotate-project-new"),
    path("projects/<slug:slug>/", annotate_views.project_detail, name="annotate-project"),
    path("projects/<slug:slug>/import/", annotate_views.project_import, name="annotate-import"),
    path("projects/<slug:slug>/export.jsonl", annotate_views.project_export,
         name="annotate-export"),
    path("annotate/<slug:slug>/", annotate_views.work, name="annotate-work"),
    path("annotate/<slug:slug>/submit/", annotate_views.submit, name="annotate-submit"),
    path("annotate/<slug:slug>/undo/", annotate_views.undo, name="annotate-undo"),
    path("annotate/<slug:slug>/prefetch/", annotate_views.prefetch, name="annotate-prefetch"),
    path("annotate/<slug:slug>/skip/", annotate_views.skip, name="annotate-skip"),
    path("dashboard/<slug:slug>/", annotate_views.dashboard, name="dashboard-project"),
    path("dashboard/<slug:slug>/refresh/", annotate_views.dashboard_refresh,
         name="dashboard-refresh"),
    path("dashboard/<slug:slug>/<slug:table>.csv", annotate_views.dashboard_csv,
         name="dashboard-csv"),
    path("annotate/<slug:slug>/review/", annotate_views.review_queue, name="annotate-review"),
    path("annotate/<slug:slug>/review/<int:item_id>/", annotate_views.review_item,
         name="annotate-review-item"),
    path("dashboard/<slug:slug>/quality/", annotate_views.quality, name="annotate-quality"),
    path("dashboard/<slug:slug>/quality/resume/<int:user_id>/", annotate_views.resume,
         name="annotate-resume"),
    path("rlhf/", rlhf_views.runs, name="rlhf-runs"),
    path("rlhf/projects/<slug:slug>/train/", rlhf_views.run_new, name="rlhf-run-new"),
    path("rlhf/projects/<slug:slug>/rescore/", rlhf_views.rescore, name="rlhf-rescore"),
    path("rlhf/projects/<slug:slug>/generate/", rlhf_views.generation_new,
         name="rlhf-generation-new"),
    path("rlhf/runs/<int:pk>/", rlhf_views.run_detail, name="rlhf-run-detail"),
    path("rlhf/runs/<int:pk>/metrics.json", rlhf_views.run_metrics, name="rlhf-run-metrics"),
    path("rlhf/runs/<int:pk>/cancel/", rlhf_views.run_cancel, name="rlhf-run-cancel"),
    path("rlhf/generations/<int:pk>/", rlhf_views.generation_detail,
         name="rlhf-generation-detail"),
]
