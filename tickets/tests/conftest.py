import pytest

from accounts.tests.factories import StaffUserFactory


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    """Attachments go to a throwaway directory, so tests can check exactly what was written."""
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    return settings.PRIVATE_MEDIA_ROOT


@pytest.fixture(autouse=True)
def default_departments(departments):
    """Every tickets test has the default departments (the root conftest's `departments`)."""


@pytest.fixture
def staff(db):
    return StaffUserFactory(first_name="Maria")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def stored_files(root) -> list:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []
