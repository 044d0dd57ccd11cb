import factory
from django.conf import settings

from accounts.models import Customer, User

DEFAULT_PASSWORD = "Correct-Horse-42"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    currency = settings.DEFAULT_CURRENCY
    site_currency = settings.DEFAULT_CURRENCY
    street = factory.Faker("street_address")
    city = factory.Faker("city")
    postcode = factory.Faker("postcode")
    country = "DE"


class UserFactory(factory.django.DjangoModelFactory):
    """A customer's owner login with a complete profile (can pay)."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email_verified = True
    customer = factory.SubFactory(CustomerFactory)
    role = User.Role.OWNER
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StaffUserFactory(UserFactory):
    customer = None
    is_staff = True
    is_superuser = True
