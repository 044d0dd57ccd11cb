from celery import shared_task

from . import services


@shared_task(name="accounts.tasks.data_export_build_task")
def data_export_build_task(*, export_id: int) -> None:
    services.data_export_build(export_id=export_id)


@shared_task(name="accounts.tasks.data_exports_sweep_task")
def data_exports_sweep_task() -> dict:
    return services.data_exports_sweep()
