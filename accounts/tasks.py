from celery import shared_task

from .services.data_export import data_export_build, data_exports_sweep


@shared_task(name="accounts.tasks.data_export_build_task")
def data_export_build_task(*, export_id: int) -> None:
    data_export_build(export_id=export_id)


@shared_task(name="accounts.tasks.data_exports_sweep_task")
def data_exports_sweep_task() -> dict:
    return data_exports_sweep()
